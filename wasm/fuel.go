package wasm

import (
	"errors"
	"fmt"

	"github.com/tetratelabs/wabin/binary"
	"github.com/tetratelabs/wabin/leb128"
	wabin "github.com/tetratelabs/wabin/wasm"
)

// Exports the instrumentation adds. Names starting with ReservedPrefix are
// the host's: an upload that exports one is rejected.
const (
	ReservedPrefix = "__lottery_"
	// FuelExport is the fuel global: the budget left in the running call.
	FuelExport = ReservedPrefix + "fuel"
	// StopExport is the stop global, the floor fuel must stay at or above:
	// zero, or the largest i64 when the watchdog stops a call that overran
	// its deadline.
	StopExport = ReservedPrefix + "stop"
)

// Fuel costs, in units of roughly one simple Wasm instruction. A metering
// point charges the static instruction count of the code it guards (see
// instrument) plus meterCost for its own instructions; calls to imported
// (WASI) functions and the bulk operations whose cost depends on an operand
// are charged more.
const (
	// meterCost is what a metering point costs itself: the instructions it
	// inserts. Charging it keeps the tightest possible loop (loop; br 0)
	// from running many iterations per unit, so the budget bounds time.
	meterCost = 12
	// importCallCost is charged for each call to an imported function: a
	// WASI call leaves the sandbox and costs far more than an instruction.
	importCallCost = 1000
	// bulkByteShift: memory.fill, memory.copy and memory.init cost one unit
	// per 16 bytes.
	bulkByteShift = 4
	// growPageShift: memory.grow costs one unit per 16 bytes it adds (a
	// page is 64 KiB, 4096 units), as the runtime zeroes them.
	growPageShift = 12
)

// Opcodes the instrumentation looks for or emits.
const (
	opUnreachable = 0x00
	opBlock       = 0x02
	opLoop        = 0x03
	opIf          = 0x04
	opElse        = 0x05
	opEnd         = 0x0b
	opBr          = 0x0c
	opBrIf        = 0x0d
	opBrTable     = 0x0e
	opCall        = 0x10
	opCallInd     = 0x11
	opSelectT     = 0x1c
	opLocalGet    = 0x20
	opLocalTee    = 0x22
	opGlobalGet   = 0x23
	opGlobalSet   = 0x24
	opMemoryGrow  = 0x40
	opI32Const    = 0x41
	opI64Const    = 0x42
	opF32Const    = 0x43
	opF64Const    = 0x44
	opI64LtS      = 0x53
	opI64Sub      = 0x7d
	opLocalSet    = 0x21
	opI64Shl      = 0x86
	opI64ShrU     = 0x88
	opI64ExtendU  = 0xad
	opRefNull     = 0xd0
	opRefFunc     = 0xd2
	opPrefixMisc  = 0xfc
	opPrefixSIMD  = 0xfd
	blockVoid     = 0x40
)

// errCode reports a function body the scanner cannot walk.
var errCode = errors.New("malformed or unsupported code")

