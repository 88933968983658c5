package rules

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/flashlottery/lottery/sdk/abi"
)

// ErrInvalid is what every problem Validate reports matches with
// errors.Is: the tree is wrong, not the system. The HTTP edge maps it to
// 400.
var ErrInvalid = errors.New("rules: invalid tree")

// Class is the kind of a Problem.
type Class uint8

// Problem classes.
const (
	// ClassTree means the tree's own fields are wrong: an empty or
	// malformed id, sizes beyond the bounds.
	ClassTree Class = iota + 1
	// ClassUnknownRoot means the root is empty or names no node.
	ClassUnknownRoot
	// ClassNode means a node's own fields are wrong: an empty or repeated
	// id, an unknown type or rule key, a leaf with a rule key or default, a
	// branch with a value, a negative value.
	ClassNode
	// ClassDangling means a line or default names a node that does not
	// exist.
	ClassDangling
	// ClassUnreachable means no path leads from the root to the node.
	ClassUnreachable
	// ClassCycle means a path leads from a node back to itself.
	ClassCycle
	// ClassNoDefault means a branch has no default.
	ClassNoDefault
	// ClassLeafLines means a line leaves a leaf.
	ClassLeafLines
	// ClassTypeMismatch means a comparison (>, <, >=, <=) on a string
	// attribute, or a value that is not an integer for an integer
	// attribute (in any line, enums included).
	ClassTypeMismatch
	// ClassLimit means a limit is wrong in itself: an unknown limit type,
	// the wrong number of values, an integer out of the int64 range, a
	// string longer than any attribute can be, a value an enum lists twice.
	ClassLimit
	// ClassDuplicateLine means a line repeats an earlier line of its
	// branch: the same condition (as a set of values) and target.
	ClassDuplicateLine
	// ClassConflictingLine means a line can never be taken: earlier lines of
	// its branch match every value it matches (the same condition leading
	// elsewhere, or several lines covering it), or it matches no value.
	ClassConflictingLine
)

var classNames = [...]string{"", "malformed", "unknown root", "node", "dangling", "unreachable", "cycle",
	"no default", "leaf with lines", "type mismatch", "limit", "duplicate line", "conflicting line"}

