package rules

import (
	"fmt"
	"math/bits"
	"slices"
	"strconv"

	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/flashlottery/lottery/sdk/wasmgen"
)

// InputAddr is where a compiled module's input buffer starts (its
// input_ptr). The buffer is abi.MaxInputSize bytes (its input_cap).
const InputAddr = 0

// Memory layout after the input buffer: the decoded attributes the node
// functions read (the presence bits of the keys as an i32, an i64 per
// integer key, an i32 per string key: the index of its value among the
// tree's constants, and the userTags bit sets: an i64 per 64 tag
// constants), then the string table (see strtable.go) and the constants'
// bytes.
const (
	seenAddr  = InputAddr + abi.MaxInputSize
	intAddr   = seenAddr + 8 // + 8*key
	symAddr   = intAddr + 8*keySlots
	tagsAddr  = symAddr + 4*keySlots // + 8*word
	tableAddr = 8192
	keySlots  = 8 // keys 0..maxStandardKey, rounded up
)

// The tag bit sets must end before the table (a negative value here does
// not compile).
const _ = uint16(tableAddr - (tagsAddr + 8*MaxValues/64))

// Keys 1..6 as bit masks over the key number: the string-typed keys, and the
// keys that may appear at most once (abi.Key.Type and Repeatable).
const (
	stringKeyMask  = 1<<abi.KeyUserGender | 1<<abi.KeyUserTags | 1<<abi.KeyUserCity
	onceKeyMask    = 1<<abi.KeyUserAge | 1<<abi.KeyUserGender | 1<<abi.KeyUserLevel | 1<<abi.KeyUserCity | 1<<abi.KeyDaysSinceRegistration
	maxStandardKey = abi.KeyDaysSinceRegistration
)

// Compile validates t and translates it into a rule module implementing
// ABI v1 (sdk/README.md): it exports memory (of a fixed size: one page,
// more for thousands of string constants), lottery_abi_version, input_ptr,
// input_cap and decide(ptr, len) -> i64. decide checks the input exactly as
// abi.RuleInput.UnmarshalBinary does (returning abi.CodeVersion or
// abi.CodeBadInput where it fails), then returns what Evaluate answers for
// the decoded attributes: the leaf's activity id, or 0 for no match. The
// module imports nothing, and the same tree always compiles to the same
// bytes.
func Compile(t *Tree) ([]byte, error) {
	p, err := t.check()
	if err != nil {
		return nil, err
	}
	bin, err := p.compile()
	if err != nil {
		return nil, fmt.Errorf("rules: compile tree %q: %w", t.ID, err)
	}
	return bin, nil
}

// gen holds the state of one compilation: the decide function, its locals
// and the string constants the tree compares with.
type gen struct {
	p *plan
	f *wasmgen.Func

	ptr, length uint32 // parameters
	// Decoder locals.
	at, end, n, key, typ, seen, slen, sp, scratch, word uint32
	// Attribute locals, per key the tree tests: the value of an integer
	// attribute (present iff its bit is set in seen) and, for userGender
	// and userCity, the 1-based index of its value among the tree's
	// constants for that key (0: absent or none of them). 0 means unused
	// (locals 0 and 1 are the parameters).
	intVal   [maxStandardKey + 1]uint32
	sym      [maxStandardKey + 1]uint32
	consts   [maxStandardKey + 1][]string
	constIdx [maxStandardKey + 1]map[string]int
	tagWords int           // i64 bit sets over the tag constants
	lookup   *wasmgen.Func // the string table lookup, if there are constants

	branches []int                 // the reachable branch nodes, in order()
	funcs    map[int]*wasmgen.Func // branch node -> its function
}