// instrument adds fuel metering to m in place: a mutable i64 global,
// exported as FuelExport and initialised to initFuel (the budget of the start
// function and _initialize), that every metered function entry and every
// loop head decrements by the static cost of the code it guards, trapping
// (unreachable) when it drops below the stop floor. Leaf functions carry no
// check: each direct call charges their cost to the caller. Bulk memory and
// table operations and memory.grow are charged by their length operand at
// run time. The floor is a second global, exported as StopExport, rather
// than zero: the watchdog stops a call by raising it, and as the guest never
// writes it, the watchdog's store into it cannot be lost to the guest's own
// read-modify-write of the fuel. Function and global indices do not change:
// the globals are appended after the others.
func instrument(m *wabin.Module, initFuel int64) error {
	nfuncs := m.ImportFuncCount()
	fuel := m.ImportGlobalCount() + uint32(len(m.GlobalSection))
	stop := fuel + 1
	if len(m.FunctionSection) != len(m.CodeSection) {
		return fmt.Errorf("%d functions but %d bodies", len(m.FunctionSection), len(m.CodeSection))
	}
	mt := meter{fuel: fuel, stop: stop, importedFuncs: nfuncs}
	// First pass: find the leaves and their costs.
	leafCost := make([]int64, len(m.CodeSection))
	for i, code := range m.CodeSection {
		pl, err := mt.scan(code.Body)
		if err != nil {
			return fmt.Errorf("function %d: %w", nfuncs+uint32(i), err)
		}
		leafCost[i] = -1
		if pl.leaf {
			leafCost[i] = pl.costs[0] - meterCost
		}
	}
	mt.leafCost = leafCost
	for i, code := range m.CodeSection {
		ti := m.FunctionSection[i]
		if int(ti) >= len(m.TypeSection) {
			return fmt.Errorf("function %d has type %d of %d", nfuncs+uint32(i), ti, len(m.TypeSection))
		}
		nlocals := uint64(len(m.TypeSection[ti].Params)) + uint64(len(code.LocalTypes))
		if nlocals+2 > maxLocals { // the two scratch locals included
			return fmt.Errorf("function %d has %d locals", nfuncs+uint32(i), nlocals)
		}
		mt.scratch64, mt.scratch32 = uint32(nlocals), uint32(nlocals)+1
		body, extra, err := mt.rewrite(code.Body)
		if err != nil {
			return fmt.Errorf("function %d: %w", nfuncs+uint32(i), err)
		}
		code.Body = body
		code.LocalTypes = append(code.LocalTypes, extra...)
	}
	m.GlobalSection = append(m.GlobalSection,
		&wabin.Global{
			Type: &wabin.GlobalType{ValType: wabin.ValueTypeI64, Mutable: true},
			Init: &wabin.ConstantExpression{Opcode: opI64Const, Data: leb128.EncodeInt64(initFuel)},
		},
		&wabin.Global{
			Type: &wabin.GlobalType{ValType: wabin.ValueTypeI64, Mutable: true},
			Init: &wabin.ConstantExpression{Opcode: opI64Const, Data: leb128.EncodeInt64(0)},
		})
	m.ExportSection = append(m.ExportSection,
		&wabin.Export{Type: wabin.ExternTypeGlobal, Name: FuelExport, Index: fuel},
		&wabin.Export{Type: wabin.ExternTypeGlobal, Name: StopExport, Index: stop})
	return nil
}

// encode returns m's binary encoding. wabin's encoder drops the data count
// section, which memory.init and data.drop require, so it is put back in
// front of the code section.
func encode(m *wabin.Module) ([]byte, error) {
	out := binary.EncodeModule(m)
	if m.DataCountSection == nil {
		return out, nil
	}
	sec := append([]byte{wabin.SectionIDDataCount}, leb128.EncodeUint32(uint32(len(leb128.EncodeUint32(*m.DataCountSection))))...)
	sec = append(sec, leb128.EncodeUint32(*m.DataCountSection)...)
	p := 8
	for p < len(out) {
		id := out[p]
		size, n, err := uleb(out, p+1)
		if err != nil {
			return nil, err
		}
		if id == wabin.SectionIDCode || id == wabin.SectionIDData || id == wabin.SectionIDCustom {
			break
		}
		p += 1 + n + int(size)
	}
	return append(out[:p:p], append(sec, out[p:]...)...), nil
}

// site is a place in a function body where metering code goes.
type site struct {
	pos   int  // byte offset in the original body
	scope int  // loop head: the scope whose cost to charge; -1 for a dynamic charge
	shift int8 // dynamic charge: the length operand shifted left (>0) or right (<0)
}

// meter rewrites the function bodies of one module.
type meter struct {
	fuel          uint32 // global index of the fuel counter
	stop          uint32 // global index of the stop flag
	importedFuncs uint32
	scratch64     uint32 // i64 local holding the new fuel value
	scratch32     uint32 // i32 local holding a dynamic length operand
	// leafCost is, per defined function, the instruction count of a leaf
	// (a function without loops and calls, which runs a bounded number of
	// instructions), or -1. Leaves are not metered themselves: each direct
	// call charges the callee's count to the caller's scope.
	leafCost []int64
}

// plan is what a scan of one body finds: the cost of each scope (the body
// is scope 0, each loop another), where metering code goes, and whether the
// body is a leaf.
type plan struct {
	costs   []int64
	sites   []site
	dynamic bool
	leaf    bool
}

