package wasmgen

import (
	"bytes"
	"context"
	"math"
	"math/bits"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// instantiate compiles and instantiates the encoded module with wazero, which
// validates it fully (types, stack, indices), and closes it with the test.
func instantiate(t testing.TB, m *Module, host ...func(wazero.Runtime)) api.Module {
	t.Helper()
	bin, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	t.Cleanup(func() { r.Close(ctx) })
	for _, h := range host {
		h(r)
	}
	mod, err := r.Instantiate(ctx, bin)
	if err != nil {
		t.Fatalf("wazero rejected the module: %v\n% x", err, bin)
	}
	return mod
}

func call(t testing.TB, mod api.Module, name string, args ...uint64) []uint64 {
	t.Helper()
	res, err := mod.ExportedFunction(name).Call(context.Background(), args...)
	if err != nil {
		t.Fatalf("%s%v: %v", name, args, err)
	}
	return res
}

func TestEncodeEmpty(t *testing.T) {
	var m Module
	got, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte("\x00asm\x01\x00\x00\x00"); !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
	instantiate(t, &m)
}

func TestEncodeGolden(t *testing.T) {
	// (module (func (export "add") (param i32 i32) (result i32)
	//   local.get 0 local.get 1 i32.add))
	var m Module
	f := m.Func("add", FuncType{Params: []ValType{I32, I32}, Results: []ValType{I32}})
	f.LocalGet(f.Param(0))
	f.LocalGet(f.Param(1))
	f.Op(I32Add)
	m.ExportFunc("add", f)
	got, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
		0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f, // type section
		0x03, 0x02, 0x01, 0x00, // function section
		0x07, 0x07, 0x01, 0x03, 'a', 'd', 'd', 0x00, 0x00, // export section
		0x0a, 0x09, 0x01, 0x07, 0x00, 0x20, 0x00, 0x20, 0x01, 0x6a, 0x0b, // code section
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got  % x\nwant % x", got, want)
	}
	mod := instantiate(t, &m)
	if r := call(t, mod, "add", 40, 2); r[0] != 42 {
		t.Fatalf("add(40, 2) = %d", r[0])
	}
}

var i64Samples = []uint64{0, 1, 2, 3, 7, 63, 64, 65, 0x7f, 0x80, 0xff, 0x1234_5678, 0x8000_0000, 0xffff_ffff, 1 << 32,
	0x9e37_79b9_7f4a_7c15, 0xbf58_476d_1ce4_e5b9, 1<<63 - 1, 1 << 63, math.MaxUint64, math.MaxUint64 - 1}

