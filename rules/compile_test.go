package rules

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/tetratelabs/wazero"
)

// TestCompileSeedTree holds the goal for the seed's example tree:
// a module under 4 KiB that decides as the evaluator does.
func TestCompileSeedTree(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	for _, ext := range []string{"yaml", "json"} {
		tree := loadSeed(t, ext)
		bin, err := Compile(tree)
		if err != nil {
			t.Fatal(err)
		}
		if len(bin) >= 4096 {
			t.Errorf("%s: %d bytes, want under 4 KiB", ext, len(bin))
		}
		t.Logf("%s: %d bytes", ext, len(bin))
		m := instantiate(t, ctx, r, bin)
		for _, c := range seedCases {
			in := abi.RuleInput{TimeMs: 1, Attrs: c.attrs}
			b, err := in.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if got, err := m.call(ctx, b, len(b)); err != nil || got != c.want {
				t.Errorf("%s: %s: decide = %d, %v; want %d", ext, c.name, got, err, c.want)
			}
		}
	}
}

// TestCompileMalformedInput checks the codes of inputs the decoder rejects.
func TestCompileMalformedInput(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	m := instantiate(t, ctx, r, mustCompile(t, loadSeed(t, "yaml")))
	header := func(n byte) []byte { return []byte{1, 0, 0, n, 0, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9} }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	age := []byte{1, 1, 20, 0, 0, 0, 0, 0, 0, 0}
	man := []byte{2, 2, 3, 'm', 'a', 'n'}
	bad, version := int64(abi.CodeBadInput), int64(abi.CodeVersion)
	for _, c := range []struct {
		name string
		in   []byte
		n    int // the length passed to decide; len(in) if 0
		want int64
	}{
		{"valid", cat(header(2), man, age), 0, 100001},
		{"empty", nil, 0, bad},
		{"one byte", []byte{1}, 0, bad},
		{"version 2", []byte{2, 0}, 0, version},
		{"version 2 with a body", cat([]byte{2, 0}, header(2)[2:], man, age), 0, version},
		{"short header", header(0)[:15], 0, bad},
		{"over the maximum size", cat(header(2), man, age), abi.MaxInputSize + 1, bad},
		{"reserved byte 2", cat([]byte{1, 0, 1, 0}, header(0)[4:]), 0, bad},
		{"reserved byte 7", cat(header(0)[:7], []byte{1}, header(0)[8:]), 0, bad},
		{"65 attributes", header(65), 0, bad},
		{"fewer attributes than counted", cat(header(3), man, age), 0, bad},
		{"more attributes than counted", cat(header(1), man, age), 0, bad},
		{"trailing byte", cat(header(2), man, age, []byte{0}), 0, bad},
		{"key 0", cat(header(1), []byte{0, 1}, age[2:]), 0, bad},
		{"type 3", cat(header(1), []byte{1, 3}, age[2:]), 0, bad},
		{"string age", cat(header(1), []byte{1, 2, 1, '2'}), 0, bad},
		{"int gender", cat(header(1), []byte{2, 1}, age[2:]), 0, bad},
		{"repeated age", cat(header(3), man, age, age), 0, bad},
		{"repeated tags are fine", cat(header(4), man, []byte{3, 2, 1, 'a', 3, 2, 1, 'a'}, age), 0, 100001},
		{"unknown keys are fine", cat(header(4), []byte{200, 2, 0, 7, 1}, age[2:], man, age), 0, 100001},
		{"cut int", cat(header(1), age[:9]), 0, bad},
		{"cut string", cat(header(1), man[:5]), 0, bad},
		{"cut string length", cat(header(1), man[:2]), 0, bad},
		{"cut key", cat(header(1), []byte{1}), 0, bad},
	} {
		n := c.n
		if n == 0 {
			n = len(c.in)
		}
		if got, err := m.call(ctx, c.in, n); err != nil || got != c.want {
			t.Errorf("%s: decide = %d, %v; want %d", c.name, got, err, c.want)
		}
		// The reference agrees, where the input is what the host would send.
		if n == len(c.in) {
			e, _ := NewEvaluator(loadSeed(t, "yaml"))
			if want := reference(t, e, c.in); want != c.want {
				t.Errorf("%s: the reference says %d", c.name, want)
			}
		}
	}
}

