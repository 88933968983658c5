package rules

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	line := func(from, to string, lt LimitType, vals ...string) Line {
		return Line{From: from, To: to, LimitType: lt, LimitValue: vals}
	}
	tests := []struct {
		name   string
		mutate func(*Tree)
		want   []Class // every class reported, once or more
	}{
		{"valid seed tree", func(*Tree) {}, nil},
		{"no root", func(t *Tree) { t.Root = "" }, []Class{ClassUnknownRoot}},
		{"unknown root", func(t *Tree) { t.Root = "nope" }, []Class{ClassUnknownRoot}},
		{"line to nowhere", func(t *Tree) { t.Lines[1].To = "ghost" }, []Class{ClassDangling, ClassUnreachable}},
		{"line from nowhere", func(t *Tree) { t.Lines[1].From = "ghost" }, []Class{ClassDangling, ClassUnreachable}},
		{"default to nowhere", func(t *Tree) { t.Nodes[0].Default = "ghost" }, []Class{ClassDangling}},
		{"unreachable leaf", func(t *Tree) { t.Nodes = append(t.Nodes, Node{ID: "orphan", Type: Leaf, Value: 7}) }, []Class{ClassUnreachable}},
		{"unreachable branch in a cycle", func(t *Tree) {
			t.Nodes = append(t.Nodes, Node{ID: "a", Type: Branch, RuleKey: "userLevel", Default: "a"})
		}, []Class{ClassUnreachable, ClassCycle}},
		{"cycle through a line", func(t *Tree) { t.Lines = append(t.Lines, line("11", "1", LimitEqual, "7")) }, []Class{ClassConflictingLine, ClassCycle}},
		{"cycle to itself", func(t *Tree) { t.Nodes[2].Default = "12" }, []Class{ClassCycle}},
		{"branch without a default", func(t *Tree) { t.Nodes[1].Default = "" }, []Class{ClassNoDefault}},
		{"leaf with a line", func(t *Tree) { t.Lines = append(t.Lines, line("111", "0", LimitEqual, "1")) }, []Class{ClassLeafLines}},
		{"comparison on a string key", func(t *Tree) { t.Lines[0].LimitType = LimitGreater }, []Class{ClassTypeMismatch}},
		{"comparison on userTags", func(t *Tree) {
			t.Nodes[0].RuleKey = "userTags"
			t.Lines[1].LimitType = LimitLessEqual
		}, []Class{ClassTypeMismatch}},
		{"enum of strings on an integer key", func(t *Tree) { t.Lines[2] = line("11", "111", LimitEnum, "young", "old") }, []Class{ClassTypeMismatch}},
		{"limit value not an integer", func(t *Tree) { t.Lines[3].LimitValue = Values{"25.5"} }, []Class{ClassTypeMismatch}},
		{"limit value out of range", func(t *Tree) { t.Lines[3].LimitValue = Values{"9223372036854775808"} }, []Class{ClassLimit}},
		{"unknown limit type", func(t *Tree) { t.Lines[3].LimitType = 9 }, []Class{ClassLimit}},
		{"two values for =", func(t *Tree) { t.Lines[0].LimitValue = Values{"man", "male"} }, []Class{ClassLimit}},
		{"no value", func(t *Tree) { t.Lines[0].LimitValue = nil }, []Class{ClassLimit}},
		{"empty enum", func(t *Tree) { t.Lines[0] = line("1", "11", LimitEnum) }, []Class{ClassLimit}},
		{"enum lists a value twice", func(t *Tree) { t.Lines[0] = line("1", "11", LimitEnum, "man", "male", "man") }, []Class{ClassLimit}},
		{"integer enum lists a value twice", func(t *Tree) { t.Lines[2] = line("11", "111", LimitEnum, "1", "01") }, []Class{ClassLimit}},
		{"string no attribute can hold", func(t *Tree) { t.Lines[0].LimitValue = Values{strings.Repeat("m", 256)} }, []Class{ClassLimit}},
		{"duplicate line", func(t *Tree) { t.Lines = append(t.Lines, t.Lines[0]) }, []Class{ClassDuplicateLine}},
		{"same condition, other target", func(t *Tree) { t.Lines = append(t.Lines, line("1", "12", LimitEnum, "man")) }, []Class{ClassConflictingLine}},
		{"shadowed by earlier lines", func(t *Tree) { t.Lines = append(t.Lines, line("11", "112", LimitLess, "20")) }, []Class{ClassConflictingLine}},
		{"shadowed by a union of lines", func(t *Tree) {
			t.Lines = append(t.Lines, line("1", "0", LimitEnum, "man", "woman"))
		}, []Class{ClassConflictingLine}},
		{"matches no value", func(t *Tree) {
			t.Lines = slices.Insert(t.Lines, 0, line("11", "112", LimitGreater, "9223372036854775807"))
		}, []Class{ClassConflictingLine}},
		{"repeated node id", func(t *Tree) { t.Nodes = append(t.Nodes, Node{ID: "0", Type: Leaf}) }, []Class{ClassNode}},
		{"empty node id", func(t *Tree) { t.Nodes = append(t.Nodes, Node{Type: Leaf}) }, []Class{ClassNode}},
		{"unknown node type", func(t *Tree) { t.Nodes[7].Type = 3 }, []Class{ClassNode}},
		{"unknown rule key", func(t *Tree) { t.Nodes[1].RuleKey = "userShoeSize" }, []Class{ClassNode}},
		{"branch without a rule key", func(t *Tree) { t.Nodes[1].RuleKey = "" }, []Class{ClassNode}},
		{"branch with a value", func(t *Tree) { t.Nodes[1].Value = 5 }, []Class{ClassNode}},
		{"leaf with a rule key and default", func(t *Tree) {
			t.Nodes[3].RuleKey, t.Nodes[3].Default = "userAge", "0"
		}, []Class{ClassNode}},
		{"negative leaf value", func(t *Tree) { t.Nodes[3].Value = -2 }, []Class{ClassNode}},
		{"empty tree id", func(t *Tree) { t.ID = "" }, []Class{ClassTree}},
		{"tree id with a space", func(t *Tree) { t.ID = "a b" }, []Class{ClassTree}},
		{"too many nodes", func(t *Tree) {
			for len(t.Nodes) <= MaxNodes {
				t.Nodes = append(t.Nodes, Node{ID: strings.Repeat("x", len(t.Nodes)%200+1), Type: Leaf})
			}
		}, []Class{ClassTree}},
		{"too many lines", func(t *Tree) { t.Lines = make([]Line, MaxLines+1) }, []Class{ClassTree}},
		{"string too long", func(t *Tree) { t.Name = strings.Repeat("n", MaxStringLen+1) }, []Class{ClassTree}},
		{"root is a leaf", func(t *Tree) {
			*t = Tree{ID: "one", Root: "a", Nodes: []Node{{ID: "a", Type: Leaf, Value: 9}}}
		}, nil},
		{"branch with only a default", func(t *Tree) {
			t.Lines = slices.Delete(t.Lines, 4, 6)
			t.Nodes = slices.Delete(t.Nodes, 5, 7)
		}, nil},
		{"nothing at all", func(t *Tree) { *t = Tree{} }, []Class{ClassTree, ClassUnknownRoot}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := loadSeed(t, "yaml")
			tt.mutate(tree)
			err := tree.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected problems:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no problem found, want %v", tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not match ErrInvalid: %v", err)
			}
			var got []Class
			for _, p := range problems(err) {
				if !slices.Contains(got, p.Class) {
					got = append(got, p.Class)
				}
			}
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("classes %v, want %v; problems:\n%v", got, want, err)
			}
			// The same tree cannot be compiled or evaluated.
			if _, err := Compile(tree); !errors.Is(err, ErrInvalid) {
				t.Errorf("Compile: %v", err)
			}
			if _, _, err := Evaluate(tree, nil); !errors.Is(err, ErrInvalid) {
				t.Errorf("Evaluate: %v", err)
			}
		})
	}
}

