package wasm

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/flashlottery/lottery/sdk/wasmgen"
	"github.com/tetratelabs/wabin/binary"
	"github.com/tetratelabs/wabin/leb128"
	wabin "github.com/tetratelabs/wabin/wasm"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// instantiateRaw compiles bin in a bare compiler runtime.
func instantiateRaw(tb testing.TB, bin []byte) api.Module {
	tb.Helper()
	c := context.Background()
	r := wazero.NewRuntimeWithConfig(c, wazero.NewRuntimeConfigCompiler())
	tb.Cleanup(func() { r.Close(c) })
	mod, err := r.Instantiate(c, bin)
	if err != nil {
		tb.Fatalf("wazero rejected the module: %v", err)
	}
	return mod
}

// everyKindModule assembles, by hand, a module whose function "mix" uses
// an instruction of every immediate shape the scanner knows: SIMD constants,
// shuffles, lanes and memargs, float constants, saturating truncation,
// memory.init and data.drop (which need the data count section), fill,
// copy, typed select, br_table, reference instructions, table.size and
// table.get, call_indirect, a direct call to a leaf, a loop and
// memory.grow.
func everyKindModule(tb testing.TB) []byte {
	tb.Helper()
	v128 := func(b byte) []byte { return bytes.Repeat([]byte{b}, 16) }
	var body []byte
	add := func(b ...byte) { body = append(body, b...) }
	add(0xfd, 0x0c)
	add(v128(1)...)
	add(0xfd, 0x0c)
	add(v128(0x11)...)
	add(0xfd, 0x0d)
	add(0, 17, 2, 19, 4, 21, 6, 23, 8, 25, 10, 27, 12, 29, 14, 31) // i8x16.shuffle
	add(0xfd, 0x1b, 0x00, opLocalSet, 1)                           // i32x4.extract_lane 0
	add(opI32Const, 0, 0xfd, 0x00, 0x04, 0x00, 0xfd, 0x53, 0x1a)   // v128.load, any_true, drop
	add(opI32Const, 0, 0xfd, 0x0c)
	add(v128(0)...)
	add(0xfd, 0x54, 0x00, 0x00, 0x03, 0x1a)                            // v128.load8_lane 3, drop
	add(opI32Const, 0x80, 0x01, opI32Const, 0, 0xfd, 0x00, 0x04, 0x00) // 128, v128.load
	add(0xfd, 0x0b, 0x04, 0x00)                                        // v128.store
	add(opF32Const, 0, 0, 0xc0, 0x3f, 0x1a)                            // f32.const 1.5, drop
	add(opF64Const, 0, 0, 0, 0, 0, 0, 0x04, 0x40, 0xfc, 0x06, 0x1a)    // f64.const 2.5, i64.trunc_sat_f64_s, drop
	// memory.init 0 of 5 bytes on the first call (x = 0), of 0 after data.drop
	add(opI32Const, 0, opI32Const, 0, opLocalGet, 0, 0x45, opI32Const, 5, 0x6c, 0xfc, 0x08, 0, 0)
	add(0xfc, 0x09, 0)                                                         // data.drop 0
	add(opI32Const, 16, opI32Const, 7, opI32Const, 32, 0xfc, 0x0b, 0)          // memory.fill
	add(opI32Const, 0xc0, 0, opI32Const, 0, opI32Const, 16, 0xfc, 0x0a, 0, 0)  // memory.copy to 64
	add(opI32Const, 1, opI32Const, 2, opLocalGet, 0, opSelectT, 1, 0x7f, 0x1a) // select (result i32), drop
	add(opBlock, blockVoid, opBlock, blockVoid, opLocalGet, 0, opBrTable, 2, 0, 1, 0, opEnd, opEnd)
	add(opRefNull, 0x70, 0xd1, 0x1a, opRefFunc, 0, 0xd1, 0x1a)   // ref.null, ref.func, ref.is_null
	add(0xfc, 0x10, 0, 0x1a, opI32Const, 0, 0x25, 0, 0xd1, 0x1a) // table.size, table.get
	add(opLocalGet, 0, opI32Const, 1, 0x71, opCallInd, 0, 0)     // call_indirect (type 0) table[param & 1]
	add(opCall, 1, 0x6a, opLocalSet, 1)                          // + fb(), into local 1
	add(opLoop, blockVoid, opLocalGet, 2, opI32Const, 1, 0x6a, opLocalTee, 2, opI32Const, 10, 0x49, opBrIf, 0, opEnd)
	add(opI32Const, 1, opMemoryGrow, 0, 0x1a)
	add(opI32Const, 16, 0x29, 3, 0, opLocalGet, 1, opI64ExtendU, 0x7c, opLocalGet, 2, opI64ExtendU, 0x7c, opEnd)

	zero, one := wabin.Index(0), wabin.Index(1)
	dataCount := uint32(1)
	m := &wabin.Module{
		TypeSection: []*wabin.FunctionType{
			{Results: []wabin.ValueType{wabin.ValueTypeI32}},
			{Params: []wabin.ValueType{wabin.ValueTypeI32}, Results: []wabin.ValueType{wabin.ValueTypeI64}},
		},
		FunctionSection: []wabin.Index{0, 0, 1},
		TableSection:    []*wabin.Table{{Min: 2, Type: wabin.RefTypeFuncref}},
		MemorySection:   &wabin.Memory{Min: 1, Max: 4, IsMaxEncoded: true},
		ExportSection:   []*wabin.Export{{Type: wabin.ExternTypeFunc, Name: "mix", Index: 2}},
		ElementSection: []*wabin.ElementSegment{{
			OffsetExpr: &wabin.ConstantExpression{Opcode: opI32Const, Data: leb128.EncodeInt32(0)},
			Init:       []*wabin.Index{&zero, &one}, Type: wabin.RefTypeFuncref, Mode: wabin.ElementModeActive,
		}},
		CodeSection: []*wabin.Code{
			{Body: []byte{opI32Const, 7, opEnd}},
			{Body: []byte{opI32Const, 9, opEnd}},
			{LocalTypes: []wabin.ValueType{wabin.ValueTypeI32, wabin.ValueTypeI32}, Body: body},
		},
		DataSection:      []*wabin.DataSegment{{Init: []byte("hello")}},
		DataCountSection: &dataCount,
	}
	bin, err := encode(m)
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

func TestInstrumentEveryInstructionKind(t *testing.T) {
	raw := everyKindModule(t)
	metered := meteredBytes(t, raw)
	a, b := instantiateRaw(t, raw), instantiateRaw(t, metered)
	for _, x := range []uint64{0, 1, 2} {
		want, err := a.ExportedFunction("mix").Call(ctx, x)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.ExportedFunction("mix").Call(ctx, x)
		if err != nil || got[0] != want[0] {
			t.Fatalf("mix(%d) = %v, %v; uninstrumented %v", x, got, err, want)
		}
	}
	used := int64(DefaultInitFuel) - int64(b.ExportedGlobal(FuelExport).Get())
	if used <= 3*4096 { // three memory.grow pages at least
		t.Fatalf("three calls used %d fuel", used)
	}
}

// loopModule exports spin(n): a loop of n iterations, and fill(n): a
// memory.fill of n bytes.
func loopModule(tb testing.TB) []byte {
	var m wasmgen.Module
	m.Memory(wasmgen.Limits{Min: 2, Max: 2, HasMax: true})
	f := m.Func("spin", wasmgen.FuncType{Params: i32})
	l := f.Loop(wasmgen.Void)
	f.LocalGet(0)
	f.I32Const(1)
	f.Op(wasmgen.I32Sub)
	f.LocalTee(0)
	f.BrIf(l)
	f.End()
	m.ExportFunc("spin", f)
	g := m.Func("fill", wasmgen.FuncType{Params: i32})
	g.I32Const(0)
	g.I32Const(1)
	g.LocalGet(0)
	g.MemoryFill()
	m.ExportFunc("fill", g)
	bin, err := m.Encode()
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

func TestFuelAccounting(t *testing.T) {
	mod := instantiateRaw(t, meteredBytes(t, loopModule(t)))
	fuel := mod.ExportedGlobal(FuelExport).(api.MutableGlobal)
	run := func(fn string, n uint64, budget int64) (int64, error) {
		fuel.Set(uint64(budget))
		_, err := mod.ExportedFunction(fn).Call(ctx, n)
		return int64(fuel.Get()), err
	}
	// One iteration: local.get, i32.const, i32.sub, local.tee, br_if, end,
	// plus the check.
	const perIteration = 6 + meterCost
	left, err := run("spin", 1000, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	used := 1_000_000 - left
	if used < 1000*perIteration || used > 1000*perIteration+100 {
		t.Fatalf("1000 iterations used %d fuel, want about %d", used, 1000*perIteration)
	}
	if _, err := run("spin", 1000, 500*perIteration); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("half the budget: %v", err)
	}
	// memory.fill costs one unit per 16 bytes: 64 KiB is 4096 units.
	if left, err := run("fill", 65536, 5000); err != nil || left > 5000-4096 {
		t.Fatalf("fill 64 KiB with 5000 fuel: %d left, %v", left, err)
	}
	if _, err := run("fill", 65536, 4000); err == nil {
		t.Fatal("fill 64 KiB with 4000 fuel succeeded")
	}
}

func TestInstrumentLeaves(t *testing.T) {
	raw := loopModule(t)
	m, err := binary.DecodeModule(raw, wabin.CoreFeaturesV2)
	if err != nil {
		t.Fatal(err)
	}
	var m2 wasmgen.Module
	m2.Memory(wasmgen.Limits{Min: 1})
	leaf := m2.Func("leaf", wasmgen.FuncType{Results: i32})
	leaf.I32Const(1)
	bin, _ := m2.Encode()
	lm, err := binary.DecodeModule(bin, wabin.CoreFeaturesV2)
	if err != nil {
		t.Fatal(err)
	}
	before := append([]byte(nil), lm.CodeSection[0].Body...)
	if err := instrument(lm, 1); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(lm.CodeSection[0].Body, before) {
		t.Fatalf("a leaf was metered: % x", lm.CodeSection[0].Body)
	}
	if err := instrument(m, 1); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(m.CodeSection[0].Body, raw) {
		t.Fatal("a loop was not metered")
	}
}

func TestInstrLenRejectsUnknown(t *testing.T) {
	for _, body := range [][]byte{
		{0x06, opEnd},       // try (exception handling, not enabled)
		{0xfe, 0x00, opEnd}, // threads prefix
		{0xfc, 0x20, opEnd}, // unknown misc instruction
		{opI32Const},        // truncated
		{opBrTable, 0xff, 0xff, 0xff, 0xff, 0x0f},                                         // a huge table
		{opI64Const, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0}, // too long
	} {
		mt := meter{}
		if _, _, err := mt.rewrite(body); !errors.Is(err, errCode) {
			t.Errorf("rewrite(% x) = %v", body, err)
		}
	}
}
