// Package drawgen generates the built-in draw modules with sdk/wasmgen. It
// is the source the committed .wasm files in wasm/builtin are built from
// (go generate runs it through wasm/builtin/internal/gen), and the tests
// there regenerate them to prove the committed bytes match.
//
// The algorithm is lottery.NativeDrawer's, step for step: integer weights
// (rates in parts per million; in single mode one more "miss" column of
// weight RateScale - sum; in total mode zero weight for an award without
// stock), Vose's alias table over them with the same stack order, then
//
//	r1, r2 := SplitMix64(seed), SplitMix64(seed ^ 0x9e3779b97f4a7c15)
//	col  := hi64(r1 * len(weights))
//	coin := hi64(r2 * sum(weights))
//	if coin < prob[col] { col } else { alias[col] }
//
// with hi64 computed from 32-bit halves, since Wasm has no 64x64->128
// multiplication.
//
// Like NativeDrawer, a module caches its last table, in linear memory, under
// the input's award bytes (rates and stock flags; the mode is fixed per
// module). A draw with the same awards as the previous one on that instance
// compares at most 320 bytes instead of rebuilding; any other draw rebuilds.
// The table is a pure function of those bytes, so the cache cannot change
// an answer, only its cost, and instances need not agree on what they hold.
package drawgen

import (
	"fmt"

	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/flashlottery/lottery/sdk/wasmgen"
)

// Memory layout of a draw module (one 64 KiB page, fixed: the module never
// grows memory).
const (
	// scaledAddr holds i64[65]: the weights scaled by the number of columns,
	// which Vose's construction turns into the table's prob[] in place.
	scaledAddr = 0
	aliasAddr  = 528  // u8[65]: the table's alias[]
	smallAddr  = 600  // u8[65]: Vose's small stack (column indices)
	largeAddr  = 672  // u8[65]: Vose's large stack
	keyAddr    = 744  // u8[320]: the award bytes of the cached table
	inputPtr   = 1088 // the input buffer (input_ptr); abi.MaxInputSize bytes
)

const (
	golden    = 0x9e3779b97f4a7c15 // SplitMix64's increment, also the second stream's key
	mix1      = 0xbf58476d1ce4e5b9
	mix2      = 0x94d049bb133111eb
	lo32      = 0xffffffff
	rateScale = abi.RateScale
)

// Name returns the module file's base name for mode: "draw_single" or
// "draw_total".
func Name(mode abi.Mode) string {
	switch mode {
	case abi.ModeSingle:
		return "draw_single"
	case abi.ModeTotal:
		return "draw_total"
	}
	return ""
}

// Module generates the draw module for mode.
func Module(mode abi.Mode) ([]byte, error) {
	if Name(mode) == "" {
		return nil, fmt.Errorf("drawgen: no built-in module for mode %d", mode)
	}
	var m wasmgen.Module
	m.Names = true // traps name the function; a few bytes
	m.Memory(wasmgen.Limits{Min: 1, Max: 1, HasMax: true})
	m.Export(abi.ExportMemory, wasmgen.ExternMemory, 0)
	m.ExportFunc(abi.ExportVersion, constFunc(&m, abi.ExportVersion, abi.Version))
	m.ExportFunc(abi.ExportInputPtr, constFunc(&m, abi.ExportInputPtr, inputPtr))
	m.ExportFunc(abi.ExportInputCap, constFunc(&m, abi.ExportInputCap, abi.MaxInputSize))
	splitmix := SplitMix64(&m)
	mulhi := MulHi(&m)
	m.ExportFunc(abi.ExportDraw, draw(&m, mode, splitmix, mulhi))
	return m.Encode()
}

// Primitives generates a module exporting the helper functions "splitmix64"
// (i64) -> i64 and "mulhi" (i64, i64) -> i64 exactly as the draw modules
// contain them, for testing against math/bits.
func Primitives() ([]byte, error) {
	var m wasmgen.Module
	m.ExportFunc("splitmix64", SplitMix64(&m))
	m.ExportFunc("mulhi", MulHi(&m))
	return m.Encode()
}