func (p *plan) compile() ([]byte, error) {
	g := &gen{p: p}
	g.branches = g.order()
	g.collect()
	table := g.table()
	var m wasmgen.Module
	m.Names = true // a trap's stack trace names the function; a few bytes
	pages := uint32(1)
	if table != nil {
		pages = uint32((tableAddr + len(table.mem) + wasmgen.PageSize - 1) / wasmgen.PageSize)
	}
	m.Memory(wasmgen.Limits{Min: pages, Max: pages, HasMax: true})
	m.Export(abi.ExportMemory, wasmgen.ExternMemory, 0)
	for _, c := range []struct {
		name string
		v    int32
	}{{abi.ExportVersion, abi.Version}, {abi.ExportInputPtr, InputAddr}, {abi.ExportInputCap, abi.MaxInputSize}} {
		f := m.Func(c.name, wasmgen.FuncType{Results: []wasmgen.ValType{wasmgen.I32}})
		f.I32Const(c.v)
		m.ExportFunc(c.name, f)
	}
	if table != nil {
		m.Data(tableAddr, table.mem)
		g.lookup = table.lookupFunc(&m)
	}
	i32 := wasmgen.I32
	g.f = m.Func(abi.ExportDecide, wasmgen.FuncType{Params: []wasmgen.ValType{i32, i32}, Results: []wasmgen.ValType{wasmgen.I64}})
	g.ptr, g.length = g.f.Param(0), g.f.Param(1)
	g.locals()
	g.decode()
	g.spill()
	g.walk(&m)
	m.ExportFunc(abi.ExportDecide, g.f)
	return m.Encode()
}

// collect finds the keys the tree tests and their string constants, in
// order of first use.
func (g *gen) collect() {
	for _, i := range g.branches {
		n := &g.p.nodes[i]
		if g.constIdx[n.key] == nil {
			g.constIdx[n.key] = make(map[string]int) // marks the key used
		}
		for _, l := range n.lines {
			for _, s := range l.cond.strs {
				if _, ok := g.constIdx[n.key][s]; !ok {
					g.consts[n.key] = append(g.consts[n.key], s)
					g.constIdx[n.key][s] = len(g.consts[n.key]) // 1-based
				}
			}
		}
	}
	g.tagWords = (len(g.consts[abi.KeyUserTags]) + 63) / 64
}

// table builds the string table over every constant, nil if there are none.
func (g *gen) table() *strTable {
	var entries []strEntry
	for k := abi.Key(1); k <= maxStandardKey; k++ {
		for i, s := range g.consts[k] {
			entries = append(entries, strEntry{key: k, s: s, id: uint16(i + 1)})
		}
	}
	if len(entries) == 0 {
		return nil
	}
	return buildTable(entries)
}

// locals declares the decoder's and the attributes' locals.
func (g *gen) locals() {
	f := g.f
	for _, v := range []*uint32{&g.at, &g.end, &g.n, &g.key, &g.typ, &g.seen, &g.slen, &g.sp, &g.scratch, &g.word} {
		*v = f.Local(wasmgen.I32)
	}
	for k := abi.Key(1); k <= maxStandardKey; k++ {
		switch {
		case g.constIdx[k] == nil || k == abi.KeyUserTags:
		case k.Type() == abi.AttrInt:
			g.intVal[k] = f.Local(wasmgen.I64)
		case len(g.consts[k]) > 0: // else no line tests the value
			g.sym[k] = f.Local(wasmgen.I32)
		}
	}
}

// order returns the branch nodes reachable from the root in a topological
// order (the root first; every line and default leads to a later node or a
// leaf). Validation ruled out cycles.
func (g *gen) order() []int {
	nodes := g.p.nodes
	seen := make([]bool, len(nodes))
	var post []int
	var visit func(i int)
	visit = func(i int) {
		if seen[i] || nodes[i].leaf {
			return
		}
		seen[i] = true
		for _, l := range nodes[i].lines {
			visit(l.to)
		}
		visit(nodes[i].def)
		post = append(post, i)
	}
	visit(g.p.root)
	slices.Reverse(post)
	return post
}