func TestBinaryOps(t *testing.T) {
	b := func(v bool) uint64 {
		if v {
			return 1
		}
		return 0
	}
	ops64 := []struct {
		op Opcode
		f  func(a, b uint64) uint64
	}{
		{I64Add, func(a, b uint64) uint64 { return a + b }},
		{I64Sub, func(a, b uint64) uint64 { return a - b }},
		{I64Mul, func(a, b uint64) uint64 { return a * b }},
		{I64DivU, func(a, b uint64) uint64 { return a / b }},
		{I64RemU, func(a, b uint64) uint64 { return a % b }},
		{I64DivS, func(a, b uint64) uint64 { return uint64(int64(a) / int64(b)) }},
		{I64RemS, func(a, b uint64) uint64 { return uint64(int64(a) % int64(b)) }},
		{I64And, func(a, b uint64) uint64 { return a & b }},
		{I64Or, func(a, b uint64) uint64 { return a | b }},
		{I64Xor, func(a, b uint64) uint64 { return a ^ b }},
		{I64Shl, func(a, b uint64) uint64 { return a << (b & 63) }},
		{I64ShrU, func(a, b uint64) uint64 { return a >> (b & 63) }},
		{I64ShrS, func(a, b uint64) uint64 { return uint64(int64(a) >> (b & 63)) }},
		{I64Rotl, func(a, b uint64) uint64 { return bits.RotateLeft64(a, int(b&63)) }},
		{I64Rotr, func(a, b uint64) uint64 { return bits.RotateLeft64(a, -int(b&63)) }},
		{I64Eq, func(a, c uint64) uint64 { return b(a == c) }},
		{I64Ne, func(a, c uint64) uint64 { return b(a != c) }},
		{I64LtU, func(a, c uint64) uint64 { return b(a < c) }},
		{I64GtU, func(a, c uint64) uint64 { return b(a > c) }},
		{I64LeU, func(a, c uint64) uint64 { return b(a <= c) }},
		{I64GeU, func(a, c uint64) uint64 { return b(a >= c) }},
		{I64LtS, func(a, c uint64) uint64 { return b(int64(a) < int64(c)) }},
		{I64GtS, func(a, c uint64) uint64 { return b(int64(a) > int64(c)) }},
		{I64LeS, func(a, c uint64) uint64 { return b(int64(a) <= int64(c)) }},
		{I64GeS, func(a, c uint64) uint64 { return b(int64(a) >= int64(c)) }},
	}
	ops32 := []struct {
		op Opcode
		f  func(a, b uint32) uint32
	}{
		{I32Add, func(a, b uint32) uint32 { return a + b }},
		{I32Sub, func(a, b uint32) uint32 { return a - b }},
		{I32Mul, func(a, b uint32) uint32 { return a * b }},
		{I32DivU, func(a, b uint32) uint32 { return a / b }},
		{I32RemU, func(a, b uint32) uint32 { return a % b }},
		{I32DivS, func(a, b uint32) uint32 { return uint32(int32(a) / int32(b)) }},
		{I32RemS, func(a, b uint32) uint32 { return uint32(int32(a) % int32(b)) }},
		{I32And, func(a, b uint32) uint32 { return a & b }},
		{I32Or, func(a, b uint32) uint32 { return a | b }},
		{I32Xor, func(a, b uint32) uint32 { return a ^ b }},
		{I32Shl, func(a, b uint32) uint32 { return a << (b & 31) }},
		{I32ShrU, func(a, b uint32) uint32 { return a >> (b & 31) }},
		{I32ShrS, func(a, b uint32) uint32 { return uint32(int32(a) >> (b & 31)) }},
		{I32Rotl, func(a, b uint32) uint32 { return bits.RotateLeft32(a, int(b&31)) }},
		{I32Rotr, func(a, b uint32) uint32 { return bits.RotateLeft32(a, -int(b&31)) }},
		{I32Eq, func(a, c uint32) uint32 { return uint32(b(a == c)) }},
		{I32Ne, func(a, c uint32) uint32 { return uint32(b(a != c)) }},
		{I32LtU, func(a, c uint32) uint32 { return uint32(b(a < c)) }},
		{I32GtU, func(a, c uint32) uint32 { return uint32(b(a > c)) }},
		{I32LeU, func(a, c uint32) uint32 { return uint32(b(a <= c)) }},
		{I32GeU, func(a, c uint32) uint32 { return uint32(b(a >= c)) }},
		{I32LtS, func(a, c uint32) uint32 { return uint32(b(int32(a) < int32(c))) }},
		{I32GtS, func(a, c uint32) uint32 { return uint32(b(int32(a) > int32(c))) }},
		{I32LeS, func(a, c uint32) uint32 { return uint32(b(int32(a) <= int32(c))) }},
		{I32GeS, func(a, c uint32) uint32 { return uint32(b(int32(a) >= int32(c))) }},
	}
	var m Module
	for i, o := range ops64 {
		res := I64
		if o.op >= I64Eqz && o.op <= I64GeU {
			res = I32
		}
		f := m.Func("", FuncType{Params: []ValType{I64, I64}, Results: []ValType{res}})
		f.LocalGet(0)
		f.LocalGet(1)
		f.Op(o.op)
		m.Export("op64_"+string(rune('a'+i)), ExternFunc, f.Index())
	}
	for i, o := range ops32 {
		f := m.Func("", FuncType{Params: []ValType{I32, I32}, Results: []ValType{I32}})
		f.LocalGet(0)
		f.LocalGet(1)
		f.Op(o.op)
		m.Export("op32_"+string(rune('a'+i)), ExternFunc, f.Index())
	}
	mod := instantiate(t, &m)
	ctx := context.Background()
	for i, o := range ops64 {
		fn := mod.ExportedFunction("op64_" + string(rune('a'+i)))
		for _, a := range i64Samples {
			for _, c := range i64Samples {
				if (o.op >= I64DivS && o.op <= I64RemU) && (c == 0 || (o.op == I64DivS && a == 1<<63 && c == math.MaxUint64)) {
					continue // traps
				}
				got, err := fn.Call(ctx, a, c)
				if err != nil {
					t.Fatalf("op %#x(%#x, %#x): %v", byte(o.op), a, c, err)
				}
				want := o.f(a, c)
				if o.op >= I64Eqz && o.op <= I64GeU {
					got[0] = uint64(uint32(got[0]))
				}
				if got[0] != want {
					t.Errorf("op %#x(%#x, %#x) = %#x, want %#x", byte(o.op), a, c, got[0], want)
				}
			}
		}
	}
	for i, o := range ops32 {
		fn := mod.ExportedFunction("op32_" + string(rune('a'+i)))
		for _, a64 := range i64Samples {
			for _, c64 := range i64Samples {
				a, c := uint32(a64), uint32(c64)
				if (o.op >= I32DivS && o.op <= I32RemU) && (c == 0 || (o.op == I32DivS && a == 1<<31 && c == math.MaxUint32)) {
					continue
				}
				got, err := fn.Call(ctx, uint64(a), uint64(c))
				if err != nil {
					t.Fatalf("op %#x(%#x, %#x): %v", byte(o.op), a, c, err)
				}
				if want := o.f(a, c); uint32(got[0]) != want {
					t.Errorf("op %#x(%#x, %#x) = %#x, want %#x", byte(o.op), a, c, got[0], want)
				}
			}
		}
	}
}

