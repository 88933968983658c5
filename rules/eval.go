package rules

import (
	"slices"

	"github.com/flashlottery/lottery/sdk/abi"
)

// Evaluator walks one validated tree natively. It is the reference the
// compiled modules are tested against, and cheap enough to serve: an
// evaluation allocates nothing. It is safe for concurrent use.
type Evaluator struct {
	p *plan
}

// NewEvaluator validates t and returns its evaluator. The evaluator keeps
// its own resolved copy: later changes to t do not affect it.
func NewEvaluator(t *Tree) (*Evaluator, error) {
	p, err := t.check()
	if err != nil {
		return nil, err
	}
	return &Evaluator{p: p}, nil
}

// Evaluate walks the tree over attrs, the attributes of an abi.RuleInput.
// At each branch it tries the branch's lines in the order of Tree.Lines;
// the first whose condition holds is taken, and when none holds, or the
// branch's attribute is missing, the default is. The leaf reached answers:
// its activity id and true, or 0 and false for a "no match" leaf (value 0).
// Attributes that abi.RuleInput.Validate rejects (a repeated userAge, a
// string for an integer key, more than abi.MaxAttrs) are an error wrapping
// abi.CodeBadInput, the code a compiled module returns for them.
func (e *Evaluator) Evaluate(attrs []abi.Attr) (activityID int64, matched bool, err error) {
	in := abi.RuleInput{Attrs: attrs}
	if err := in.Validate(); err != nil {
		return 0, false, err
	}
	nodes := e.p.nodes
	n := &nodes[e.p.root]
	for !n.leaf {
		n = &nodes[n.next(&in)]
	}
	return n.value, n.value != abi.NoMatch, nil
}

// next returns the node a branch leads to for in's attributes.
func (n *pnode) next(in *abi.RuleInput) int {
	if n.key == abi.KeyUserTags {
		for i := range n.lines {
			if hasAnyTag(in.Attrs, n.lines[i].cond.strs) {
				return n.lines[i].to
			}
		}
		return n.def
	}
	a, ok := in.Lookup(n.key)
	if !ok {
		return n.def
	}
	for i := range n.lines {
		if n.lines[i].cond.holds(a) {
			return n.lines[i].to
		}
	}
	return n.def
}

// hasAnyTag reports whether one of the userTags attributes is in tags.
func hasAnyTag(attrs []abi.Attr, tags []string) bool {
	for _, a := range attrs {
		if a.Key == abi.KeyUserTags && slices.Contains(tags, a.Str) {
			return true
		}
	}
	return false
}

// holds reports whether the single-valued attribute a satisfies cd.
func (cd *cond) holds(a abi.Attr) bool {
	if cd.strs != nil {
		return slices.Contains(cd.strs, a.Str) // = is an enum of one
	}
	v, c := a.Int, cd.ints[0]
	switch cd.op {
	case LimitGreater:
		return v > c
	case LimitLess:
		return v < c
	case LimitGreaterEqual:
		return v >= c
	case LimitLessEqual:
		return v <= c
	}
	return slices.Contains(cd.ints, v)
}

// Evaluate validates t and evaluates it over attrs (see
// Evaluator.Evaluate). To evaluate one tree many times, use NewEvaluator
// once.
func Evaluate(t *Tree, attrs []abi.Attr) (activityID int64, matched bool, err error) {
	e, err := NewEvaluator(t)
	if err != nil {
		return 0, false, err
	}
	return e.Evaluate(attrs)
}