// scan walks one body. A scope's cost is the weight of the instructions
// directly inside it, not inside a nested loop (which charges its own), so
// one loop iteration or one call is charged at least what it can execute
// without passing another metering point.
func (mt *meter) scan(body []byte) (plan, error) {
	pl := plan{costs: []int64{meterCost}, leaf: true}
	scopes := []int{0} // scope of each open construct; [0] is the body
	p := 0
	for {
		if p >= len(body) {
			return pl, fmt.Errorf("%w: body ends inside a block", errCode)
		}
		start := p
		op := body[p]
		cur := scopes[len(scopes)-1]
		pl.costs[cur]++
		n, err := instrLen(body, p)
		if err != nil {
			return pl, err
		}
		p += n
		switch op {
		case opBlock, opIf:
			scopes = append(scopes, cur)
		case opLoop:
			pl.leaf = false
			pl.costs = append(pl.costs, meterCost)
			scopes = append(scopes, len(pl.costs)-1)
			pl.sites = append(pl.sites, site{pos: p, scope: len(pl.costs) - 1})
		case opEnd:
			scopes = scopes[:len(scopes)-1]
			if len(scopes) == 0 {
				if p != len(body) {
					return pl, fmt.Errorf("%w: %d bytes after the function's end", errCode, len(body)-p)
				}
				return pl, nil
			}
		case opCallInd:
			pl.leaf = false
		case opCall:
			pl.leaf = false
			idx, _, _ := uleb(body, start+1)
			switch {
			case idx < uint64(mt.importedFuncs):
				pl.costs[cur] += importCallCost - 1
			case idx-uint64(mt.importedFuncs) < uint64(len(mt.leafCost)) && mt.leafCost[idx-uint64(mt.importedFuncs)] >= 0:
				pl.costs[cur] += mt.leafCost[idx-uint64(mt.importedFuncs)]
			}
		case opMemoryGrow:
			pl.sites = append(pl.sites, site{pos: start, scope: -1, shift: growPageShift})
			pl.dynamic = true
		case opPrefixMisc:
			sub, _, _ := uleb(body, start+1)
			switch sub {
			case 8, 10, 11: // memory.init, memory.copy, memory.fill
				pl.sites = append(pl.sites, site{pos: start, scope: -1, shift: -bulkByteShift})
				pl.dynamic = true
			case 12, 14, 15, 17: // table.init, table.copy, table.grow, table.fill
				pl.sites = append(pl.sites, site{pos: start, scope: -1, shift: 0})
				pl.dynamic = true
			}
		}
	}
}

// rewrite returns the metered body and the locals it adds.
func (mt *meter) rewrite(body []byte) ([]byte, []wabin.ValueType, error) {
	pl, err := mt.scan(body)
	if err != nil {
		return nil, nil, err
	}
	out := make([]byte, 0, len(body)+(len(pl.sites)+1)*28)
	if !pl.leaf {
		out = mt.charge(out, pl.costs[0])
	}
	last := 0
	for _, s := range pl.sites {
		out = append(out, body[last:s.pos]...)
		last = s.pos
		if s.scope >= 0 {
			out = mt.charge(out, pl.costs[s.scope])
		} else {
			out = mt.chargeDynamic(out, s.shift)
		}
	}
	out = append(out, body[last:]...)
	locals := []wabin.ValueType{wabin.ValueTypeI64}
	if pl.dynamic {
		locals = append(locals, wabin.ValueTypeI32)
	}
	return out, locals, nil
}

// charge emits: fuel -= cost; if fuel < stop { unreachable }.
func (mt *meter) charge(out []byte, cost int64) []byte {
	out = appendIdx(out, opGlobalGet, mt.fuel)
	out = append(out, opI64Const)
	out = append(out, leb128.EncodeInt64(cost)...)
	out = append(out, opI64Sub)
	return mt.store(out)
}

// chargeDynamic emits, with an i32 length n on the stack (left there):
// fuel -= n << shift (or >> -shift); if fuel < stop { unreachable }.
func (mt *meter) chargeDynamic(out []byte, shift int8) []byte {
	out = appendIdx(out, opLocalTee, mt.scratch32)
	out = appendIdx(out, opGlobalGet, mt.fuel)
	out = appendIdx(out, opLocalGet, mt.scratch32)
	out = append(out, opI64ExtendU)
	switch {
	case shift > 0:
		out = append(out, opI64Const, byte(shift), opI64Shl)
	case shift < 0:
		out = append(out, opI64Const, byte(-shift), opI64ShrU)
	}
	out = append(out, opI64Sub)
	return mt.store(out)
}

// store emits, with the new fuel value v on the stack:
// fuel = v; if v < stop { unreachable }.
func (mt *meter) store(out []byte) []byte {
	out = appendIdx(out, opLocalTee, mt.scratch64)
	out = appendIdx(out, opGlobalSet, mt.fuel)
	out = appendIdx(out, opLocalGet, mt.scratch64)
	out = appendIdx(out, opGlobalGet, mt.stop)
	return append(out, opI64LtS, opIf, blockVoid, opUnreachable, opEnd)
}

// appendIdx appends op with its one immediate, a local or global index.
func appendIdx(out []byte, op byte, idx uint32) []byte {
	return appendULEB(append(out, op), uint64(idx))
}