func (g *gen) inc(v uint32, by int32) {
	g.f.LocalGet(v)
	g.f.I32Const(by)
	g.f.Op(wasmgen.I32Add)
	g.f.LocalSet(v)
}

// failIf returns code when the i32 on the stack is not zero.
func (g *gen) failIf(code abi.Code) {
	g.f.If(wasmgen.Void)
	g.f.I64Const(int64(code))
	g.f.Return()
	g.f.End()
}

// decode emits the input checks of abi.RuleInput.UnmarshalBinary, in its
// order, and one pass over the attributes that stores those the tree tests.
func (g *gen) decode() {
	f := g.f
	bad := abi.CodeBadInput
	// len < 2; version; 16 <= len <= MaxInputSize; reserved bytes; n.
	f.LocalGet(g.length)
	f.I32Const(2)
	f.Op(wasmgen.I32LtU)
	g.failIf(bad)
	f.LocalGet(g.ptr)
	f.Load(wasmgen.I32Load16U, 0)
	f.I32Const(abi.Version)
	f.Op(wasmgen.I32Ne)
	g.failIf(abi.CodeVersion)
	f.LocalGet(g.length)
	f.I32Const(abi.RuleHeaderSize)
	f.Op(wasmgen.I32Sub)
	f.I32Const(abi.MaxInputSize - abi.RuleHeaderSize)
	f.Op(wasmgen.I32GtU)
	g.failIf(bad)
	f.LocalGet(g.ptr)
	f.Load(wasmgen.I32Load8U, 2)
	f.LocalGet(g.ptr)
	f.Load(wasmgen.I32Load, 4)
	f.Op(wasmgen.I32Or)
	g.failIf(bad)
	f.LocalGet(g.ptr)
	f.Load(wasmgen.I32Load8U, 3)
	f.LocalTee(g.n)
	f.I32Const(abi.MaxAttrs)
	f.Op(wasmgen.I32GtU)
	g.failIf(bad)
	f.LocalGet(g.ptr)
	f.I32Const(abi.RuleHeaderSize)
	f.Op(wasmgen.I32Add)
	f.LocalSet(g.at)
	f.LocalGet(g.ptr)
	f.LocalGet(g.length)
	f.Op(wasmgen.I32Add)
	f.LocalSet(g.end)

	g.clearTags()

	// The attributes; at <= end holds throughout.
	done := f.Block(wasmgen.Void)
	loop := f.Loop(wasmgen.Void)
	f.LocalGet(g.n)
	f.Op(wasmgen.I32Eqz)
	f.BrIf(done)
	g.inc(g.n, -1)
	g.remainingBelow(g.at, 2)
	g.failIf(bad)
	f.LocalGet(g.at)
	f.Load(wasmgen.I32Load8U, 0)
	f.LocalTee(g.key)
	f.Op(wasmgen.I32Eqz)
	g.failIf(bad)
	f.LocalGet(g.at)
	f.Load(wasmgen.I32Load8U, 1)
	f.LocalTee(g.typ)
	f.I32Const(1)
	f.Op(wasmgen.I32Sub)
	f.I32Const(2)
	f.Op(wasmgen.I32GeU) // type is not 1 or 2
	g.failIf(bad)
	// A standard key: its type, and at most once unless it is userTags.
	f.LocalGet(g.key)
	f.I32Const(int32(maxStandardKey))
	f.Op(wasmgen.I32LeU)
	f.If(wasmgen.Void)
	f.LocalGet(g.typ)
	f.I32Const(stringKeyMask)
	f.LocalGet(g.key)
	f.Op(wasmgen.I32ShrU)
	f.I32Const(1)
	f.Op(wasmgen.I32And)
	f.I32Const(1)
	f.Op(wasmgen.I32Add) // the key's type: 1 int, 2 string
	f.Op(wasmgen.I32Ne)
	g.failIf(bad)
	f.I32Const(1)
	f.LocalGet(g.key)
	f.Op(wasmgen.I32Shl)
	f.I32Const(onceKeyMask)
	f.Op(wasmgen.I32And)
	f.LocalTee(g.scratch)
	f.LocalGet(g.seen)
	f.Op(wasmgen.I32And)
	g.failIf(bad)
	f.LocalGet(g.seen)
	f.LocalGet(g.scratch)
	f.Op(wasmgen.I32Or)
	f.LocalSet(g.seen)
	f.End()
	g.inc(g.at, 2)

	f.LocalGet(g.typ)
	f.I32Const(int32(abi.AttrInt))
	f.Op(wasmgen.I32Eq)
	f.If(wasmgen.Void)
	g.remainingBelow(g.at, 8)
	g.failIf(bad)
	for k := abi.Key(1); k <= maxStandardKey; k++ {
		if g.intVal[k] == 0 {
			continue
		}
		g.ifKey(k)
		f.LocalGet(g.at)
		f.Load(wasmgen.I64Load, 0)
		f.LocalSet(g.intVal[k])
		f.End()
	}
	g.inc(g.at, 8)
	f.Else()
	g.remainingBelow(g.at, 1)
	g.failIf(bad)
	f.LocalGet(g.at)
	f.Load(wasmgen.I32Load8U, 0)
	f.LocalSet(g.slen)
	f.LocalGet(g.at)
	f.I32Const(1)
	f.Op(wasmgen.I32Add)
	f.LocalTee(g.sp)
	f.LocalGet(g.slen)
	f.Op(wasmgen.I32Add)
	f.LocalSet(g.at)
	// end - sp < slen: the string runs past the input.
	f.LocalGet(g.end)
	f.LocalGet(g.sp)
	f.Op(wasmgen.I32Sub)
	f.LocalGet(g.slen)
	f.Op(wasmgen.I32LtU)
	g.failIf(bad)
	for k := abi.Key(1); k <= maxStandardKey; k++ {
		if g.sym[k] == 0 && (k != abi.KeyUserTags || g.tagWords == 0) {
			continue
		}
		g.ifKey(k)
		g.intern(k)
		f.End()
	}
	f.End()
	f.Br(loop)
	f.End() // loop
	f.End() // done
	f.LocalGet(g.at)
	f.LocalGet(g.end)
	f.Op(wasmgen.I32Ne) // bytes after the last attribute
	g.failIf(bad)
}

