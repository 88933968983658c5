package wasmgen

import (
	"errors"
	"fmt"
)

// BlockType is the result type of a block, loop or if: Void or one value.
type BlockType byte

// Block types.
const (
	Void      BlockType = 0x40
	ResultI32 BlockType = BlockType(I32)
	ResultI64 BlockType = BlockType(I64)
)

// Label names an enclosing block, loop or if (or the function body) as a
// branch target. Br and BrIf turn it into the relative depth Wasm wants, so
// generators never count nesting by hand. Branching to a block or an if
// jumps to its end; branching to a loop jumps to its start. A Label is valid
// until its construct's End; the zero Label is never valid.
type Label struct {
	id    int
	depth int // number of constructs open inside the function, this one included
}

const funcLabelID = -1

type construct struct {
	id      int
	op      Opcode
	hasElse bool
}

// Func is a function under construction: its signature, its locals and
// (embedded) its Code. The function's final end is added by Module.Encode.
type Func struct {
	Code
	m       *Module
	name    string
	typ     uint32
	ft      FuncType
	index   uint32
	nlocals uint32    // parameters plus declared locals
	locals  []ValType // declared locals, after the parameters
}

// Index returns the function index, for Call and Export.
func (f *Func) Index() uint32 { return f.index }

// Param returns the local index of parameter i (which is i).
func (f *Func) Param(i int) uint32 {
	if i < 0 || i >= len(f.ft.Params) {
		f.fail("parameter %d of %d", i, len(f.ft.Params))
	}
	return uint32(i)
}

// Local declares a local of type t (zero-initialised on entry) and returns
// its index.
func (f *Func) Local(t ValType) uint32 {
	if !t.valid() {
		f.fail("local of invalid type %v", t)
	}
	f.locals = append(f.locals, t)
	f.nlocals++
	return f.nlocals - 1
}

// Body returns the label of the function body: a branch to it returns.
func (f *Func) Body() Label { return Label{id: funcLabelID} }

func (f *Func) check(nfuncs uint32) error {
	c := &f.Code
	if c.err != nil {
		return fmt.Errorf("wasmgen: func %d %q: %w", f.index, f.name, c.err)
	}
	var errs []error
	if len(c.open) > 0 {
		errs = append(errs, fmt.Errorf("%d blocks not closed", len(c.open)))
	}
	if c.maxCall >= int64(nfuncs) {
		errs = append(errs, fmt.Errorf("call to function %d of %d", c.maxCall, nfuncs))
	}
	for _, g := range c.globalsSet {
		if g < uint32(len(f.m.globals)) && !f.m.globals[g].mutable {
			errs = append(errs, fmt.Errorf("global.set of immutable global %d", g))
		}
	}
	if c.maxGlobal >= int64(len(f.m.globals)) {
		errs = append(errs, fmt.Errorf("global %d of %d", c.maxGlobal, len(f.m.globals)))
	}
	if c.usesMemory && f.m.memory == nil {
		errs = append(errs, errors.New("memory instruction without a memory"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("wasmgen: func %d %q: %w", f.index, f.name, err)
	}
	return nil
}

func (f *Func) appendBody(b []byte) []byte {
	// Locals are declared in runs of one type.
	var runs uint32
	for i := range f.locals {
		if i == 0 || f.locals[i] != f.locals[i-1] {
			runs++
		}
	}
	b = appendU32(b, runs)
	for i := 0; i < len(f.locals); {
		j := i
		for j < len(f.locals) && f.locals[j] == f.locals[i] {
			j++
		}
		b = appendU32(b, uint32(j-i))
		b = append(b, byte(f.locals[i]))
		i = j
	}
	b = append(b, f.Code.b...)
	return append(b, byte(opEnd))
}

// Code is the instruction stream of a function body, obtained through the
// Func that embeds it. Each method appends one
// instruction; operands come from the stack in Wasm's order (push the left
// operand first). Mistakes are recorded, not panicked: Module.Encode reports
// the first one per function.
type Code struct {
	b          []byte
	open       []construct
	nextID     int
	err        error
	maxCall    int64
	maxGlobal  int64
	globalsSet []uint32
	usesMemory bool
	nlocals    *uint32
}

func (c *Code) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf(format, args...)
	}
}