func constFunc(m *wasmgen.Module, name string, v int32) *wasmgen.Func {
	f := m.Func(name, wasmgen.FuncType{Results: []wasmgen.ValType{wasmgen.I32}})
	f.I32Const(v)
	return f
}

// SplitMix64 adds a function (x i64) -> i64 computing lottery.SplitMix64.
func SplitMix64(m *wasmgen.Module) *wasmgen.Func {
	f := m.Func("splitmix64", wasmgen.FuncType{Params: []wasmgen.ValType{wasmgen.I64}, Results: []wasmgen.ValType{wasmgen.I64}})
	x := f.Param(0)
	// x += golden
	f.LocalGet(x)
	f.I64Const(bits64(golden))
	f.Op(wasmgen.I64Add)
	f.LocalSet(x)
	// x = (x ^ x>>30) * mix1; x = (x ^ x>>27) * mix2
	for _, step := range []struct {
		shift int64
		mul   uint64
	}{{30, mix1}, {27, mix2}} {
		f.LocalGet(x)
		f.LocalGet(x)
		f.I64Const(step.shift)
		f.Op(wasmgen.I64ShrU, wasmgen.I64Xor)
		f.I64Const(int64(step.mul))
		f.Op(wasmgen.I64Mul)
		f.LocalSet(x)
	}
	// x ^ x>>31
	f.LocalGet(x)
	f.LocalGet(x)
	f.I64Const(31)
	f.Op(wasmgen.I64ShrU, wasmgen.I64Xor)
	return f
}

// MulHi adds a function (a, b i64) -> i64 returning the high 64 bits of the
// 128-bit product a*b (unsigned), like bits.Mul64's hi, from 32-bit halves:
//
//	ll, lh, hl, hh := alo*blo, alo*bhi, ahi*blo, ahi*bhi
//	mid := ll>>32 + lh&lo32 + hl&lo32         // < 3 * 2^32: no overflow
//	hi  := hh + lh>>32 + hl>>32 + mid>>32
func MulHi(m *wasmgen.Module) *wasmgen.Func {
	f := m.Func("mulhi", wasmgen.FuncType{Params: []wasmgen.ValType{wasmgen.I64, wasmgen.I64}, Results: []wasmgen.ValType{wasmgen.I64}})
	a, b := f.Param(0), f.Param(1)
	alo, ahi, blo, bhi := f.Local(wasmgen.I64), f.Local(wasmgen.I64), f.Local(wasmgen.I64), f.Local(wasmgen.I64)
	lh, hl := f.Local(wasmgen.I64), f.Local(wasmgen.I64)
	split := func(v, lo, hi uint32) {
		f.LocalGet(v)
		f.I64Const(lo32)
		f.Op(wasmgen.I64And)
		f.LocalSet(lo)
		f.LocalGet(v)
		f.I64Const(32)
		f.Op(wasmgen.I64ShrU)
		f.LocalSet(hi)
	}
	mul := func(x, y, dst uint32) {
		f.LocalGet(x)
		f.LocalGet(y)
		f.Op(wasmgen.I64Mul)
		f.LocalSet(dst)
	}
	split(a, alo, ahi)
	split(b, blo, bhi)
	mul(alo, bhi, lh)
	mul(ahi, blo, hl)
	// hh + lh>>32 + hl>>32
	f.LocalGet(ahi)
	f.LocalGet(bhi)
	f.Op(wasmgen.I64Mul)
	for _, v := range []uint32{lh, hl} {
		f.LocalGet(v)
		f.I64Const(32)
		f.Op(wasmgen.I64ShrU, wasmgen.I64Add)
	}
	// + (ll>>32 + lh&lo32 + hl&lo32) >> 32
	f.LocalGet(alo)
	f.LocalGet(blo)
	f.Op(wasmgen.I64Mul)
	f.I64Const(32)
	f.Op(wasmgen.I64ShrU)
	for _, v := range []uint32{lh, hl} {
		f.LocalGet(v)
		f.I64Const(lo32)
		f.Op(wasmgen.I64And, wasmgen.I64Add)
	}
	f.I64Const(32)
	f.Op(wasmgen.I64ShrU, wasmgen.I64Add)
	return f
}

