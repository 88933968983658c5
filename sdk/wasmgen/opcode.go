package wasmgen

// Opcode is a one-byte Wasm instruction opcode. Opcodes without immediates
// are emitted with Code.Op; loads and stores with Code.Load and Code.Store;
// the rest have their own Code methods.
type Opcode byte

// Control and parametric instructions.
const (
	Unreachable Opcode = 0x00
	Nop         Opcode = 0x01
	opBlock     Opcode = 0x02
	opLoop      Opcode = 0x03
	opIf        Opcode = 0x04
	opElse      Opcode = 0x05
	opEnd       Opcode = 0x0b
	opBr        Opcode = 0x0c
	opBrIf      Opcode = 0x0d
	opBrTable   Opcode = 0x0e
	Return      Opcode = 0x0f
	opCall      Opcode = 0x10
	Drop        Opcode = 0x1a
	Select      Opcode = 0x1b
	opLocalGet  Opcode = 0x20
	opLocalSet  Opcode = 0x21
	opLocalTee  Opcode = 0x22
	opGlobalGet Opcode = 0x23
	opGlobalSet Opcode = 0x24
	opMemSize   Opcode = 0x3f
	opMemGrow   Opcode = 0x40
	opI32Const  Opcode = 0x41
	opI64Const  Opcode = 0x42
	opPrefixFC  Opcode = 0xfc
)

// Loads, emitted with Code.Load. The suffix says how many bits are read and
// how they are extended (s: sign, u: zero).
const (
	I32Load    Opcode = 0x28
	I64Load    Opcode = 0x29
	I32Load8S  Opcode = 0x2c
	I32Load8U  Opcode = 0x2d
	I32Load16S Opcode = 0x2e
	I32Load16U Opcode = 0x2f
	I64Load8S  Opcode = 0x30
	I64Load8U  Opcode = 0x31
	I64Load16S Opcode = 0x32
	I64Load16U Opcode = 0x33
	I64Load32S Opcode = 0x34
	I64Load32U Opcode = 0x35
)

// Stores, emitted with Code.Store. The narrow stores keep the low bits.
const (
	I32Store   Opcode = 0x36
	I64Store   Opcode = 0x37
	I32Store8  Opcode = 0x3a
	I32Store16 Opcode = 0x3b
	I64Store8  Opcode = 0x3c
	I64Store16 Opcode = 0x3d
	I64Store32 Opcode = 0x3e
)

// i32 comparisons (results are i32 0 or 1).
const (
	I32Eqz Opcode = 0x45
	I32Eq  Opcode = 0x46
	I32Ne  Opcode = 0x47
	I32LtS Opcode = 0x48
	I32LtU Opcode = 0x49
	I32GtS Opcode = 0x4a
	I32GtU Opcode = 0x4b
	I32LeS Opcode = 0x4c
	I32LeU Opcode = 0x4d
	I32GeS Opcode = 0x4e
	I32GeU Opcode = 0x4f
)

// i64 comparisons (results are i32 0 or 1).
const (
	I64Eqz Opcode = 0x50
	I64Eq  Opcode = 0x51
	I64Ne  Opcode = 0x52
	I64LtS Opcode = 0x53
	I64LtU Opcode = 0x54
	I64GtS Opcode = 0x55
	I64GtU Opcode = 0x56
	I64LeS Opcode = 0x57
	I64LeU Opcode = 0x58
	I64GeS Opcode = 0x59
	I64GeU Opcode = 0x5a
)

// i32 arithmetic and bit operations.
const (
	I32Clz    Opcode = 0x67
	I32Ctz    Opcode = 0x68
	I32Popcnt Opcode = 0x69
	I32Add    Opcode = 0x6a
	I32Sub    Opcode = 0x6b
	I32Mul    Opcode = 0x6c
	I32DivS   Opcode = 0x6d
	I32DivU   Opcode = 0x6e
	I32RemS   Opcode = 0x6f
	I32RemU   Opcode = 0x70
	I32And    Opcode = 0x71
	I32Or     Opcode = 0x72
	I32Xor    Opcode = 0x73
	I32Shl    Opcode = 0x74
	I32ShrS   Opcode = 0x75
	I32ShrU   Opcode = 0x76
	I32Rotl   Opcode = 0x77
	I32Rotr   Opcode = 0x78
)

// i64 arithmetic and bit operations.
const (
	I64Clz    Opcode = 0x79
	I64Ctz    Opcode = 0x7a
	I64Popcnt Opcode = 0x7b
	I64Add    Opcode = 0x7c
	I64Sub    Opcode = 0x7d
	I64Mul    Opcode = 0x7e
	I64DivS   Opcode = 0x7f
	I64DivU   Opcode = 0x80
	I64RemS   Opcode = 0x81
	I64RemU   Opcode = 0x82
	I64And    Opcode = 0x83
	I64Or     Opcode = 0x84
	I64Xor    Opcode = 0x85
	I64Shl    Opcode = 0x86
	I64ShrS   Opcode = 0x87
	I64ShrU   Opcode = 0x88
	I64Rotl   Opcode = 0x89
	I64Rotr   Opcode = 0x8a
)

// Integer conversions and sign extensions.
const (
	I32WrapI64    Opcode = 0xa7
	I64ExtendI32S Opcode = 0xac
	I64ExtendI32U Opcode = 0xad
	I32Extend8S   Opcode = 0xc0
	I32Extend16S  Opcode = 0xc1
	I64Extend8S   Opcode = 0xc2
	I64Extend16S  Opcode = 0xc3
	I64Extend32S  Opcode = 0xc4
)

// Sub-opcodes after the 0xfc prefix (bulk memory).
const (
	memCopySubcode = 10 // memory.copy
	memFillSubcode = 11 // memory.fill
)

// plain reports whether op takes no immediates, so Code.Op may emit it.
func (op Opcode) plain() bool {
	switch {
	case op == Unreachable, op == Nop, op == Return, op == Drop, op == Select:
		return true
	case op >= I32Eqz && op <= I64Rotr:
		return true
	case op == I32WrapI64, op == I64ExtendI32S, op == I64ExtendI32U:
		return true
	case op >= I32Extend8S && op <= I64Extend32S:
		return true
	}
	return false
}

// naturalAlign returns log2 of the access size of a load or store, or -1 if
// op is neither. Code.Load and Code.Store use it as the alignment hint.
func (op Opcode) naturalAlign() int {
	switch op {
	case I32Load8S, I32Load8U, I64Load8S, I64Load8U, I32Store8, I64Store8:
		return 0
	case I32Load16S, I32Load16U, I64Load16S, I64Load16U, I32Store16, I64Store16:
		return 1
	case I32Load, I64Load32S, I64Load32U, I32Store, I64Store32:
		return 2
	case I64Load, I64Store:
		return 3
	}
	return -1
}

func (op Opcode) isLoad() bool  { return op >= I32Load && op <= I64Load32U && op.naturalAlign() >= 0 }
func (op Opcode) isStore() bool { return op >= I32Store && op <= I64Store32 && op.naturalAlign() >= 0 }