func (c *Code) init() {
	if c.nextID == 0 {
		c.nextID = 1
		c.maxCall, c.maxGlobal = -1, -1
	}
}

// Len returns the number of code bytes emitted so far.
func (c *Code) Len() int { return len(c.b) }

// Op emits an instruction without immediates: arithmetic, comparisons,
// conversions, Drop, Select, Nop, Unreachable, Return.
func (c *Code) Op(ops ...Opcode) {
	for _, op := range ops {
		if !op.plain() {
			c.fail("opcode %#x needs immediates; use its Code method", byte(op))
			continue
		}
		c.b = append(c.b, byte(op))
	}
}

// I32Const pushes an i32 constant.
func (c *Code) I32Const(v int32) { c.b = appendS64(append(c.b, byte(opI32Const)), int64(v)) }

// I64Const pushes an i64 constant. Use int64(uint64Value) for unsigned
// constants; the bits are what count.
func (c *Code) I64Const(v int64) { c.b = appendS64(append(c.b, byte(opI64Const)), v) }

func (c *Code) local(op Opcode, i uint32) {
	if c.nlocals != nil && i >= *c.nlocals {
		c.fail("local %d of %d", i, *c.nlocals)
	}
	c.b = appendU32(append(c.b, byte(op)), i)
}

// LocalGet pushes local i.
func (c *Code) LocalGet(i uint32) { c.local(opLocalGet, i) }

// LocalSet pops into local i.
func (c *Code) LocalSet(i uint32) { c.local(opLocalSet, i) }

// LocalTee stores the top of the stack into local i and keeps it.
func (c *Code) LocalTee(i uint32) { c.local(opLocalTee, i) }

func (c *Code) global(op Opcode, i uint32) {
	c.init()
	if int64(i) > c.maxGlobal {
		c.maxGlobal = int64(i)
	}
	c.b = appendU32(append(c.b, byte(op)), i)
}

// GlobalGet pushes global i.
func (c *Code) GlobalGet(i uint32) { c.global(opGlobalGet, i) }

// GlobalSet pops into global i, which must be mutable.
func (c *Code) GlobalSet(i uint32) {
	c.globalsSet = append(c.globalsSet, i)
	c.global(opGlobalSet, i)
}

// Load emits a load (I32Load ... I64Load32U) from the address on the stack
// plus offset, with its natural alignment as the hint. Unaligned addresses
// are still correct in Wasm, only possibly slower.
func (c *Code) Load(op Opcode, offset uint32) {
	if !op.isLoad() {
		c.fail("opcode %#x is not an integer load", byte(op))
		return
	}
	c.memarg(op, offset)
}

// Store emits a store (I32Store ... I64Store32): it pops the value, then the
// address, and writes at address plus offset.
func (c *Code) Store(op Opcode, offset uint32) {
	if !op.isStore() {
		c.fail("opcode %#x is not an integer store", byte(op))
		return
	}
	c.memarg(op, offset)
}

func (c *Code) memarg(op Opcode, offset uint32) {
	c.usesMemory = true
	c.b = append(c.b, byte(op))
	c.b = appendU32(c.b, uint32(op.naturalAlign()))
	c.b = appendU32(c.b, offset)
}

// MemorySize pushes the memory size in pages.
func (c *Code) MemorySize() {
	c.usesMemory = true
	c.b = append(c.b, byte(opMemSize), 0)
}

// MemoryGrow pops a page count, grows memory and pushes the old size in
// pages, or -1 if it cannot grow (for example beyond the maximum).
func (c *Code) MemoryGrow() {
	c.usesMemory = true
	c.b = append(c.b, byte(opMemGrow), 0)
}

// MemoryCopy pops length, source and destination (pushed in the order
// dst, src, len) and copies; the ranges may overlap. Bulk memory (Wasm 2.0).
func (c *Code) MemoryCopy() {
	c.usesMemory = true
	c.b = appendU32(append(c.b, byte(opPrefixFC)), memCopySubcode)
	c.b = append(c.b, 0, 0)
}