func TestUnaryOps(t *testing.T) {
	cases := []struct {
		op      Opcode
		in, out ValType
		f       func(uint64) uint64
	}{
		{I64Eqz, I64, I32, func(a uint64) uint64 { return map[bool]uint64{true: 1}[a == 0] }},
		{I32Eqz, I32, I32, func(a uint64) uint64 { return map[bool]uint64{true: 1}[uint32(a) == 0] }},
		{I64Clz, I64, I64, func(a uint64) uint64 { return uint64(bits.LeadingZeros64(a)) }},
		{I64Ctz, I64, I64, func(a uint64) uint64 { return uint64(bits.TrailingZeros64(a)) }},
		{I64Popcnt, I64, I64, func(a uint64) uint64 { return uint64(bits.OnesCount64(a)) }},
		{I32Clz, I32, I32, func(a uint64) uint64 { return uint64(bits.LeadingZeros32(uint32(a))) }},
		{I32Ctz, I32, I32, func(a uint64) uint64 { return uint64(bits.TrailingZeros32(uint32(a))) }},
		{I32Popcnt, I32, I32, func(a uint64) uint64 { return uint64(bits.OnesCount32(uint32(a))) }},
		{I32WrapI64, I64, I32, func(a uint64) uint64 { return uint64(uint32(a)) }},
		{I64ExtendI32S, I32, I64, func(a uint64) uint64 { return uint64(int64(int32(a))) }},
		{I64ExtendI32U, I32, I64, func(a uint64) uint64 { return uint64(uint32(a)) }},
		{I32Extend8S, I32, I32, func(a uint64) uint64 { return uint64(uint32(int32(int8(a)))) }},
		{I32Extend16S, I32, I32, func(a uint64) uint64 { return uint64(uint32(int32(int16(a)))) }},
		{I64Extend8S, I64, I64, func(a uint64) uint64 { return uint64(int64(int8(a))) }},
		{I64Extend16S, I64, I64, func(a uint64) uint64 { return uint64(int64(int16(a))) }},
		{I64Extend32S, I64, I64, func(a uint64) uint64 { return uint64(int64(int32(a))) }},
	}
	var m Module
	for i, tc := range cases {
		f := m.Func("", FuncType{Params: []ValType{tc.in}, Results: []ValType{tc.out}})
		f.LocalGet(0)
		f.Op(tc.op)
		m.Export(string(rune('a'+i)), ExternFunc, f.Index())
	}
	mod := instantiate(t, &m)
	for i, tc := range cases {
		for _, a := range i64Samples {
			if tc.in == I32 {
				a = uint64(uint32(a))
			}
			got := call(t, mod, string(rune('a'+i)), a)[0]
			if tc.out == I32 {
				got = uint64(uint32(got))
			}
			if want := tc.f(a); got != want {
				t.Errorf("op %#x(%#x) = %#x, want %#x", byte(tc.op), a, got, want)
			}
		}
	}
}