func mustCompile(tb testing.TB, t *Tree) []byte {
	tb.Helper()
	bin, err := Compile(t)
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

func TestCompileDeterministic(t *testing.T) {
	a, b := mustCompile(t, loadSeed(t, "yaml")), mustCompile(t, loadSeed(t, "json"))
	if !bytes.Equal(a, b) {
		t.Fatal("the same tree compiled to different bytes")
	}
}

// TestCompileRootLeaf: a tree that is one leaf still checks its input.
func TestCompileRootLeaf(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	m := instantiate(t, ctx, r, mustCompile(t, &Tree{ID: "all", Root: "a", Nodes: []Node{{ID: "a", Type: Leaf, Value: 42}}}))
	in := abi.RuleInput{}
	b, _ := in.MarshalBinary()
	if got, err := m.call(ctx, b, len(b)); err != nil || got != 42 {
		t.Fatalf("decide = %d, %v", got, err)
	}
	if got, err := m.call(ctx, b[:3], 3); err != nil || got != int64(abi.CodeBadInput) {
		t.Fatalf("decide(short) = %d, %v", got, err)
	}
}

// bigTree returns a valid tree at the bounds: MaxNodes nodes, a chain of
// branches over every key, MaxLines lines, the first ones enums of
// MaxEnumValues values, MaxValues values in all.
func bigTree() *Tree {
	const leaves = 24
	branches := MaxNodes - leaves
	t := &Tree{ID: "big", Root: "b0"}
	for i := range branches {
		key := []string{"userAge", "userCity", "userTags", "daysSinceRegistration", "userGender", "userLevel"}[i%6]
		next := fmt.Sprintf("b%d", i+1)
		if i == branches-1 {
			next = "l0"
		}
		t.Nodes = append(t.Nodes, Node{ID: fmt.Sprintf("b%d", i), Type: Branch, RuleKey: key, Default: next})
	}
	for i := range leaves {
		t.Nodes = append(t.Nodes, Node{ID: fmt.Sprintf("l%d", i), Type: Leaf, Value: int64(i)})
	}
	values, size := 0, 0
	for i := 0; len(t.Lines) < MaxLines; i++ {
		b := i % branches
		key := t.Nodes[b].RuleKey
		l := Line{From: t.Nodes[b].ID, To: fmt.Sprintf("l%d", i%leaves), LimitType: LimitEnum}
		left := MaxLines - len(t.Lines)
		n := max(1, min((MaxValues-values)/left, (MaxValueBytes-size)/(left*6)))
		if i < 24 {
			n = MaxEnumValues
		}
		for j := range n {
			v := strconv.FormatInt(int64(i*MaxEnumValues+j), 36)
			if key == "userAge" || key == "userLevel" || key == "daysSinceRegistration" {
				v = fmt.Sprint(i + j*MaxLines)
			}
			l.LimitValue = append(l.LimitValue, v)
			size += len(v)
		}
		values += n
		t.Lines = append(t.Lines, l)
	}
	return t
}

// TestCompileBigTree compiles a tree at every bound and runs it.
func TestCompileBigTree(t *testing.T) {
	tree := bigTree()
	start := time.Now()
	bin, err := Compile(tree)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkBounds(tree); err != nil {
		t.Fatal(err)
	}
	values, size := 0, 0
	for _, l := range tree.Lines {
		values += len(l.LimitValue)
		for _, v := range l.LimitValue {
			size += len(v)
		}
	}
	t.Logf("%d nodes, %d lines, %d values of %d bytes: compiled to %d bytes in %v", len(tree.Nodes), len(tree.Lines), values, size, len(bin), time.Since(start))
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	m := instantiate(t, ctx, r, bin)
	e, err := NewEvaluator(tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, attrs := range [][]abi.Attr{
		nil,
		{abi.IntAttr(abi.KeyUserAge, 5)},
		{abi.StrAttr(abi.KeyUserCity, strconv.FormatInt(1*MaxEnumValues+7, 36))},
		{abi.StrAttr(abi.KeyUserTags, "zzz"), abi.StrAttr(abi.KeyUserTags, strconv.FormatInt(2002*MaxEnumValues, 36))},
		{abi.IntAttr(abi.KeyUserLevel, 4001), abi.StrAttr(abi.KeyUserGender, strconv.FormatInt(4000*MaxEnumValues, 36))},
		{abi.IntAttr(abi.KeyDaysSinceRegistration, 3+MaxLines), abi.IntAttr(abi.KeyUserAge, 4092)},
	} {
		in := abi.RuleInput{Attrs: attrs}
		b, _ := in.MarshalBinary()
		want := reference(t, e, b)
		if got, err := m.call(ctx, b, len(b)); err != nil || got != want {
			t.Errorf("%v: decide = %d, %v; want %d", attrs, got, err, want)
		}
	}
}

// BenchmarkDecideSeedTree is the cost of one decision of the seed's tree
// through wazero, as the host pays it: the input written into the module's
// buffer, decide called through a cached api.Function with a reused stack.
func BenchmarkDecideSeedTree(b *testing.B) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	m := instantiate(b, ctx, r, mustCompile(b, loadSeed(b, "yaml")))
	in := abi.RuleInput{TimeMs: 1, Attrs: seedCases[3].attrs}
	buf, err := in.AppendBinary(make([]byte, 0, abi.MaxInputSize))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := m.call(ctx, buf, len(buf))
		if err != nil || got != 100003 {
			b.Fatal(got, err)
		}
	}
}