// spill stores the decoded attributes where the node functions read them.
// Every call stores every slot they read (the tag bit sets are cleared
// before decoding), so nothing leaks from one call into the next.
func (g *gen) spill() {
	f := g.f
	store := func(local, addr uint32, op wasmgen.Opcode) {
		f.I32Const(int32(addr))
		f.LocalGet(local)
		f.Store(op, 0)
	}
	store(g.seen, seenAddr, wasmgen.I32Store)
	for k := abi.Key(1); k <= maxStandardKey; k++ {
		if g.intVal[k] != 0 {
			store(g.intVal[k], intAddr+8*uint32(k), wasmgen.I64Store)
		}
		if g.sym[k] != 0 {
			store(g.sym[k], symAddr+4*uint32(k), wasmgen.I32Store)
		}
	}
}

// load pushes the value at addr, stored by spill.
func (g *gen) load(addr uint32, op wasmgen.Opcode) {
	g.f.I32Const(int32(addr))
	g.f.Load(op, 0)
}

// remainingBelow pushes whether fewer than n bytes are left after at.
func (g *gen) remainingBelow(at uint32, n int32) {
	g.f.LocalGet(g.end)
	g.f.LocalGet(at)
	g.f.Op(wasmgen.I32Sub)
	g.f.I32Const(n)
	g.f.Op(wasmgen.I32LtU)
}

// ifKey opens an if on the current attribute's key being k.
func (g *gen) ifKey(k abi.Key) {
	g.f.LocalGet(g.key)
	g.f.I32Const(int32(k))
	g.f.Op(wasmgen.I32Eq)
	g.f.If(wasmgen.Void)
}