// String returns the class's name, such as "cycle".
func (c Class) String() string {
	if int(c) < len(classNames) && c != 0 {
		return classNames[c]
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// Problem is one thing wrong with a tree. Validate joins every problem it
// finds with errors.Join; errors.As finds the first, and each one matches
// ErrInvalid.
type Problem struct {
	Class Class
	// Where locates the problem: "tree", `node "age"` or
	// `line 3 ("gender" -> "age")` (lines count from 0 in Tree.Lines).
	Where string
	Msg   string
}

// Error returns "rules: where: class: message".
func (p *Problem) Error() string { return "rules: " + p.Where + ": " + p.Class.String() + ": " + p.Msg }

// Is reports whether target is ErrInvalid.
func (p *Problem) Is(target error) bool { return target == ErrInvalid }

// Validate checks the tree and returns every problem it finds, joined with
// errors.Join (nil if there is none). Each is a *Problem matching
// ErrInvalid.
func (t *Tree) Validate() error {
	_, err := t.check()
	return err
}

// plan is a valid tree resolved to indices: what Evaluator walks and
// Compile translates.
type plan struct {
	root  int
	nodes []pnode // Tree.Nodes' order
}

type pnode struct {
	leaf  bool
	value int64   // leaf
	key   abi.Key // branch
	def   int     // branch: the default's index
	lines []pline // branch: in Tree.Lines' order
}

type pline struct {
	to   int
	src  int // the index in Tree.Lines, for messages
	cond cond
}

// cond is a parsed line condition: op with ints (integer keys) or strs
// (string keys): one operand, or an enum's values.
type cond struct {
	op   LimitType
	ints []int64
	strs []string
}

type checker struct {
	probs []error
}

// add records a problem. where is formatted only then: valid trees, the
// common case, cost no formatting.
func (c *checker) add(class Class, where fmt.Stringer, format string, args ...any) {
	c.probs = append(c.probs, &Problem{Class: class, Where: where.String(), Msg: fmt.Sprintf(format, args...)})
}

// Places of problems.
type (
	treePlace struct{}
	nodePlace struct {
		i  int
		id string
	}
	linePlace struct {
		i int
		l *Line
	}
)

func (treePlace) String() string { return "tree" }

func (p nodePlace) String() string {
	if p.id == "" {
		return fmt.Sprintf("node %d", p.i)
	}
	return fmt.Sprintf("node %q", p.id)
}

func (p linePlace) String() string { return fmt.Sprintf("line %d (%q -> %q)", p.i, p.l.From, p.l.To) }

func nodeWhere(i int, id string) nodePlace { return nodePlace{i, id} }

func lineWhere(i int, l *Line) linePlace { return linePlace{i, l} }

var ruleKeys = func() string {
	var names []string
	for k := abi.Key(1); k.Type() != 0; k++ {
		names = append(names, k.String())
	}
	return strings.Join(names, ", ")
}()

// validTreeID reports whether id is a valid Tree.ID.
func validTreeID(id string) bool {
	if id == "" || len(id) > MaxStringLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}

// check validates t and, if it is valid, resolves it into a plan.
func (t *Tree) check() (*plan, error) {
	var c checker
	if t == nil {
		c.add(ClassTree, treePlace{}, "no tree")
		return nil, errors.Join(c.probs...)
	}
	if !validTreeID(t.ID) {
		c.add(ClassTree, treePlace{}, "id %q: want 1 to %d bytes of letters, digits, '.', '_' and '-'", t.ID, MaxStringLen)
	}
	if err := checkBounds(t); err != nil {
		// Stop here: the checks below are linear or n log n in the size,
		// but only bounded trees are worth the time.
		c.add(ClassTree, treePlace{}, "%v", err)
		return nil, errors.Join(c.probs...)
	}

	p := &plan{root: -1, nodes: make([]pnode, len(t.Nodes))}
	index := make(map[string]int, len(t.Nodes))
	for i := range t.Nodes {
		n := &t.Nodes[i]
		where := nodeWhere(i, n.ID)
		if n.ID == "" {
			c.add(ClassNode, where, "empty id")
		} else if j, dup := index[n.ID]; dup {
			c.add(ClassNode, where, "id repeated (first at node %d)", j)
		} else {
			index[n.ID] = i
		}
		pn := &p.nodes[i]
		switch n.Type {
		case Branch:
			key, ok := abi.ParseKey(n.RuleKey)
			switch {
			case n.RuleKey == "":
				c.add(ClassNode, where, "a branch needs a ruleKey (one of %s)", ruleKeys)
			case !ok:
				c.add(ClassNode, where, "unknown ruleKey %q (want one of %s)", n.RuleKey, ruleKeys)
			}
			pn.key = key
			if n.Value != 0 {
				c.add(ClassNode, where, "a branch has no value (got %d); values belong to leaves", n.Value)
			}
		case Leaf:
			pn.leaf, pn.value = true, n.Value
			if n.RuleKey != "" {
				c.add(ClassNode, where, "a leaf tests nothing (got ruleKey %q)", n.RuleKey)
			}
			if n.Default != "" {
				c.add(ClassNode, where, "a leaf has no default (got %q); it ends the walk", n.Default)
			}
			if n.Value < 0 {
				c.add(ClassNode, where, "value %d: want an activity id (>= 1) or 0 for no match", n.Value)
			}
		default:
			c.add(ClassNode, where, "type %d: want 1 (branch) or 2 (leaf)", n.Type)
		}
	}
	// A node with a repeated or empty id cannot be referred to; the checks
	// below consider only the first node of each id.
	named := func(i int) bool { id := t.Nodes[i].ID; return id != "" && index[id] == i }

	switch r, ok := index[t.Root]; {
	case t.Root == "":
		c.add(ClassUnknownRoot, treePlace{}, "no root")
	case !ok:
		c.add(ClassUnknownRoot, treePlace{}, "root %q is not a node", t.Root)
	default:
		p.root = r
	}

	// Defaults.
	edges := make([][]int, len(t.Nodes)) // out-edges: lines, then the default
	for i := range t.Nodes {
		n := &t.Nodes[i]
		if n.Type != Branch {
			continue
		}
		p.nodes[i].def = -1
		if n.Default == "" {
			c.add(ClassNoDefault, nodeWhere(i, n.ID), "a branch needs a default: the node to go to when no line matches or %s is missing", n.RuleKey)
			continue
		}
		d, ok := index[n.Default]
		if !ok {
			c.add(ClassDangling, nodeWhere(i, n.ID), "default %q is not a node", n.Default)
			continue
		}
		p.nodes[i].def = d
	}

	// Lines.
	for i := range t.Lines {
		l := &t.Lines[i]
		where := lineWhere(i, l)
		from, okFrom := index[l.From]
		to, okTo := index[l.To]
		if !okFrom {
			c.add(ClassDangling, where, "from %q is not a node", l.From)
		}
		if !okTo {
			c.add(ClassDangling, where, "to %q is not a node", l.To)
		}
		if !okFrom {
			continue
		}
		fn := &t.Nodes[from]
		if fn.Type == Leaf {
			c.add(ClassLeafLines, where, "a line leaves leaf %q; a leaf ends the walk", l.From)
			continue
		}
		if fn.Type != Branch {
			continue // reported with the node
		}
		if okTo {
			edges[from] = append(edges[from], to)
		}
		if p.nodes[from].key.Type() == 0 {
			continue // an unknown rule key, reported with the node
		}
		if cd, ok := parseCond(&c, where, p.nodes[from].key, l); ok && okTo {
			p.nodes[from].lines = append(p.nodes[from].lines, pline{to: to, src: i, cond: cd})
		}
	}
	for i := range p.nodes {
		if pn := &p.nodes[i]; !pn.leaf && len(pn.lines) > 0 {
			deadLines(&c, t, pn)
		}
		if t.Nodes[i].Type == Branch && p.nodes[i].def >= 0 {
			edges[i] = append(edges[i], p.nodes[i].def)
		}
	}

	checkGraph(&c, t, p.root, edges, named)
	if len(c.probs) > 0 {
		return nil, errors.Join(c.probs...)
	}
	return p, nil
}

// parseCond parses a line's condition for key, reporting its problems.
func parseCond(c *checker, where fmt.Stringer, key abi.Key, l *Line) (cond, bool) {
	cd := cond{op: l.LimitType}
	if l.LimitType < LimitEqual || l.LimitType > LimitEnum {
		c.add(ClassLimit, where, "limit type %d: want 1 to 6 (=, >, <, >=, <=, enum)", l.LimitType)
		return cd, false
	}
	isInt := key.Type() == abi.AttrInt
	if !isInt && l.LimitType.comparison() {
		c.add(ClassTypeMismatch, where, "%s is a string attribute; %q compares integers (use = or enum)", key, l.LimitType)
		return cd, false
	}
	vals := l.LimitValue
	switch {
	case l.LimitType == LimitEnum && len(vals) == 0:
		c.add(ClassLimit, where, "an enum needs at least one value")
		return cd, false
	case l.LimitType == LimitEnum && len(vals) > MaxEnumValues:
		c.add(ClassLimit, where, "an enum lists at most %d values (got %d)", MaxEnumValues, len(vals))
		return cd, false
	case l.LimitType != LimitEnum && len(vals) != 1:
		c.add(ClassLimit, where, "%q takes one value (got %d); enum takes a list", l.LimitType, len(vals))
		return cd, false
	}
	ok := true
	if isInt {
		cd.ints = make([]int64, 0, len(vals))
		for _, s := range vals {
			v, err := strconv.ParseInt(s, 10, 64)
			switch {
			case errors.Is(err, strconv.ErrRange):
				c.add(ClassLimit, where, "%q is out of the int64 range", s)
				ok = false
			case err != nil:
				c.add(ClassTypeMismatch, where, "%q is not a decimal integer, but %s is an integer attribute", s, key)
				ok = false
			case slices.Contains(cd.ints, v):
				c.add(ClassLimit, where, "the enum lists %d twice", v)
				ok = false
			default:
				cd.ints = append(cd.ints, v)
			}
		}
		return cd, ok
	}
	cd.strs = make([]string, 0, len(vals))
	seen := make(map[string]bool, len(vals))
	for _, s := range vals {
		switch {
		case len(s) > abi.MaxStringLen:
			c.add(ClassLimit, where, "a %d-byte value can never match: attribute values are at most %d bytes", len(s), abi.MaxStringLen)
			ok = false
		case seen[s]:
			c.add(ClassLimit, where, "the enum lists %q twice", s)
			ok = false
		default:
			seen[s] = true
			cd.strs = append(cd.strs, s)
		}
	}
	return cd, ok
}

// interval is a closed range of int64 values.
type interval struct{ lo, hi int64 }

// intervals returns the values an integer condition matches, as disjoint
// intervals (none if it matches nothing, such as > MaxInt64).
func (cd *cond) intervals() []interval {
	v := cd.ints[0]
	switch cd.op {
	case LimitGreater:
		if v == math.MaxInt64 {
			return nil
		}
		return []interval{{v + 1, math.MaxInt64}}
	case LimitLess:
		if v == math.MinInt64 {
			return nil
		}
		return []interval{{math.MinInt64, v - 1}}
	case LimitGreaterEqual:
		return []interval{{v, math.MaxInt64}}
	case LimitLessEqual:
		return []interval{{math.MinInt64, v}}
	}
	out := make([]interval, len(cd.ints))
	for i, v := range cd.ints {
		out[i] = interval{v, v}
	}
	return out
}

// setKey returns a canonical text of the set of values cd matches, so
// equal sets (= 25 and enum [25]) have equal keys.
func (cd *cond) setKey() string {
	var b strings.Builder
	if cd.strs != nil {
		s := slices.Clone(cd.strs)
		slices.Sort(s)
		for _, v := range s {
			b.WriteString(strconv.Quote(v))
		}
		return b.String()
	}
	iv := cd.intervals()
	slices.SortFunc(iv, func(a, b interval) int { return cmp.Compare(a.lo, b.lo) })
	for _, r := range iv {
		fmt.Fprintf(&b, "[%d,%d]", r.lo, r.hi)
	}
	return b.String()
}

// live reports, for each line of a branch, whether some attribute value
// takes it: whether it is the first line to match at least one value. On
// userTags a line matching "has any of S" is taken for the tag sets whose
// first matching line it is, which is the same test on single tags.
// Strings: a map from value to its first line. Integers: a sweep over the
// lines' intervals keeping the lowest line index active, so the cost is
// n log n in the number of values and intervals, whatever the values.
func live(lines []pline) []bool {
	alive := make([]bool, len(lines))
	if len(lines) == 0 {
		return alive
	}
	if lines[0].cond.strs != nil {
		first := make(map[string]bool)
		for i, l := range lines {
			for _, s := range l.cond.strs {
				if !first[s] {
					first[s] = true
					alive[i] = true
				}
			}
		}
		return alive
	}
	// Map int64 to uint64 preserving order, so hi+1 has one overflow case.
	u := func(v int64) uint64 { return uint64(v) ^ 1<<63 }
	type start struct {
		at, hi uint64
		line   int
	}
	var starts []start
	var coords []uint64
	for i, l := range lines {
		for _, r := range l.cond.intervals() {
			lo, hi := u(r.lo), u(r.hi)
			starts = append(starts, start{lo, hi, i})
			coords = append(coords, lo)
			if hi != math.MaxUint64 {
				coords = append(coords, hi+1)
			}
		}
	}
	slices.SortFunc(starts, func(a, b start) int { return cmp.Compare(a.at, b.at) })
	slices.Sort(coords)
	coords = slices.Compact(coords)
	var active activeHeap
	j := 0
	for _, at := range coords {
		for ; j < len(starts) && starts[j].at == at; j++ {
			heap.Push(&active, activeLine{line: starts[j].line, hi: starts[j].hi})
		}
		for len(active) > 0 && active[0].hi < at {
			heap.Pop(&active)
		}
		if len(active) > 0 {
			alive[active[0].line] = true
		}
	}
	return alive
}

type activeLine struct {
	line int
	hi   uint64
}

// activeHeap is a min-heap of lines by index.
type activeHeap []activeLine

func (h activeHeap) Len() int           { return len(h) }
func (h activeHeap) Less(i, j int) bool { return h[i].line < h[j].line }
func (h activeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *activeHeap) Push(x any)        { *h = append(*h, x.(activeLine)) }
func (h *activeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// deadLines reports the lines of branch pn that can never be taken.
// Lines with problems of their own are not in pn.lines and not considered.
func deadLines(c *checker, t *Tree, pn *pnode) {
	alive := live(pn.lines)
	if !slices.Contains(alive, false) {
		return
	}
	keys := make([]string, len(pn.lines))
	for i := range pn.lines {
		keys[i] = pn.lines[i].cond.setKey()
	}
	for i, ok := range alive {
		if ok {
			continue
		}
		pl := &pn.lines[i]
		l := &t.Lines[pl.src]
		where := lineWhere(pl.src, l)
		same := -1
		for j := 0; j < i; j++ {
			if keys[j] == keys[i] {
				same = j
				break
			}
		}
		switch {
		case same >= 0 && pn.lines[same].to == pl.to:
			c.add(ClassDuplicateLine, where, "repeats line %d", pn.lines[same].src)
		case same >= 0:
			c.add(ClassConflictingLine, where, "has the same condition as line %d, which goes to %q first; this line is never taken", pn.lines[same].src, t.Lines[pn.lines[same].src].To)
		case keys[i] == "":
			c.add(ClassConflictingLine, where, "%s %s matches no value; the line is never taken", l.LimitType, strings.Join(l.LimitValue, ", "))
		default:
			c.add(ClassConflictingLine, where, "never taken: earlier lines of %q match every value it matches", l.From)
		}
	}
}

// checkGraph reports cycles and nodes the root does not reach.
func checkGraph(c *checker, t *Tree, root int, edges [][]int, named func(int) bool) {
	const (
		white = iota
		grey
		black
	)
	color := make([]uint8, len(t.Nodes))
	var stack []int
	reported := make(map[[2]int]bool)
	var visit func(u int)
	visit = func(u int) {
		color[u] = grey
		stack = append(stack, u)
		for _, v := range edges[u] {
			switch color[v] {
			case white:
				visit(v)
			case grey:
				if reported[[2]int{u, v}] {
					continue
				}
				reported[[2]int{u, v}] = true
				at := slices.Index(stack, v)
				path := make([]string, 0, len(stack)-at+1)
				for _, w := range stack[at:] {
					path = append(path, strconv.Quote(t.Nodes[w].ID))
				}
				path = append(path, strconv.Quote(t.Nodes[v].ID))
				c.add(ClassCycle, nodeWhere(v, t.Nodes[v].ID), "cycle %s", strings.Join(path, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		color[u] = black
	}
	if root >= 0 {
		visit(root)
		for i := range t.Nodes {
			if color[i] == white && named(i) {
				c.add(ClassUnreachable, nodeWhere(i, t.Nodes[i].ID), "no path from the root %q leads here", t.Root)
			}
		}
	}
	for i := range t.Nodes {
		if color[i] == white && named(i) {
			visit(i) // cycles among unreachable nodes are problems too
		}
	}
}