// BenchmarkCompileSeedTree is the cost of validating and compiling the
// seed's tree to Wasm bytes (wazero's own compilation is not included).
func BenchmarkCompileSeedTree(b *testing.B) {
	tree := loadSeed(b, "yaml")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(tree); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCompileManyStrings: hundreds of tag and city constants (several tag
// bit words, collisions in the string table), each found, and near misses
// not.
func TestCompileManyStrings(t *testing.T) {
	tree := &Tree{ID: "many", Root: "tags", Nodes: []Node{
		{ID: "tags", Type: Branch, RuleKey: "userTags", Default: "city"},
		{ID: "city", Type: Branch, RuleKey: "userCity", Default: "none"},
		{ID: "none", Type: Leaf},
	}}
	var probes []string
	for i := range 12 {
		leaf := fmt.Sprintf("leaf%d", i)
		tree.Nodes = append(tree.Nodes, Node{ID: leaf, Type: Leaf, Value: int64(100 + i)})
		for _, key := range []string{"tags", "city"} {
			l := Line{From: key, To: leaf, LimitType: LimitEnum}
			for j := range 30 {
				v := fmt.Sprintf("%s-%d-%s", key, i*30+j, strings.Repeat("x", (i*30+j)%20))
				l.LimitValue = append(l.LimitValue, v)
				probes = append(probes, v, v[:len(v)-1], v+"x")
			}
			tree.Lines = append(tree.Lines, l)
		}
	}
	e, err := NewEvaluator(tree)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	m := instantiate(t, ctx, r, mustCompile(t, tree))
	for i, p := range probes {
		in := abi.RuleInput{Attrs: []abi.Attr{abi.StrAttr(abi.KeyUserCity, p), abi.StrAttr(abi.KeyUserTags, probes[(i*7)%len(probes)]), abi.StrAttr(abi.KeyUserTags, p)}}
		b, err := in.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		want := reference(t, e, b)
		if got, err := m.call(ctx, b, len(b)); err != nil || got != want {
			t.Fatalf("%q: decide = %d, %v; want %d", p, got, err, want)
		}
	}
}

// TestStringTable checks the Go model of the lookup the modules run.
func TestStringTable(t *testing.T) {
	var entries []strEntry
	for i := range 1000 {
		entries = append(entries, strEntry{key: abi.Key(2 + i%3), s: strings.Repeat("ab", i%37) + fmt.Sprint(i), id: uint16(i + 1)})
	}
	tab := buildTable(entries)
	for _, e := range entries {
		if got := tab.lookup(e.key, e.s); got != e.id {
			t.Fatalf("lookup(%v, %q) = %d, want %d", e.key, e.s, got, e.id)
		}
		if got := tab.lookup(e.key+3, e.s); got != 0 {
			t.Fatalf("lookup of another key found %d", got)
		}
		if got := tab.lookup(e.key, e.s+"!"); got != 0 {
			t.Fatalf("lookup of a longer string found %d", got)
		}
	}
}