// MemoryFill pops length, byte value and destination (pushed in the order
// dst, value, len) and fills. Bulk memory (Wasm 2.0).
func (c *Code) MemoryFill() {
	c.usesMemory = true
	c.b = appendU32(append(c.b, byte(opPrefixFC)), memFillSubcode)
	c.b = append(c.b, 0)
}

func (c *Code) push(op Opcode, bt BlockType) Label {
	c.init()
	if bt != Void && !ValType(bt).valid() {
		c.fail("invalid block type %#x", byte(bt))
	}
	id := c.nextID
	c.nextID++
	c.open = append(c.open, construct{id: id, op: op})
	c.b = append(c.b, byte(op), byte(bt))
	return Label{id: id, depth: len(c.open)}
}

// Block opens a block; a branch to its label jumps past its End.
func (c *Code) Block(bt BlockType) Label { return c.push(opBlock, bt) }

// Loop opens a loop; a branch to its label jumps back to its start. Falling
// through its End leaves the loop.
func (c *Code) Loop(bt BlockType) Label { return c.push(opLoop, bt) }

// If pops an i32 condition and runs the following code if it is not zero,
// else the code after Else (if any). A branch to its label jumps past End.
func (c *Code) If(bt BlockType) Label { return c.push(opIf, bt) }

// Else starts the else arm of the innermost open If.
func (c *Code) Else() {
	n := len(c.open)
	if n == 0 || c.open[n-1].op != opIf || c.open[n-1].hasElse {
		c.fail("else without an open if")
		return
	}
	c.open[n-1].hasElse = true
	c.b = append(c.b, byte(opElse))
}

// End closes the innermost open block, loop or if.
func (c *Code) End() {
	if len(c.open) == 0 {
		c.fail("end without an open block (the function's end is implicit)")
		return
	}
	c.open = c.open[:len(c.open)-1]
	c.b = append(c.b, byte(opEnd))
}

func (c *Code) relDepth(l Label) uint32 {
	switch {
	case l.id == funcLabelID && l.depth == 0:
		return uint32(len(c.open))
	case l.id > 0 && l.depth >= 1 && l.depth <= len(c.open) && c.open[l.depth-1].id == l.id:
		return uint32(len(c.open) - l.depth)
	}
	c.fail("branch to a label that is not open")
	return 0
}

// Br branches unconditionally to l.
func (c *Code) Br(l Label) { c.b = appendU32(append(c.b, byte(opBr)), c.relDepth(l)) }

// BrIf pops an i32 and branches to l if it is not zero.
func (c *Code) BrIf(l Label) { c.b = appendU32(append(c.b, byte(opBrIf)), c.relDepth(l)) }

// BrTable pops an i32 index and branches to targets[index], or to def when
// the index is out of range.
func (c *Code) BrTable(targets []Label, def Label) {
	c.b = append(c.b, byte(opBrTable))
	c.b = appendU32(c.b, uint32(len(targets)))
	for _, l := range targets {
		c.b = appendU32(c.b, c.relDepth(l))
	}
	c.b = appendU32(c.b, c.relDepth(def))
}

// Return returns from the function with the results on the stack.
func (c *Code) Return() { c.b = append(c.b, byte(Return)) }

// Unreachable traps.
func (c *Code) Unreachable() { c.b = append(c.b, byte(Unreachable)) }

// Drop pops and discards a value.
func (c *Code) Drop() { c.b = append(c.b, byte(Drop)) }

// Select pops a condition and two values and pushes the first value if the
// condition is not zero, else the second.
func (c *Code) Select() { c.b = append(c.b, byte(Select)) }

// Call calls the function with index i (an import or a defined function).
func (c *Code) Call(i uint32) {
	c.init()
	if int64(i) > c.maxCall {
		c.maxCall = int64(i)
	}
	c.b = appendU32(append(c.b, byte(opCall)), i)
}

// CallFunc calls f.
func (c *Code) CallFunc(f *Func) { c.Call(f.index) }
