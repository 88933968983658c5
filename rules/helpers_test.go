package rules

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// loadSeed decodes testdata/seed_tree.<ext>.
func loadSeed(tb testing.TB, ext string) *Tree {
	tb.Helper()
	b, err := os.ReadFile("testdata/seed_tree." + ext)
	if err != nil {
		tb.Fatal(err)
	}
	t, err := Decode(b)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// ruleModule is an instantiated rule module, called the way the host calls
// it: input written at input_ptr, decide called with a cached function and
// a reused stack.
type ruleModule struct {
	mod    api.Module
	decide api.Function
	ptr    uint32
	stack  []uint64
}

func instantiate(tb testing.TB, ctx context.Context, r wazero.Runtime, bin []byte) *ruleModule {
	tb.Helper()
	mod, err := r.Instantiate(ctx, bin)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { mod.Close(ctx) })
	// The exports and signatures the host checks at upload.
	for _, e := range abi.Exports(abi.KindRule) {
		fn := mod.ExportedFunction(e.Name)
		if fn == nil {
			tb.Fatalf("no export %s", e.Name)
		}
		d := fn.Definition()
		if !slices.Equal(valueTypes(d.ParamTypes()), e.Params) || !slices.Equal(valueTypes(d.ResultTypes()), e.Results) {
			tb.Fatalf("%s: %v -> %v, want %v -> %v", e.Name, d.ParamTypes(), d.ResultTypes(), e.Params, e.Results)
		}
	}
	if mod.Memory() == nil || mod.ExportedMemory(abi.ExportMemory) == nil {
		tb.Fatal("no memory export")
	}
	call := func(name string) uint64 {
		res, err := mod.ExportedFunction(name).Call(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		return res[0]
	}
	if v := call(abi.ExportVersion); v != abi.Version {
		tb.Fatalf("version %d", v)
	}
	ptr, capacity := uint32(call(abi.ExportInputPtr)), uint32(call(abi.ExportInputCap))
	if capacity < abi.MaxInputSize || uint64(ptr)+uint64(capacity) > uint64(mod.Memory().Size()) {
		tb.Fatalf("input buffer [%d, +%d) in %d bytes of memory", ptr, capacity, mod.Memory().Size())
	}
	return &ruleModule{mod: mod, decide: mod.ExportedFunction(abi.ExportDecide), ptr: ptr, stack: make([]uint64, 2)}
}

func valueTypes(ts []api.ValueType) []abi.ValueType {
	out := make([]abi.ValueType, len(ts))
	for i, t := range ts {
		out[i] = abi.ValueType(t)
	}
	return out
}

// call writes in (at most abi.MaxInputSize bytes) and calls decide with
// length n, which may claim more than was written.
func (m *ruleModule) call(ctx context.Context, in []byte, n int) (int64, error) {
	if !m.mod.Memory().Write(m.ptr, in) {
		return 0, errors.New("input does not fit")
	}
	m.stack[0], m.stack[1] = uint64(m.ptr), uint64(n)
	if err := m.decide.CallWithStack(ctx, m.stack); err != nil {
		return 0, err
	}
	return int64(m.stack[0]), nil
}

// reference is what a module must return for the input bytes b: the
// decoder's error code, else the evaluator's answer.
func reference(tb testing.TB, e *Evaluator, b []byte) int64 {
	var in abi.RuleInput
	if err := in.UnmarshalBinary(b); err != nil {
		return int64(abi.CodeOf(err))
	}
	v, _, err := e.Evaluate(in.Attrs)
	if err != nil {
		tb.Fatalf("evaluate decoded input: %v", err)
	}
	return v
}

// Vocabulary of the random trees and attributes: few values, so that lines
// and attributes meet often; strings of lengths that exercise every chunk
// size of the compiled comparisons, and pairs that differ in one byte.
var (
	genStrings = []string{"", "man", "woman", "x", "ab", "abc", "abcd", "abcde", "abcdefg", "abcdefgh", "abcdefgi",
		"abcdefghi", "beijing", "shanghai", "shenzhen", "vip", "new", "0123456789abcdef", "0123456789abcdeF", "0123456789abcdef0",
		string(make([]byte, 255))}
	genInts = []int64{math.MinInt64, math.MinInt64 + 1, -1, 0, 1, 2, 17, 18, 24, 25, 26, 30, 60, 100, math.MaxInt64 - 1, math.MaxInt64}
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// randomTree returns a random valid tree: a DAG of branches over every
// rule key and limit type, leaves with activity ids or 0, lines of a branch
// interleaved with other branches' lines, dead lines removed, unreachable
// nodes pruned.
func randomTree(r *rand.Rand) *Tree {
	nb, nl := 1+r.IntN(8), 1+r.IntN(5)
	t := &Tree{ID: "random", Root: "b0"}
	for i := range nb {
		t.Nodes = append(t.Nodes, Node{ID: fmt.Sprintf("b%d", i), Type: Branch, RuleKey: abi.Key(1 + r.IntN(6)).String()})
	}
	for i := range nl {
		v := int64(0)
		if r.IntN(4) > 0 {
			v = pick(r, []int64{1, 100001, 100002, 100003, math.MaxInt64, int64(1 + r.IntN(1000))})
		}
		t.Nodes = append(t.Nodes, Node{ID: fmt.Sprintf("l%d", i), Type: Leaf, Value: v})
	}
	target := func(i int) string { // a later branch or any leaf
		if j := i + 1 + r.IntN(nb-i+nl-1); j < nb {
			return t.Nodes[j].ID
		}
		return t.Nodes[nb+r.IntN(nl)].ID
	}
	perNode := make([][]Line, nb)
	for i := range nb {
		n := &t.Nodes[i]
		n.Default = target(i)
		key, _ := abi.ParseKey(n.RuleKey)
		var lines []Line
		for range r.IntN(6) {
			l := Line{From: n.ID, To: target(i), LimitType: LimitEqual}
			if key.Type() == abi.AttrInt {
				l.LimitType = LimitType(1 + r.IntN(6))
			} else if r.IntN(2) == 0 {
				l.LimitType = LimitEnum
			}
			count := 1
			if l.LimitType == LimitEnum {
				count = 1 + r.IntN(4)
			}
			for len(l.LimitValue) < count {
				var v string
				if key.Type() == abi.AttrInt {
					v = fmt.Sprint(pick(r, genInts))
				} else {
					v = pick(r, genStrings)
				}
				if !slices.Contains(l.LimitValue, v) {
					l.LimitValue = append(l.LimitValue, v)
				}
			}
			lines = append(lines, l)
		}
		perNode[i] = dropDeadLines(key, lines)
	}
	// Interleave the branches' lines, keeping each branch's order.
	for {
		var open []int
		for i, ls := range perNode {
			if len(ls) > 0 {
				open = append(open, i)
			}
		}
		if len(open) == 0 {
			break
		}
		i := pick(r, open)
		t.Lines = append(t.Lines, perNode[i][0])
		perNode[i] = perNode[i][1:]
	}
	prune(t)
	return t
}

// dropDeadLines removes the lines no value would take, using the same
// analysis as Validate (which reports them).
func dropDeadLines(key abi.Key, lines []Line) []Line {
	var c checker
	pl := make([]pline, len(lines))
	for i := range lines {
		cd, ok := parseCond(&c, treePlace{}, key, &lines[i])
		if !ok {
			panic(c.probs)
		}
		pl[i] = pline{cond: cd}
	}
	alive := live(pl)
	var out []Line
	for i, l := range lines {
		if alive[i] {
			out = append(out, l)
		}
	}
	return out
}

// prune removes the nodes the root does not reach, and their lines.
func prune(t *Tree) {
	reach := map[string]bool{t.Root: true}
	for changed := true; changed; {
		changed = false
		mark := func(id string) {
			if !reach[id] {
				reach[id], changed = true, true
			}
		}
		for _, n := range t.Nodes {
			if reach[n.ID] && n.Type == Branch {
				mark(n.Default)
			}
		}
		for _, l := range t.Lines {
			if reach[l.From] {
				mark(l.To)
			}
		}
	}
	t.Nodes = slices.DeleteFunc(t.Nodes, func(n Node) bool { return !reach[n.ID] })
	t.Lines = slices.DeleteFunc(t.Lines, func(l Line) bool { return !reach[l.From] })
}

// randomInput returns random attributes for t's keys, encoded, and now and
// then corrupted: a flipped byte, a cut, a repeated key, a wrong type.
func randomInput(r *rand.Rand) []byte {
	in := abi.RuleInput{TimeMs: r.Int64()}
	for k := abi.Key(1); k <= maxStandardKey; k++ {
		if r.IntN(5) == 0 {
			continue // missing
		}
		switch {
		case k == abi.KeyUserTags:
			for range r.IntN(4) {
				in.Attrs = append(in.Attrs, abi.StrAttr(k, randomString(r)))
			}
		case k.Type() == abi.AttrInt:
			v := pick(r, genInts)
			if r.IntN(4) == 0 {
				v = r.Int64N(200) - 50
			}
			in.Attrs = append(in.Attrs, abi.IntAttr(k, v))
		default:
			in.Attrs = append(in.Attrs, abi.StrAttr(k, randomString(r)))
		}
	}
	if r.IntN(4) == 0 { // keys the tree does not know
		in.Attrs = append(in.Attrs, abi.IntAttr(abi.Key(7+r.IntN(249)), r.Int64()), abi.StrAttr(200, randomString(r)))
	}
	r.Shuffle(len(in.Attrs), func(i, j int) { in.Attrs[i], in.Attrs[j] = in.Attrs[j], in.Attrs[i] })
	b, err := in.MarshalBinary()
	if err != nil {
		panic(err)
	}
	switch r.IntN(20) {
	case 0:
		b[r.IntN(len(b))] ^= byte(1 << r.IntN(8))
	case 1:
		b = b[:r.IntN(len(b))]
	case 2: // repeat the first attribute, fixing the count
		if len(in.Attrs) > 0 && b[3] < 255 {
			first := abi.RuleInput{Attrs: in.Attrs[:1]}
			one, _ := first.MarshalBinary()
			b = append(b, one[abi.RuleHeaderSize:]...)
			b[3]++
		}
	case 3: // a string where an int belongs, or the reverse
		if len(b) > abi.RuleHeaderSize+1 {
			b[abi.RuleHeaderSize+1] ^= 3
		}
	case 4:
		b = append(b, byte(r.IntN(256)))
	}
	return b
}

func randomString(r *rand.Rand) string {
	if r.IntN(6) == 0 {
		b := make([]byte, r.IntN(20))
		for i := range b {
			b[i] = byte('a' + r.IntN(3))
		}
		return string(b)
	}
	return pick(r, genStrings)
}

// problems returns the problems in a Validate error.
func problems(err error) []*Problem {
	var out []*Problem
	var walk func(error)
	walk = func(err error) {
		if p, ok := err.(*Problem); ok {
			out = append(out, p)
			return
		}
		if u, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range u.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}