// instrLen returns the length in bytes of the instruction at b[p], with its
// immediates, for every instruction of WebAssembly 2.0 (the features the
// host's runtime enables). It checks lengths, not meaning: the compiler
// validates the module afterwards.
func instrLen(b []byte, p int) (int, error) {
	op := b[p]
	q := p + 1
	var err error
	skipU := func(k int) {
		for ; k > 0 && err == nil; k-- {
			var n int
			_, n, err = uleb(b, q)
			q += n
		}
	}
	skipBytes := func(k int) {
		if q+k > len(b) {
			err = fmt.Errorf("%w: truncated instruction %#x", errCode, op)
			return
		}
		q += k
	}
	switch {
	case op == opBlock || op == opLoop || op == opIf:
		var n int
		n, err = slebLen(b, q, 33)
		q += n
	case op == opBr || op == opBrIf || op == opCall || (op >= opLocalGet && op <= 0x26) || op == opRefFunc:
		skipU(1)
	case op == opBrTable:
		var count uint64
		var n int
		count, n, err = uleb(b, q)
		q += n
		if err == nil && count > uint64(len(b)) {
			err = fmt.Errorf("%w: br_table of %d targets", errCode, count)
		}
		skipU(int(count) + 1)
	case op == opCallInd:
		skipU(2)
	case op == opSelectT:
		var count uint64
		var n int
		count, n, err = uleb(b, q)
		q += n
		if err == nil {
			if count > uint64(len(b)) {
				err = fmt.Errorf("%w: select of %d types", errCode, count)
			} else {
				skipBytes(int(count))
			}
		}
	case op >= 0x28 && op <= 0x3e: // loads and stores: memarg
		skipU(2)
	case op == 0x3f || op == opMemoryGrow || op == opRefNull:
		skipBytes(1)
	case op == opI32Const:
		var n int
		n, err = slebLen(b, q, 32)
		q += n
	case op == opI64Const:
		var n int
		n, err = slebLen(b, q, 64)
		q += n
	case op == opF32Const:
		skipBytes(4)
	case op == opF64Const:
		skipBytes(8)
	case op == opUnreachable || op == 0x01 || op == opElse || op == opEnd || op == 0x0f ||
		op == 0x1a || op == 0x1b || (op >= 0x45 && op <= 0xc4) || op == 0xd1:
	case op == opPrefixMisc:
		var sub uint64
		var n int
		sub, n, err = uleb(b, q)
		q += n
		switch {
		case err != nil:
		case sub <= 7:
		case sub == 8: // memory.init dataidx 0x00
			skipU(1)
			skipBytes(1)
		case sub == 9 || sub == 13 || sub == 15 || sub == 16 || sub == 17:
			skipU(1)
		case sub == 10:
			skipBytes(2)
		case sub == 11:
			skipBytes(1)
		case sub == 12 || sub == 14:
			skipU(2)
		default:
			err = fmt.Errorf("%w: instruction 0xfc %d", errCode, sub)
		}
	case op == opPrefixSIMD:
		var sub uint64
		var n int
		sub, n, err = uleb(b, q)
		q += n
		switch {
		case err != nil:
		case sub <= 11 || sub == 92 || sub == 93: // loads and stores
			skipU(2)
		case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
			skipBytes(16)
		case sub >= 21 && sub <= 34: // extract and replace lane
			skipBytes(1)
		case sub >= 84 && sub <= 91: // load and store lane
			skipU(2)
			skipBytes(1)
		case sub > 255:
			err = fmt.Errorf("%w: instruction 0xfd %d", errCode, sub)
		}
	default:
		err = fmt.Errorf("%w: instruction %#x", errCode, op)
	}
	if err != nil {
		return 0, err
	}
	if q > len(b) {
		return 0, fmt.Errorf("%w: truncated instruction %#x", errCode, op)
	}
	return q - p, nil
}

// uleb decodes an unsigned LEB128 number of at most 64 bits at b[p].
func uleb(b []byte, p int) (uint64, int, error) {
	var v uint64
	for i := 0; i < 10; i++ {
		if p+i >= len(b) {
			return 0, 0, fmt.Errorf("%w: truncated number", errCode)
		}
		c := b[p+i]
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: number too long", errCode)
}

// slebLen returns the length in bytes of the signed LEB128 number of at
// most bits bits at b[p]; its value never matters here.
func slebLen(b []byte, p int, bits int) (int, error) {
	for i := range (bits + 6) / 7 {
		if p+i >= len(b) {
			return 0, fmt.Errorf("%w: truncated number", errCode)
		}
		if b[p+i] < 0x80 {
			return i + 1, nil
		}
	}
	return 0, fmt.Errorf("%w: number too long", errCode)
}

func appendULEB(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}