// intern looks the current string (sp, slen) up among the tree's constants
// for k, and records its index (userGender, userCity) or sets its bit in
// the tag bit sets (userTags).
func (g *gen) intern(k abi.Key) {
	f := g.f
	f.I32Const(int32(k))
	f.LocalGet(g.sp)
	f.LocalGet(g.slen)
	f.CallFunc(g.lookup)
	if k != abi.KeyUserTags {
		f.LocalSet(g.sym[k])
		return
	}
	// Bit id-1 of the sets at tagsAddr.
	f.LocalTee(g.scratch)
	f.If(wasmgen.Void)
	f.LocalGet(g.scratch)
	f.I32Const(1)
	f.Op(wasmgen.I32Sub)
	f.LocalTee(g.scratch)
	f.I32Const(6)
	f.Op(wasmgen.I32ShrU)
	f.I32Const(3)
	f.Op(wasmgen.I32Shl)
	f.LocalTee(g.word) // the word's offset
	f.LocalGet(g.word)
	f.Load(wasmgen.I64Load, tagsAddr)
	f.I64Const(1)
	f.LocalGet(g.scratch)
	f.Op(wasmgen.I64ExtendI32U, wasmgen.I64Shl) // i64.shl takes the shift mod 64
	f.Op(wasmgen.I64Or)
	f.Store(wasmgen.I64Store, tagsAddr)
	f.End()
}

// clearTags zeroes the tag bit sets.
func (g *gen) clearTags() {
	f := g.f
	if g.tagWords <= 4 {
		for w := range g.tagWords {
			f.I32Const(int32(tagsAddr + 8*w))
			f.I64Const(0)
			f.Store(wasmgen.I64Store, 0)
		}
		return
	}
	f.I32Const(tagsAddr)
	f.I32Const(0)
	f.I32Const(int32(8 * g.tagWords))
	f.MemoryFill()
}

// walk emits the tree as straight-line code: one function per branch node,
// () -> i64, whose lines return a leaf's value or the result of calling
// the function of the branch they lead to. decide calls the root's. No
// node's code is emitted twice, however many lines lead to it, and each
// function is small: wazero compiles one function with a thousand nested
// blocks (one per node) in time that grows with the square of their number,
// while small functions cost it linear time; a call costs a few
// nanoseconds per level.
func (g *gen) walk(m *wasmgen.Module) {
	decide := g.f
	if len(g.branches) == 0 { // the root is a leaf
		decide.I64Const(g.p.nodes[g.p.root].value)
		return
	}
	g.funcs = make(map[int]*wasmgen.Func, len(g.branches))
	for _, i := range g.branches {
		g.funcs[i] = m.Func("node "+strconv.Itoa(i), wasmgen.FuncType{Results: []wasmgen.ValType{wasmgen.I64}})
	}
	decide.CallFunc(g.funcs[g.p.root])
	for _, i := range g.branches {
		g.f = g.funcs[i]
		g.branch(&g.p.nodes[i])
	}
	g.f = decide
}

// branch emits one branch node: a missing attribute takes the default,
// then each line in order, then the default.
func (g *gen) branch(n *pnode) {
	f := g.f
	if n.key.Type() == abi.AttrInt {
		g.load(seenAddr, wasmgen.I32Load)
		f.I32Const(1 << n.key)
		f.Op(wasmgen.I32And)
		f.Op(wasmgen.I32Eqz)
		g.goIf(n.def)
	}
	// String keys need no presence test: an absent attribute has sym 0 (or
	// no tag bits), which no line tests for.
	for _, l := range n.lines {
		g.cond(n.key, &l.cond)
		g.goIf(l.to)
	}
	g.goTo(n.def)
}