func TestConstants(t *testing.T) {
	var m Module
	for i, v := range i64Samples {
		f := m.Func("", FuncType{Results: []ValType{I64}})
		f.I64Const(int64(v))
		m.Export("c64_"+string(rune('a'+i)), ExternFunc, f.Index())
		g := m.Func("", FuncType{Results: []ValType{I32}})
		g.I32Const(int32(v))
		m.Export("c32_"+string(rune('a'+i)), ExternFunc, g.Index())
	}
	mod := instantiate(t, &m)
	for i, v := range i64Samples {
		if got := call(t, mod, "c64_"+string(rune('a'+i)))[0]; got != v {
			t.Errorf("i64.const %#x = %#x", v, got)
		}
		if got := uint32(call(t, mod, "c32_"+string(rune('a'+i)))[0]); got != uint32(v) {
			t.Errorf("i32.const %#x = %#x", uint32(v), got)
		}
	}
}

func TestControlFlow(t *testing.T) {
	var m Module
	i64 := []ValType{I64}

	// sum(n) = 1 + 2 + ... + n with a loop and br_if.
	sum := m.Func("sum", FuncType{Params: i64, Results: i64})
	acc := sum.Local(I64)
	done := sum.Block(Void)
	loop := sum.Loop(Void)
	sum.LocalGet(0)
	sum.Op(I64Eqz)
	sum.BrIf(done)
	sum.LocalGet(acc)
	sum.LocalGet(0)
	sum.Op(I64Add)
	sum.LocalSet(acc)
	sum.LocalGet(0)
	sum.I64Const(1)
	sum.Op(I64Sub)
	sum.LocalSet(0)
	sum.Br(loop)
	sum.End()
	sum.End()
	sum.LocalGet(acc)
	m.ExportFunc("sum", sum)

	// sign(x): if/else with results, nested.
	sign := m.Func("sign", FuncType{Params: i64, Results: []ValType{I32}})
	sign.LocalGet(0)
	sign.I64Const(0)
	sign.Op(I64LtS)
	sign.If(ResultI32)
	sign.I32Const(-1)
	sign.Else()
	sign.LocalGet(0)
	sign.Op(I64Eqz)
	sign.If(ResultI32)
	sign.I32Const(0)
	sign.Else()
	sign.I32Const(1)
	sign.End()
	sign.End()
	m.ExportFunc("sign", sign)

	// pick(i): br_table over three blocks and a default; returns through
	// Return and through a branch to the body label.
	pick := m.Func("pick", FuncType{Params: []ValType{I32}, Results: []ValType{I32}})
	bd := pick.Block(Void)
	b2 := pick.Block(Void)
	b1 := pick.Block(Void)
	b0 := pick.Block(Void)
	pick.LocalGet(0)
	pick.BrTable([]Label{b0, b1, b2}, bd)
	pick.End()
	pick.I32Const(10)
	pick.Return()
	pick.End()
	pick.I32Const(11)
	pick.Br(pick.Body())
	pick.End()
	pick.I32Const(12)
	pick.Return()
	pick.End()
	pick.I32Const(99)
	m.ExportFunc("pick", pick)

	// fallback(i) answers 99 itself for an out-of-range index, else calls pick.
	fallback := m.Func("fallback", FuncType{Params: []ValType{I32}, Results: []ValType{I32}})
	fallback.LocalGet(0)
	fallback.I32Const(3)
	fallback.Op(I32GeU)
	fallback.If(ResultI32)
	fallback.I32Const(99)
	fallback.Else()
	fallback.LocalGet(0)
	fallback.CallFunc(pick)
	fallback.End()
	m.ExportFunc("fallback", fallback)

	// sel(c) uses select and drop.
	sel := m.Func("sel", FuncType{Params: []ValType{I32}, Results: []ValType{I64}})
	sel.I64Const(5)
	sel.I64Const(6)
	sel.I64Const(7)
	sel.Drop()
	sel.LocalGet(0)
	sel.Select()
	m.ExportFunc("sel", sel)

	// trap() hits unreachable.
	trap := m.Func("trap", FuncType{})
	trap.Unreachable()
	m.ExportFunc("trap", trap)

	mod := instantiate(t, &m)
	for _, tc := range []struct {
		fn   string
		arg  uint64
		want uint64
	}{
		{"sum", 0, 0}, {"sum", 1, 1}, {"sum", 100, 5050},
		{"sign", uint64(1<<64 - 5), uint64(uint32(math.MaxUint32))}, {"sign", 0, 0}, {"sign", 9, 1},
		{"fallback", 0, 10}, {"fallback", 1, 11}, {"fallback", 2, 12}, {"fallback", 3, 99}, {"pick", 7, 99},
		{"sel", 1, 5}, {"sel", 0, 6},
	} {
		got := call(t, mod, tc.fn, tc.arg)[0]
		if tc.fn == "sign" || tc.fn == "fallback" || tc.fn == "pick" {
			got = uint64(uint32(got))
		}
		if got != tc.want {
			t.Errorf("%s(%d) = %d, want %d", tc.fn, tc.arg, got, tc.want)
		}
	}
	if _, err := mod.ExportedFunction("trap").Call(context.Background()); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("trap: %v", err)
	}
}

