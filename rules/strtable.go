package rules

import (
	"encoding/binary"
	"math/bits"

	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/flashlottery/lottery/sdk/wasmgen"
)

// The string table maps (key, string) to the constant's id: an open
// addressing hash table with linear probing, at most half full, laid out in
// a data segment at tableAddr:
//
//	entries [size]{offset u32, length u8, key u8, id u16}  (key 0: empty)
//	bytes   each constant at its offset, zero-padded to 8 bytes
//
// A module looks every string attribute of a key the tree tests up once,
// while decoding; the walk then compares small integers. Code size and
// compile time do not grow with the number of constants, only the data
// does: compiling thousands of inline comparisons made wazero's compiler
// take seconds, while the lookup is one fixed function.
//
// The hash reads the string 8 bytes at a time, the last chunk masked to
// the string's bytes (the loads may run up to 7 bytes past the string,
// which stays inside the module's memory; the mask makes what they find
// irrelevant):
//
//	h = (key<<8 | len) * hashMul
//	for each chunk c: h = (h ^ c) * hashMul; h ^= h >> 32
//	slot = h >> (64 - log2(size))
const hashMul = 0x9e3779b97f4a7c15

const entrySize = 8

// signed returns the int64 with the bits of u, for I64Const.
func signed(u uint64) int64 { return int64(u) }

type strEntry struct {
	key abi.Key
	s   string
	id  uint16 // 1-based
}

type strTable struct {
	bits uint   // log2 of the number of slots
	mem  []byte // the entries, then the constants' bytes
}

// strHash is the hash the lookup function computes.
func strHash(key abi.Key, s string) uint64 {
	h := (uint64(key)<<8 | uint64(len(s))) * hashMul
	for off := 0; off < len(s); off += 8 {
		var chunk [8]byte
		copy(chunk[:], s[off:])
		h = (h ^ binary.LittleEndian.Uint64(chunk[:])) * hashMul
		h ^= h >> 32
	}
	return h
}

// buildTable lays out entries, which must be distinct (key, string) pairs.
func buildTable(entries []strEntry) *strTable {
	b := uint(bits.Len(uint(2*len(entries) - 1))) // 2^b >= 2n
	size := 1 << b
	t := &strTable{bits: b, mem: make([]byte, size*entrySize)}
	for _, e := range entries {
		off := tableAddr + len(t.mem)
		t.mem = append(t.mem, e.s...)
		for len(t.mem)%8 != 0 {
			t.mem = append(t.mem, 0)
		}
		slot := int(strHash(e.key, e.s) >> (64 - b))
		for t.mem[slot*entrySize+5] != 0 {
			slot = (slot + 1) & (size - 1)
		}
		at := t.mem[slot*entrySize:]
		binary.LittleEndian.PutUint32(at, uint32(off))
		at[4], at[5] = byte(len(e.s)), byte(e.key)
		binary.LittleEndian.PutUint16(at[6:], e.id)
	}
	return t
}

// lookup returns the id of (key, s) in the table, 0 if it is not there.
// It is what the generated function computes, for testing.
func (t *strTable) lookup(key abi.Key, s string) uint16 {
	size := 1 << t.bits
	for slot := int(strHash(key, s) >> (64 - t.bits)); ; slot = (slot + 1) & (size - 1) {
		at := t.mem[slot*entrySize:]
		switch {
		case at[5] == 0:
			return 0
		case at[5] == byte(key) && int(at[4]) == len(s):
			off := int(binary.LittleEndian.Uint32(at)) - tableAddr
			if string(t.mem[off:off+len(s)]) == s {
				return binary.LittleEndian.Uint16(at[6:])
			}
		}
	}
}

