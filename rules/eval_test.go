package rules

import (
	"errors"
	"testing"

	"github.com/flashlottery/lottery/sdk/abi"
)

// seedCases are decisions of the seed's example tree: gender first, then
// age, to an activity; anything else is no match.
var seedCases = []struct {
	name  string
	attrs []abi.Attr
	want  int64
}{
	{"man under 25", []abi.Attr{abi.StrAttr(abi.KeyUserGender, "man"), abi.IntAttr(abi.KeyUserAge, 24)}, 100001},
	{"man at 25", []abi.Attr{abi.StrAttr(abi.KeyUserGender, "man"), abi.IntAttr(abi.KeyUserAge, 25)}, 100002},
	{"man over 25", []abi.Attr{abi.IntAttr(abi.KeyUserAge, 70), abi.StrAttr(abi.KeyUserGender, "man")}, 100002},
	{"woman under 25", []abi.Attr{abi.StrAttr(abi.KeyUserGender, "woman"), abi.IntAttr(abi.KeyUserAge, 18)}, 100003},
	{"woman at 25", []abi.Attr{abi.StrAttr(abi.KeyUserGender, "woman"), abi.IntAttr(abi.KeyUserAge, 25)}, 100004},
	{"negative age", []abi.Attr{abi.StrAttr(abi.KeyUserGender, "woman"), abi.IntAttr(abi.KeyUserAge, -1)}, 100003},
	{"other attributes are ignored", []abi.Attr{
		abi.StrAttr(abi.KeyUserTags, "vip"), abi.StrAttr(abi.KeyUserGender, "man"), abi.IntAttr(abi.KeyUserLevel, 3),
		abi.StrAttr(abi.KeyUserTags, "new"), abi.IntAttr(200, 1), abi.StrAttr(abi.KeyUserCity, "beijing"), abi.IntAttr(abi.KeyUserAge, 30),
	}, 100002},
	{"no attributes", nil, 0},
	{"no gender", []abi.Attr{abi.IntAttr(abi.KeyUserAge, 20)}, 0},
	{"unknown gender", []abi.Attr{abi.StrAttr(abi.KeyUserGender, "Man"), abi.IntAttr(abi.KeyUserAge, 20)}, 0},
	{"gender prefix", []abi.Attr{abi.StrAttr(abi.KeyUserGender, "wo"), abi.IntAttr(abi.KeyUserAge, 20)}, 0},
	{"no age", []abi.Attr{abi.StrAttr(abi.KeyUserGender, "woman")}, 0},
}

func TestEvaluateSeedTree(t *testing.T) {
	for _, ext := range []string{"yaml", "json"} {
		tree := loadSeed(t, ext)
		for _, c := range seedCases {
			t.Run(ext+"/"+c.name, func(t *testing.T) {
				got, matched, err := Evaluate(tree, c.attrs)
				if err != nil || got != c.want || matched != (c.want != 0) {
					t.Fatalf("Evaluate = %d, %v, %v; want %d", got, matched, err, c.want)
				}
			})
		}
	}
}

func TestEvaluateBadAttributes(t *testing.T) {
	e, err := NewEvaluator(loadSeed(t, "yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, attrs := range map[string][]abi.Attr{
		"repeated age":      {abi.IntAttr(abi.KeyUserAge, 1), abi.IntAttr(abi.KeyUserAge, 2)},
		"string age":        {abi.StrAttr(abi.KeyUserAge, "20")},
		"int gender":        {abi.IntAttr(abi.KeyUserGender, 1)},
		"key 0":             {abi.IntAttr(0, 1)},
		"string too long":   {abi.StrAttr(abi.KeyUserCity, string(make([]byte, 256)))},
		"too many":          make([]abi.Attr, abi.MaxAttrs+1),
		"unknown attr type": {{Key: abi.KeyUserAge, Type: 3}},
	} {
		if _, _, err := e.Evaluate(attrs); abi.CodeOf(err) != abi.CodeBadInput {
			t.Errorf("%s: %v, want a CodeBadInput error", name, err)
		}
	}
}

// TestEvaluateTags covers userTags: = is "has the tag", enum "has any".
func TestEvaluateTags(t *testing.T) {
	tree := &Tree{ID: "tags", Root: "t", Nodes: []Node{
		{ID: "t", Type: Branch, RuleKey: "userTags", Default: "none"},
		{ID: "vip", Type: Leaf, Value: 1},
		{ID: "fresh", Type: Leaf, Value: 2},
		{ID: "none", Type: Leaf},
	}, Lines: []Line{
		{From: "t", To: "vip", LimitType: LimitEqual, LimitValue: Values{"vip"}},
		{From: "t", To: "fresh", LimitType: LimitEnum, LimitValue: Values{"new", "returning"}},
	}}
	tag := func(s string) abi.Attr { return abi.StrAttr(abi.KeyUserTags, s) }
	for _, c := range []struct {
		tags []abi.Attr
		want int64
	}{
		{nil, 0},
		{[]abi.Attr{tag("other")}, 0},
		{[]abi.Attr{tag("returning")}, 2},
		{[]abi.Attr{tag("new"), tag("vip")}, 1}, // the first line wins, whatever the tags' order
		{[]abi.Attr{tag("x"), tag("returning"), tag("new")}, 2},
	} {
		got, _, err := Evaluate(tree, c.tags)
		if err != nil || got != c.want {
			t.Errorf("tags %v: %d, %v; want %d", c.tags, got, err, c.want)
		}
	}
}

func TestEvaluateInvalidTree(t *testing.T) {
	if _, _, err := Evaluate(&Tree{ID: "x"}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v", err)
	}
	if _, _, err := Evaluate(nil, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nil tree: got %v", err)
	}
}

// TestEvaluatorIsACopy checks that changing a tree does not change an
// evaluator made from it.
func TestEvaluatorIsACopy(t *testing.T) {
	tree := loadSeed(t, "yaml")
	e, err := NewEvaluator(tree)
	if err != nil {
		t.Fatal(err)
	}
	tree.Nodes[3].Value = 7
	tree.Lines[2].LimitValue[0] = "99"
	if got, _, _ := e.Evaluate(seedCases[0].attrs); got != 100001 {
		t.Fatalf("got %d", got)
	}
}

func BenchmarkEvaluate(b *testing.B) {
	e, err := NewEvaluator(loadSeed(b, "yaml"))
	if err != nil {
		b.Fatal(err)
	}
	attrs := seedCases[3].attrs
	b.ReportAllocs()
	for b.Loop() {
		if v, _, _ := e.Evaluate(attrs); v != 100003 {
			b.Fatal(v)
		}
	}
}