func TestMemoryGlobalsData(t *testing.T) {
	var m Module
	m.Memory(Limits{Min: 1, Max: 2, HasMax: true})
	m.Export("memory", ExternMemory, 0)
	m.Data(16, []byte{0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87})
	counter := m.Global(I64, true, 40)
	answer := m.Global(I32, false, 42)
	m.Export("answer", ExternGlobal, answer)

	loads := []Opcode{I32Load, I64Load, I32Load8S, I32Load8U, I32Load16S, I32Load16U,
		I64Load8S, I64Load8U, I64Load16S, I64Load16U, I64Load32S, I64Load32U}
	for i, op := range loads {
		res := I64
		if op == I32Load || (op >= I32Load8S && op <= I32Load16U) {
			res = I32
		}
		f := m.Func("", FuncType{Params: []ValType{I32}, Results: []ValType{res}})
		f.LocalGet(0)
		f.Load(op, 16)
		m.Export("load"+string(rune('a'+i)), ExternFunc, f.Index())
	}
	stores := []Opcode{I32Store, I64Store, I32Store8, I32Store16, I64Store8, I64Store16, I64Store32}
	for i, op := range stores {
		val := I64
		if op == I32Store || op == I32Store8 || op == I32Store16 {
			val = I32
		}
		f := m.Func("", FuncType{Params: []ValType{I32, val}})
		f.LocalGet(0)
		f.LocalGet(1)
		f.Store(op, 0)
		m.Export("store"+string(rune('a'+i)), ExternFunc, f.Index())
	}
	next := m.Func("next", FuncType{Results: []ValType{I64}})
	next.GlobalGet(counter)
	next.I64Const(1)
	next.Op(I64Add)
	next.GlobalSet(counter)
	next.GlobalGet(counter)
	m.ExportFunc("next", next)
	grow := m.Func("grow", FuncType{Params: []ValType{I32}, Results: []ValType{I32}})
	grow.LocalGet(0)
	grow.MemoryGrow()
	grow.Drop()
	grow.MemorySize()
	m.ExportFunc("grow", grow)
	bulk := m.Func("bulk", FuncType{})
	bulk.I32Const(100) // fill [100, 104) with 0xab
	bulk.I32Const(0xab)
	bulk.I32Const(4)
	bulk.MemoryFill()
	bulk.I32Const(200) // copy [16, 24) to 200
	bulk.I32Const(16)
	bulk.I32Const(8)
	bulk.MemoryCopy()
	m.ExportFunc("bulk", bulk)

	mod := instantiate(t, &m)
	wantLoads := []uint64{0x83828180, 0x8786858483828180, uint64(uint32(0xffffff80)), 0x80, uint64(uint32(0xffff8180)), 0x8180,
		0xffffffffffffff80, 0x80, 0xffffffffffff8180, 0x8180, 0xffffffff83828180, 0x83828180}
	for i := range loads {
		got := call(t, mod, "load"+string(rune('a'+i)), 0)[0]
		if got != wantLoads[i] {
			t.Errorf("load %#x = %#x, want %#x", byte(loads[i]), got, wantLoads[i])
		}
	}
	mem := mod.Memory()
	for i, op := range stores {
		addr := uint32(1024 + 16*i)
		call(t, mod, "store"+string(rune('a'+i)), uint64(addr), 0x1122334455667788)
		size := 1 << op.naturalAlign()
		got, _ := mem.Read(addr, 8)
		want := make([]byte, 8)
		copy(want, []byte{0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11}[:size])
		if !bytes.Equal(got, want) {
			t.Errorf("store %#x wrote % x, want % x", byte(op), got, want)
		}
	}
	if got := call(t, mod, "next")[0]; got != 41 {
		t.Errorf("next = %d", got)
	}
	if got := call(t, mod, "next")[0]; got != 42 {
		t.Errorf("next = %d", got)
	}
	if got := mod.ExportedGlobal("answer").Get(); got != 42 {
		t.Errorf("answer = %d", got)
	}
	if got := call(t, mod, "grow", 1)[0]; got != 2 {
		t.Errorf("grow(1): size %d pages, want 2", got)
	}
	if got := call(t, mod, "grow", 1)[0]; got != 2 {
		t.Errorf("grow beyond max: size %d pages, want 2", got)
	}
	call(t, mod, "bulk")
	if got, _ := mem.Read(100, 4); !bytes.Equal(got, []byte{0xab, 0xab, 0xab, 0xab}) {
		t.Errorf("memory.fill: % x", got)
	}
	if got, _ := mem.Read(200, 8); !bytes.Equal(got, []byte{0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87}) {
		t.Errorf("memory.copy: % x", got)
	}
}