// cond pushes whether the current attributes satisfy c (an i32).
func (g *gen) cond(k abi.Key, c *cond) {
	f := g.f
	switch {
	case k == abi.KeyUserTags:
		// "has any of": the tags' bits, word by word.
		var masks []uint64
		for _, s := range c.strs {
			b := g.constIdx[k][s] - 1
			for len(masks) <= b/64 {
				masks = append(masks, 0)
			}
			masks[b/64] |= 1 << (b % 64)
		}
		first := true
		for w, m := range masks {
			if m == 0 {
				continue
			}
			g.load(tagsAddr+8*uint32(w), wasmgen.I64Load)
			f.I64Const(int64(m))
			f.Op(wasmgen.I64And)
			f.I64Const(0)
			f.Op(wasmgen.I64Ne)
			if !first {
				f.Op(wasmgen.I32Or)
			}
			first = false
		}
	case c.strs != nil:
		// The value's index is one of the line's: tested 64 indices at a
		// time (a shift of a mask), since enums mostly list constants
		// with neighbouring indices, or one by one where a window holds one.
		sym := symAddr + 4*uint32(k)
		for i, w := range g.windows(k, c.strs) {
			if bits.OnesCount64(w.mask) == 1 {
				g.load(sym, wasmgen.I32Load)
				f.I32Const(int32(w.base + bits.TrailingZeros64(w.mask)))
				f.Op(wasmgen.I32Eq)
			} else {
				g.load(sym, wasmgen.I32Load)
				f.I32Const(6)
				f.Op(wasmgen.I32ShrU)
				f.I32Const(int32(w.base >> 6))
				f.Op(wasmgen.I32Eq)
				f.I64Const(signed(w.mask))
				g.load(sym, wasmgen.I32Load)
				f.Op(wasmgen.I64ExtendI32U, wasmgen.I64ShrU, wasmgen.I32WrapI64) // the shift is taken mod 64
				f.I32Const(1)
				f.Op(wasmgen.I32And, wasmgen.I32And)
			}
			if i > 0 {
				f.Op(wasmgen.I32Or)
			}
		}
	case c.op == LimitEqual || c.op == LimitEnum:
		for i, v := range c.ints {
			g.load(intAddr+8*uint32(k), wasmgen.I64Load)
			f.I64Const(v)
			f.Op(wasmgen.I64Eq)
			if i > 0 {
				f.Op(wasmgen.I32Or)
			}
		}
	default:
		g.load(intAddr+8*uint32(k), wasmgen.I64Load)
		f.I64Const(c.ints[0])
		f.Op(compareOps[c.op])
	}
}

// window is a set of constant indices in [base, base+64): bit i of mask
// stands for base+i.
type window struct {
	base int
	mask uint64
}

// windows groups the indices of the constants strs of key k by 64.
func (g *gen) windows(k abi.Key, strs []string) []window {
	var out []window
	ids := make([]int, len(strs))
	for i, s := range strs {
		ids[i] = g.constIdx[k][s]
	}
	slices.Sort(ids)
	for _, id := range ids {
		base := id &^ 63
		if len(out) == 0 || out[len(out)-1].base != base {
			out = append(out, window{base: base})
		}
		out[len(out)-1].mask |= 1 << (id & 63)
	}
	return out
}

// compareOps are the signed i64 comparisons of the comparison limit types.
var compareOps = [...]wasmgen.Opcode{
	LimitGreater:      wasmgen.I64GtS,
	LimitLess:         wasmgen.I64LtS,
	LimitGreaterEqual: wasmgen.I64GeS,
	LimitLessEqual:    wasmgen.I64LeS,
}

// goIf goes to node i if the i32 on the stack is not zero.
func (g *gen) goIf(i int) {
	g.f.If(wasmgen.Void)
	g.goTo(i)
	g.f.End()
}

// goTo returns node i's answer: a leaf's value, or what its function
// returns.
func (g *gen) goTo(i int) {
	if n := &g.p.nodes[i]; n.leaf {
		g.f.I64Const(n.value)
	} else {
		g.f.CallFunc(g.funcs[i])
	}
	g.f.Return()
}
