package wasmgen

import (
	"context"
	"encoding/binary"
	"math/bits"
	"testing"

	"github.com/tetratelabs/wazero"
)

// exprGen turns fuzz bytes into a random i64 expression over two parameters,
// emitted into a function and mirrored by a Go evaluator, so the fuzzer
// checks the encoding of constants, operators and nested control flow
// against Go's semantics.
type exprGen struct {
	data []byte
	f    *Func
	tmp  uint32
}

func (g *exprGen) byte() byte {
	if len(g.data) == 0 {
		return 0
	}
	b := g.data[0]
	g.data = g.data[1:]
	return b
}

var fuzzBinary = []struct {
	op Opcode
	f  func(a, b uint64) uint64
}{
	{I64Add, func(a, b uint64) uint64 { return a + b }},
	{I64Sub, func(a, b uint64) uint64 { return a - b }},
	{I64Mul, func(a, b uint64) uint64 { return a * b }},
	{I64And, func(a, b uint64) uint64 { return a & b }},
	{I64Or, func(a, b uint64) uint64 { return a | b }},
	{I64Xor, func(a, b uint64) uint64 { return a ^ b }},
	{I64Shl, func(a, b uint64) uint64 { return a << (b & 63) }},
	{I64ShrU, func(a, b uint64) uint64 { return a >> (b & 63) }},
	{I64ShrS, func(a, b uint64) uint64 { return uint64(int64(a) >> (b & 63)) }},
	{I64Rotl, func(a, b uint64) uint64 { return bits.RotateLeft64(a, int(b&63)) }},
}

var fuzzUnary = []struct {
	op Opcode
	f  func(a uint64) uint64
}{
	{I64Clz, func(a uint64) uint64 { return uint64(bits.LeadingZeros64(a)) }},
	{I64Popcnt, func(a uint64) uint64 { return uint64(bits.OnesCount64(a)) }},
	{I64Extend32S, func(a uint64) uint64 { return uint64(int64(int32(a))) }},
	{I64Extend8S, func(a uint64) uint64 { return uint64(int64(int8(a))) }},
}

func (g *exprGen) expr(depth int) func(a, b uint64) uint64 {
	choice := g.byte()
	if depth >= 6 {
		choice %= 3
	}
	switch c := choice % 8; {
	case c == 0:
		g.f.LocalGet(0)
		return func(a, _ uint64) uint64 { return a }
	case c == 1:
		g.f.LocalGet(1)
		return func(_, b uint64) uint64 { return b }
	case c == 2:
		var buf [8]byte
		for i := range int(g.byte() % 9) {
			buf[i] = g.byte()
		}
		v := binary.LittleEndian.Uint64(buf[:])
		if g.byte()&1 == 1 {
			v = -v
		}
		g.f.I64Const(int64(v))
		return func(_, _ uint64) uint64 { return v }
	case c <= 4:
		o := fuzzBinary[int(g.byte())%len(fuzzBinary)]
		x, y := g.expr(depth+1), g.expr(depth+1)
		g.f.Op(o.op)
		return func(a, b uint64) uint64 { return o.f(x(a, b), y(a, b)) }
	case c == 5:
		o := fuzzUnary[int(g.byte())%len(fuzzUnary)]
		x := g.expr(depth + 1)
		g.f.Op(o.op)
		return func(a, b uint64) uint64 { return o.f(x(a, b)) }
	case c == 6: // if (cond != 0) then x else y, with the condition in a local
		cond := g.expr(depth + 1)
		g.f.Op(I64Eqz, I32Eqz)
		g.f.If(ResultI64)
		x := g.expr(depth + 1)
		g.f.Else()
		y := g.expr(depth + 1)
		g.f.End()
		return func(a, b uint64) uint64 {
			if cond(a, b) != 0 {
				return x(a, b)
			}
			return y(a, b)
		}
	default: // a block whose value leaves early through br_if
		l := g.f.Block(ResultI64)
		x := g.expr(depth + 1)
		g.f.LocalTee(g.tmp)
		g.f.LocalGet(g.tmp)
		g.f.I64Const(1)
		g.f.Op(I64And, I32WrapI64)
		g.f.BrIf(l)
		g.f.I64Const(3)
		g.f.Op(I64Mul)
		g.f.End()
		return func(a, b uint64) uint64 {
			v := x(a, b)
			if v&1 == 1 {
				return v
			}
			return v * 3
		}
	}
}

func FuzzExpr(f *testing.F) {
	f.Add([]byte{0}, uint64(1), uint64(2))
	f.Add([]byte{3, 0, 0, 1}, uint64(40), uint64(2))
	f.Add([]byte{6, 0, 2, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 7, 1}, uint64(0), uint64(9))
	f.Add([]byte{4, 6, 5, 1, 2, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0}, uint64(1<<63), uint64(1))
	f.Add([]byte{7, 3, 2, 2, 1, 0x40, 0, 5, 0, 0}, uint64(5), uint64(64))
	rt := wazero.NewRuntime(context.Background())
	defer rt.Close(context.Background())
	f.Fuzz(func(t *testing.T, prog []byte, a, b uint64) {
		if len(prog) > 256 {
			prog = prog[:256]
		}
		var m Module
		fn := m.Func("expr", FuncType{Params: []ValType{I64, I64}, Results: []ValType{I64}})
		g := &exprGen{data: prog, f: fn, tmp: fn.Local(I64)}
		eval := g.expr(0)
		m.ExportFunc("expr", fn)
		bin, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		cm, err := rt.CompileModule(ctx, bin)
		if err != nil {
			t.Fatalf("wazero rejected % x: %v", bin, err)
		}
		defer cm.Close(ctx)
		mod, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
		if err != nil {
			t.Fatal(err)
		}
		defer mod.Close(ctx)
		got, err := mod.ExportedFunction("expr").Call(ctx, a, b)
		if err != nil {
			t.Fatal(err)
		}
		if want := eval(a, b); got[0] != want {
			t.Fatalf("expr(%#x, %#x) = %#x, want %#x; module % x", a, b, got[0], want, bin)
		}
	})
}