// draw adds the entry point draw(ptr, len i32) -> i32 for mode, with the
// globals of its one-entry table cache.
func draw(m *wasmgen.Module, mode abi.Mode, splitmix, mulhi *wasmgen.Func) *wasmgen.Func {
	cachedN := m.Global(wasmgen.I32, true, 0) // awards of the cached table; 0: none
	cachedTotal := m.Global(wasmgen.I64, true, 0)
	f := m.Func(abi.ExportDraw, wasmgen.FuncType{Params: []wasmgen.ValType{wasmgen.I32, wasmgen.I32}, Results: []wasmgen.ValType{wasmgen.I32}})
	ptr, length := f.Param(0), f.Param(1)
	var (
		n     = f.Local(wasmgen.I32) // awards
		cols  = f.Local(wasmgen.I32) // alias table columns: n, plus the miss in single mode
		i     = f.Local(wasmgen.I32)
		at    = f.Local(wasmgen.I32) // address of award i, or of a key chunk
		end   = f.Local(wasmgen.I32)
		flag  = f.Local(wasmgen.I32)
		col   = f.Local(wasmgen.I32)
		sp    = f.Local(wasmgen.I32) // small stack size
		lp    = f.Local(wasmgen.I32) // large stack size
		s     = f.Local(wasmgen.I32)
		l     = f.Local(wasmgen.I32)
		w     = f.Local(wasmgen.I64)
		sum   = f.Local(wasmgen.I64)
		total = f.Local(wasmgen.I64)
		seed  = f.Local(wasmgen.I64)
	)
	// failIf returns code when the i32 on the stack is not zero.
	failIf := func(code int32) {
		f.If(wasmgen.Void)
		f.I32Const(code)
		f.Return()
		f.End()
	}
	inc := func(v uint32, by int32) {
		f.LocalGet(v)
		f.I32Const(by)
		f.Op(wasmgen.I32Add)
		f.LocalSet(v)
	}
	// index pushes the address of element v (a local) of an array of
	// 1<<shift-byte elements; loads and stores add the array's address.
	index := func(v uint32, shift int32) {
		f.LocalGet(v)
		if shift > 0 {
			f.I32Const(shift)
			f.Op(wasmgen.I32Shl)
		}
	}
	bad, none := int32(abi.CodeBadInput), int32(abi.NoAward)

	// Header: the checks and their order are abi.DrawInput.UnmarshalBinary's.
	f.LocalGet(length)
	f.I32Const(2)
	f.Op(wasmgen.I32LtU)
	failIf(bad)
	f.LocalGet(ptr)
	f.Load(wasmgen.I32Load16U, 0)
	f.I32Const(abi.Version)
	f.Op(wasmgen.I32Ne)
	failIf(int32(abi.CodeVersion))
	f.LocalGet(length)
	f.I32Const(abi.DrawHeaderSize)
	f.Op(wasmgen.I32LtU)
	failIf(bad)
	// A mode other than ours: unsupported if it is the other valid mode,
	// malformed otherwise.
	f.LocalGet(ptr)
	f.Load(wasmgen.I32Load8U, 2)
	f.LocalTee(flag) // scratch
	f.I32Const(int32(mode))
	f.Op(wasmgen.I32Ne)
	f.If(wasmgen.Void)
	f.I32Const(int32(abi.CodeUnsupported))
	f.I32Const(bad)
	f.LocalGet(flag)
	f.I32Const(1)
	f.Op(wasmgen.I32Sub)
	f.I32Const(2)
	f.Op(wasmgen.I32LtU) // mode-1 < 2: mode is 1 or 2
	f.Select()
	f.Return()
	f.End()
	// 1 <= n <= MaxAwards, as n-1 < MaxAwards unsigned.
	f.LocalGet(ptr)
	f.Load(wasmgen.I32Load8U, 3)
	f.LocalTee(n)
	f.I32Const(1)
	f.Op(wasmgen.I32Sub)
	f.I32Const(abi.MaxAwards)
	f.Op(wasmgen.I32GeU)
	failIf(bad)
	f.LocalGet(ptr)
	f.Load(wasmgen.I32Load, 4) // reserved
	failIf(bad)
	f.LocalGet(length)
	f.LocalGet(n)
	f.I32Const(abi.DrawAwardSize)
	f.Op(wasmgen.I32Mul)
	f.I32Const(abi.DrawHeaderSize)
	f.Op(wasmgen.I32Add, wasmgen.I32Ne)
	failIf(bad)
	f.LocalGet(ptr)
	f.Load(wasmgen.I64Load, 8)
	f.LocalSet(seed)
	f.LocalGet(n)
	if mode == abi.ModeSingle {
		f.I32Const(1)
		f.Op(wasmgen.I32Add)
	}
	f.LocalSet(cols)

	pick := f.Block(wasmgen.Void)
	miss := f.Block(wasmgen.Void)

	// Cache lookup: the table depends only on the award bytes (rates, and in
	// total mode the stock flags), so equal bytes mean the cached table is
	// this input's (and that they were valid). They are compared 8 bytes at
	// a time, the last chunk overlapping the one before so nothing beyond
	// the input is read; hence at least 2 awards (10 bytes).
	f.LocalGet(n)
	f.I32Const(2)
	f.Op(wasmgen.I32LtU)
	f.BrIf(miss)
	f.LocalGet(n)
	f.GlobalGet(cachedN)
	f.Op(wasmgen.I32Ne)
	f.BrIf(miss)
	f.LocalGet(ptr)
	f.I32Const(abi.DrawHeaderSize)
	f.Op(wasmgen.I32Add)
	f.LocalTee(at)
	f.LocalGet(n)
	f.I32Const(abi.DrawAwardSize)
	f.Op(wasmgen.I32Mul)
	f.LocalTee(i) // key length
	f.Op(wasmgen.I32Add)
	f.I32Const(8)
	f.Op(wasmgen.I32Sub)
	f.LocalSet(end) // the last chunk
	f.I32Const(0)
	f.LocalSet(s) // offset into the key
	tail := f.Block(wasmgen.Void)
	cmp := f.Loop(wasmgen.Void)
	f.LocalGet(at)
	f.LocalGet(end)
	f.Op(wasmgen.I32GeU)
	f.BrIf(tail)
	f.LocalGet(at)
	f.Load(wasmgen.I64Load, 0)
	f.LocalGet(s)
	f.Load(wasmgen.I64Load, keyAddr)
	f.Op(wasmgen.I64Ne)
	f.BrIf(miss)
	inc(at, 8)
	inc(s, 8)
	f.Br(cmp)
	f.End()
	f.End()
	f.LocalGet(end)
	f.Load(wasmgen.I64Load, 0)
	f.LocalGet(i)
	f.Load(wasmgen.I64Load, keyAddr-8)
	f.Op(wasmgen.I64Ne)
	f.BrIf(miss)
	f.GlobalGet(cachedTotal)
	f.LocalSet(total)
	f.Br(pick)
	f.End() // miss

	// Build the table. Invalidate the cache first: its arrays are reused.
	f.I32Const(0)
	f.GlobalSet(cachedN)
	// Weights, validated, scaled by cols into scaled[]: the rate (single) or
	// the rate if in stock (total).
	f.LocalGet(ptr)
	f.I32Const(abi.DrawHeaderSize)
	f.Op(wasmgen.I32Add)
	f.LocalSet(at)
	f.I32Const(0)
	f.LocalSet(i)
	done := f.Block(wasmgen.Void)
	loop := f.Loop(wasmgen.Void)
	f.LocalGet(i)
	f.LocalGet(n)
	f.Op(wasmgen.I32GeU)
	f.BrIf(done)
	f.LocalGet(at)
	f.Load(wasmgen.I64Load32U, 0)
	f.LocalTee(w)
	f.I64Const(rateScale)
	f.Op(wasmgen.I64GtU)
	failIf(bad)
	f.LocalGet(at)
	f.Load(wasmgen.I32Load8U, 4)
	f.LocalTee(flag)
	f.I32Const(1)
	f.Op(wasmgen.I32GtU)
	failIf(bad)
	if mode == abi.ModeTotal {
		f.LocalGet(w)
		f.I64Const(0)
		f.LocalGet(flag)
		f.Select()
		f.LocalSet(w)
	}
	index(i, 3)
	f.LocalGet(w)
	f.LocalGet(cols)
	f.Op(wasmgen.I64ExtendI32U, wasmgen.I64Mul)
	f.Store(wasmgen.I64Store, scaledAddr)
	f.LocalGet(sum)
	f.LocalGet(w)
	f.Op(wasmgen.I64Add)
	f.LocalSet(sum)
	inc(at, abi.DrawAwardSize)
	inc(i, 1)
	f.Br(loop)
	f.End()
	f.End()

	if mode == abi.ModeSingle {
		// The miss: weight RateScale - sum; the total is RateScale.
		f.LocalGet(sum)
		f.I64Const(rateScale)
		f.Op(wasmgen.I64GtU)
		failIf(bad)
		index(n, 3)
		f.I64Const(rateScale)
		f.LocalGet(sum)
		f.Op(wasmgen.I64Sub)
		f.LocalGet(cols)
		f.Op(wasmgen.I64ExtendI32U, wasmgen.I64Mul)
		f.Store(wasmgen.I64Store, scaledAddr)
		f.I64Const(rateScale)
		f.LocalSet(total)
	} else {
		// Nothing in stock with a positive rate: no award.
		f.LocalGet(sum)
		f.Op(wasmgen.I64Eqz)
		failIf(none)
		f.LocalGet(sum)
		f.LocalSet(total)
	}

	// push appends column v (a local) to the small or large stack by whether
	// the i64 on the stack (v's scaled weight) is below total.
	push := func(v uint32) {
		f.LocalGet(total)
		f.Op(wasmgen.I64LtU)
		f.If(wasmgen.Void)
		f.LocalGet(sp)
		f.LocalGet(v)
		f.Store(wasmgen.I32Store8, smallAddr)
		inc(sp, 1)
		f.Else()
		f.LocalGet(lp)
		f.LocalGet(v)
		f.Store(wasmgen.I32Store8, largeAddr)
		inc(lp, 1)
		f.End()
	}

	// Vose, part 1: sort the columns into the stacks in index order.
	f.I32Const(0)
	f.LocalSet(i)
	done = f.Block(wasmgen.Void)
	loop = f.Loop(wasmgen.Void)
	f.LocalGet(i)
	f.LocalGet(cols)
	f.Op(wasmgen.I32GeU)
	f.BrIf(done)
	index(i, 3)
	f.Load(wasmgen.I64Load, scaledAddr)
	push(i)
	inc(i, 1)
	f.Br(loop)
	f.End()
	f.End()

	// Vose, part 2: pair the top small column s with the top large column l:
	// prob[s] = scaled[s] (left in place: s is never touched again),
	// alias[s] = l, and l gives up what s lacks.
	done = f.Block(wasmgen.Void)
	loop = f.Loop(wasmgen.Void)
	f.LocalGet(sp)
	f.Op(wasmgen.I32Eqz)
	f.LocalGet(lp)
	f.Op(wasmgen.I32Eqz)
	f.Op(wasmgen.I32Or)
	f.BrIf(done)
	for _, pop := range []struct {
		top, dst uint32
		addr     uint32
	}{{sp, s, smallAddr}, {lp, l, largeAddr}} {
		f.LocalGet(pop.top)
		f.I32Const(1)
		f.Op(wasmgen.I32Sub)
		f.LocalTee(pop.top)
		f.Load(wasmgen.I32Load8U, pop.addr)
		f.LocalSet(pop.dst)
	}
	f.LocalGet(s)
	f.LocalGet(l)
	f.Store(wasmgen.I32Store8, aliasAddr)
	// scaled[l] -= total - scaled[s] (never below zero: scaled[l] >= total)
	index(l, 3)
	index(l, 3)
	f.Load(wasmgen.I64Load, scaledAddr)
	index(s, 3)
	f.Load(wasmgen.I64Load, scaledAddr)
	f.Op(wasmgen.I64Add)
	f.LocalGet(total)
	f.Op(wasmgen.I64Sub)
	f.LocalTee(w)
	f.Store(wasmgen.I64Store, scaledAddr)
	f.LocalGet(w)
	push(l)
	f.Br(loop)
	f.End()
	f.End()

	// Columns left on the large stack need prob = total, which they already
	// have: each pairing removes one column and exactly total from the sum of
	// the remaining scaled weights, which starts at cols*total, so the
	// remaining columns, none below total, are all exactly total (and the
	// small stack cannot outlast the large one). Integer arithmetic has no
	// rounding leftovers.

	// Remember the table under its award bytes.
	f.I32Const(keyAddr)
	f.LocalGet(ptr)
	f.I32Const(abi.DrawHeaderSize)
	f.Op(wasmgen.I32Add)
	f.LocalGet(n)
	f.I32Const(abi.DrawAwardSize)
	f.Op(wasmgen.I32Mul)
	f.MemoryCopy()
	f.LocalGet(n)
	f.GlobalSet(cachedN)
	f.LocalGet(total)
	f.GlobalSet(cachedTotal)
	f.End() // pick

	// col = hi(SplitMix64(seed) * cols); coin = hi(SplitMix64(seed^golden) * total);
	// the outcome is col if coin < prob[col], else alias[col].
	f.LocalGet(seed)
	f.CallFunc(splitmix)
	f.LocalGet(cols)
	f.Op(wasmgen.I64ExtendI32U)
	f.CallFunc(mulhi)
	f.Op(wasmgen.I32WrapI64)
	f.LocalTee(col)
	f.LocalGet(col)
	f.Load(wasmgen.I32Load8U, aliasAddr)
	f.LocalGet(seed)
	f.I64Const(bits64(golden))
	f.Op(wasmgen.I64Xor)
	f.CallFunc(splitmix)
	f.LocalGet(total)
	f.CallFunc(mulhi)
	index(col, 3)
	f.Load(wasmgen.I64Load, scaledAddr)
	f.Op(wasmgen.I64LtU)
	f.Select()
	f.LocalSet(col)

	if mode == abi.ModeSingle {
		// The miss column, or an award without stock: no award.
		f.LocalGet(col)
		f.LocalGet(n)
		f.Op(wasmgen.I32Eq)
		failIf(none)
		f.LocalGet(ptr)
		f.LocalGet(col)
		f.I32Const(abi.DrawAwardSize)
		f.Op(wasmgen.I32Mul, wasmgen.I32Add)
		f.Load(wasmgen.I32Load8U, abi.DrawHeaderSize+4)
		f.Op(wasmgen.I32Eqz)
		failIf(none)
	}
	f.LocalGet(col)
	return f
}

// bits64 reinterprets an unsigned constant as the i64 immediate with the
// same bits.
func bits64(v uint64) int64 { return int64(v) }