// lookupFunc adds the function lookup(key, ptr, len i32) -> i32, the id of
// the string at [ptr, ptr+len) for key, or 0.
func (t *strTable) lookupFunc(m *wasmgen.Module) *wasmgen.Func {
	i32, i64 := wasmgen.I32, wasmgen.I64
	f := m.Func("lookup", wasmgen.FuncType{Params: []wasmgen.ValType{i32, i32, i32}, Results: []wasmgen.ValType{i32}})
	key, ptr, n := f.Param(0), f.Param(1), f.Param(2)
	h, off, slot, e := f.Local(i64), f.Local(i32), f.Local(i32), f.Local(i32)

	// chunk pushes the 8 bytes at ptr+off, masked to the string's.
	chunk := func() {
		f.LocalGet(ptr)
		f.LocalGet(off)
		f.Op(wasmgen.I32Add)
		f.Load(wasmgen.I64Load, 0)
		f.I64Const(-1)
		f.I64Const(1)
		f.LocalGet(n)
		f.LocalGet(off)
		f.Op(wasmgen.I32Sub)
		f.I32Const(3)
		f.Op(wasmgen.I32Shl, wasmgen.I64ExtendI32U, wasmgen.I64Shl)
		f.I64Const(1)
		f.Op(wasmgen.I64Sub) // (1 << 8*rest) - 1: wrong for rest >= 8, hence the select
		f.LocalGet(n)
		f.LocalGet(off)
		f.Op(wasmgen.I32Sub)
		f.I32Const(8)
		f.Op(wasmgen.I32GeU)
		f.Select()
		f.Op(wasmgen.I64And)
	}

	// h = (key<<8 | len) * hashMul
	f.LocalGet(key)
	f.I32Const(8)
	f.Op(wasmgen.I32Shl)
	f.LocalGet(n)
	f.Op(wasmgen.I32Or, wasmgen.I64ExtendI32U)
	f.I64Const(signed(hashMul))
	f.Op(wasmgen.I64Mul)
	f.LocalSet(h)
	hashed := f.Block(wasmgen.Void)
	loop := f.Loop(wasmgen.Void)
	f.LocalGet(off)
	f.LocalGet(n)
	f.Op(wasmgen.I32GeU)
	f.BrIf(hashed)
	f.LocalGet(h)
	chunk()
	f.Op(wasmgen.I64Xor)
	f.I64Const(signed(hashMul))
	f.Op(wasmgen.I64Mul)
	f.LocalTee(h)
	f.LocalGet(h)
	f.I64Const(32)
	f.Op(wasmgen.I64ShrU, wasmgen.I64Xor)
	f.LocalSet(h)
	f.LocalGet(off)
	f.I32Const(8)
	f.Op(wasmgen.I32Add)
	f.LocalSet(off)
	f.Br(loop)
	f.End()
	f.End()

	// Probe from slot h >> (64 - bits).
	f.LocalGet(h)
	f.I64Const(int64(64 - t.bits))
	f.Op(wasmgen.I64ShrU, wasmgen.I32WrapI64)
	f.LocalSet(slot)
	probe := f.Loop(wasmgen.Void)
	f.LocalGet(slot)
	f.I32Const(3)
	f.Op(wasmgen.I32Shl)
	f.LocalTee(e)
	f.Load(wasmgen.I32Load8U, tableAddr+5)
	f.LocalTee(off) // the entry's key, for now
	f.Op(wasmgen.I32Eqz)
	f.If(wasmgen.Void)
	f.I32Const(0)
	f.Return()
	f.End()
	// Same key and length: compare the bytes.
	f.LocalGet(off)
	f.LocalGet(key)
	f.Op(wasmgen.I32Eq)
	f.LocalGet(e)
	f.Load(wasmgen.I32Load8U, tableAddr+4)
	f.LocalGet(n)
	f.Op(wasmgen.I32Eq, wasmgen.I32And)
	f.If(wasmgen.Void)
	f.I32Const(0)
	f.LocalSet(off)
	differ := f.Block(wasmgen.Void)
	cmp := f.Loop(wasmgen.Void)
	f.LocalGet(off)
	f.LocalGet(n)
	f.Op(wasmgen.I32GeU)
	f.If(wasmgen.Void)
	f.LocalGet(e)
	f.Load(wasmgen.I32Load16U, tableAddr+6)
	f.Return()
	f.End()
	chunk()
	f.LocalGet(e)
	f.Load(wasmgen.I32Load, tableAddr)
	f.LocalGet(off)
	f.Op(wasmgen.I32Add)
	f.Load(wasmgen.I64Load, 0)
	f.Op(wasmgen.I64Ne)
	f.BrIf(differ)
	f.LocalGet(off)
	f.I32Const(8)
	f.Op(wasmgen.I32Add)
	f.LocalSet(off)
	f.Br(cmp)
	f.End()
	f.End()
	f.End()
	f.LocalGet(slot)
	f.I32Const(1)
	f.Op(wasmgen.I32Add)
	f.I32Const(int32(1<<t.bits - 1))
	f.Op(wasmgen.I32And)
	f.LocalSet(slot)
	f.Br(probe)
	f.End()
	f.Unreachable() // the table is at most half full: the probe meets an empty slot
	return f
}