func TestImportsStartNames(t *testing.T) {
	var m Module
	m.Names = true
	double := m.ImportFunc("env", "double", FuncType{Params: []ValType{I64}, Results: []ValType{I64}})
	g := m.Global(I64, true, 0)
	start := m.Func("init", FuncType{})
	start.I64Const(21)
	start.Call(double)
	start.GlobalSet(g)
	m.Start(start)
	get := m.Func("get", FuncType{Results: []ValType{I64}})
	get.GlobalGet(g)
	m.ExportFunc("get", get)
	mod := instantiate(t, &m, func(r wazero.Runtime) {
		_, err := r.NewHostModuleBuilder("env").NewFunctionBuilder().
			WithFunc(func(x int64) int64 { return 2 * x }).Export("double").
			Instantiate(context.Background())
		if err != nil {
			t.Fatal(err)
		}
	})
	if got := call(t, mod, "get")[0]; got != 42 {
		t.Fatalf("get = %d after start", got)
	}
	if name := mod.ExportedFunction("get").Definition().Name(); name != "get" {
		t.Fatalf("name section: function named %q", name)
	}
}

func TestBuilderErrors(t *testing.T) {
	i32 := []ValType{I32}
	cases := []struct {
		name  string
		build func(m *Module)
		want  string
	}{
		{"import after func", func(m *Module) {
			m.Func("", FuncType{})
			m.ImportFunc("env", "f", FuncType{})
		}, "after a defined function"},
		{"duplicate export", func(m *Module) {
			f := m.Func("", FuncType{})
			m.ExportFunc("f", f)
			m.ExportFunc("f", f)
		}, "duplicate export"},
		{"export of missing function", func(m *Module) { m.Export("f", ExternFunc, 3) }, "does not exist"},
		{"export of missing memory", func(m *Module) { m.Export("memory", ExternMemory, 0) }, "does not exist"},
		{"export of missing global", func(m *Module) { m.Export("g", ExternGlobal, 0) }, "does not exist"},
		{"unclosed block", func(m *Module) { m.Func("", FuncType{}).Block(Void) }, "not closed"},
		{"end without block", func(m *Module) { m.Func("", FuncType{}).End() }, "end without"},
		{"else without if", func(m *Module) {
			f := m.Func("", FuncType{})
			f.Block(Void)
			f.Else()
		}, "else without"},
		{"double else", func(m *Module) {
			f := m.Func("", FuncType{})
			f.I32Const(1)
			f.If(Void)
			f.Else()
			f.Else()
		}, "else without"},
		{"branch to closed label", func(m *Module) {
			f := m.Func("", FuncType{})
			l := f.Block(Void)
			f.End()
			f.Block(Void)
			f.Br(l)
			f.End()
		}, "not open"},
		{"zero label", func(m *Module) { m.Func("", FuncType{}).Br(Label{}) }, "not open"},
		{"call missing function", func(m *Module) { m.Func("", FuncType{}).Call(5) }, "call to function 5"},
		{"missing global", func(m *Module) {
			f := m.Func("", FuncType{Results: i32})
			f.GlobalGet(0)
		}, "global 0 of 0"},
		{"set immutable global", func(m *Module) {
			g := m.Global(I32, false, 1)
			f := m.Func("", FuncType{})
			f.I32Const(2)
			f.GlobalSet(g)
		}, "immutable"},
		{"memory op without memory", func(m *Module) {
			f := m.Func("", FuncType{Results: i32})
			f.I32Const(0)
			f.Load(I32Load, 0)
		}, "without a memory"},
		{"load with store opcode", func(m *Module) { m.Func("", FuncType{}).Load(I32Store, 0) }, "not an integer load"},
		{"store with load opcode", func(m *Module) { m.Func("", FuncType{}).Store(I64Load, 0) }, "not an integer store"},
		{"op needs immediates", func(m *Module) { m.Func("", FuncType{}).Op(opCall) }, "needs immediates"},
		{"local out of range", func(m *Module) { m.Func("", FuncType{Params: i32}).LocalGet(1) }, "local 1 of 1"},
		{"param out of range", func(m *Module) { m.Func("", FuncType{}).Param(0) }, "parameter 0 of 0"},
		{"invalid local type", func(m *Module) { m.Func("", FuncType{}).Local(0x40) }, "invalid type"},
		{"invalid block type", func(m *Module) {
			f := m.Func("", FuncType{})
			f.Block(0x12)
			f.End()
		}, "invalid block type"},
		{"invalid param type", func(m *Module) { m.Func("", FuncType{Params: []ValType{0x12}}) }, "invalid value type"},
		{"second memory", func(m *Module) {
			m.Memory(Limits{Min: 1})
			m.Memory(Limits{Min: 1})
		}, "second memory"},
		{"max below min", func(m *Module) { m.Memory(Limits{Min: 2, Max: 1, HasMax: true}) }, "invalid memory limits"},
		{"too many pages", func(m *Module) { m.Memory(Limits{Min: maxPages + 1}) }, "invalid memory limits"},
		{"data without memory", func(m *Module) { m.Data(0, []byte{1}) }, "without a memory"},
		{"data out of bounds", func(m *Module) {
			m.Memory(Limits{Min: 1})
			m.Data(PageSize-1, []byte{1, 2})
		}, "outside the initial memory"},
		{"float global", func(m *Module) { m.Global(F64, false, 0) }, "only i32 and i64"},
		{"i32 global overflow", func(m *Module) { m.Global(I32, false, 1<<33) }, "i32 global"},
		{"start with params", func(m *Module) { m.Start(m.Func("", FuncType{Params: i32})) }, "start function"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var m Module
			tc.build(&m)
			_, err := m.Encode()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Encode error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestTypesAreShared(t *testing.T) {
	var m Module
	ft := FuncType{Params: []ValType{I32}, Results: []ValType{I64}}
	a := m.Type(ft)
	ft.Params[0] = I64 // the module keeps its own copy
	b := m.Type(FuncType{Params: []ValType{I32}, Results: []ValType{I64}})
	c := m.Type(FuncType{Params: []ValType{I64}, Results: []ValType{I64}})
	if a != b || a == c || len(m.types) != 2 {
		t.Fatalf("type indices %d %d %d, %d types", a, b, c, len(m.types))
	}
}

func TestLocalsRuns(t *testing.T) {
	// Locals of alternating types are declared in runs; mixing them must
	// still validate and zero-initialise.
	var m Module
	f := m.Func("", FuncType{Params: []ValType{I64}, Results: []ValType{I64}})
	var locals []uint32
	for _, vt := range []ValType{I32, I32, I64, I32, I64, I64, I64} {
		locals = append(locals, f.Local(vt))
	}
	f.LocalGet(0)
	f.LocalTee(locals[6])
	f.LocalGet(locals[5])
	f.Op(I64Add)
	f.LocalGet(locals[3])
	f.Op(I64ExtendI32U)
	f.Op(I64Add)
	m.ExportFunc("f", f)
	mod := instantiate(t, &m)
	if got := call(t, mod, "f", 7)[0]; got != 7 {
		t.Fatalf("f(7) = %d", got)
	}
}