// TestValidateListsEveryProblem breaks a tree in several ways at once.
func TestValidateListsEveryProblem(t *testing.T) {
	tree := loadSeed(t, "json")
	tree.Nodes[1].Default = ""                     // no default
	tree.Lines[0].LimitType = LimitLess            // type mismatch
	tree.Lines[4].To = "ghost"                     // dangling
	tree.Lines = append(tree.Lines, tree.Lines[5]) // duplicate
	tree.Nodes = append(tree.Nodes, Node{ID: "lost", Type: Leaf})
	err := tree.Validate()
	ps := problems(err)
	want := []string{
		`rules: node "11": no default: a branch needs a default`,
		`rules: line 0 ("1" -> "11"): type mismatch: userGender is a string attribute; "<" compares integers`,
		`rules: line 4 ("12" -> "ghost"): dangling: to "ghost" is not a node`,
		`rules: line 6 ("12" -> "122"): duplicate line: repeats line 5`,
		`rules: node "121": unreachable: no path from the root "1" leads here`,
		`rules: node "lost": unreachable: no path from the root "1" leads here`,
	}
	if len(ps) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in\n%v", w, err)
		}
	}
	var p *Problem
	if !errors.As(err, &p) || p.Class != ClassNoDefault {
		t.Errorf("errors.As found %v", p)
	}
}

func TestClassString(t *testing.T) {
	for c := ClassTree; c <= ClassConflictingLine; c++ {
		if s := c.String(); s == "" || strings.HasPrefix(s, "class(") {
			t.Errorf("class %d has no name", c)
		}
	}
	if s := Class(99).String(); s != "class(99)" {
		t.Errorf("Class(99) = %q", s)
	}
}
