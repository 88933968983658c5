package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the ABI version this package implements. A module advertises
// the version it implements through its lottery_abi_version export, and every
// input starts with the version it is encoded in.
const Version = 1

// Names of the exports the ABI defines.
const (
	// ExportMemory is the module's linear memory, which the host writes
	// inputs into.
	ExportMemory = "memory"
	// ExportVersion is a function () -> i32 returning the ABI version.
	ExportVersion = "lottery_abi_version"
	// ExportInputPtr is a function () -> i32 returning the address of the
	// module's input buffer. The host calls it once per instance.
	ExportInputPtr = "input_ptr"
	// ExportInputCap is a function () -> i32 returning the input buffer's
	// size in bytes; it must be at least MaxInputSize.
	ExportInputCap = "input_cap"
	// ExportDecide is a rule module's entry point: (ptr, len i32) -> i64.
	ExportDecide = "decide"
	// ExportDraw is a draw module's entry point: (ptr, len i32) -> i32.
	ExportDraw = "draw"
)

// MaxInputSize is the largest input the host ever writes, and the smallest
// input buffer (input_cap) a module may declare.
const MaxInputSize = 4096

// Kind is a module's kind: what it decides.
type Kind uint8

// Module kinds.
const (
	// KindRule modules pick an activity for a user from rule attributes.
	KindRule Kind = 1
	// KindDraw modules pick an award from a strategy's rates and stock.
	KindDraw Kind = 2
)

// String returns "rule" or "draw".
func (k Kind) String() string {
	switch k {
	case KindRule:
		return "rule"
	case KindDraw:
		return "draw"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind parses "rule" or "draw".
func ParseKind(s string) (Kind, error) {
	switch s {
	case "rule":
		return KindRule, nil
	case "draw":
		return KindDraw, nil
	}
	return 0, fmt.Errorf("abi: unknown module kind %q (want rule or draw)", s)
}

// ValueType is a Wasm value type as encoded in the binary format; the values
// equal wazero's api.ValueType constants.
type ValueType byte

// Value types used by the ABI.
const (
	I32 ValueType = 0x7f
	I64 ValueType = 0x7e
)

// FuncExport is a function a module must export, with its exact signature.
type FuncExport struct {
	Name            string
	Params, Results []ValueType
}

// Exports returns the functions a module of kind k must export, besides the
// memory (ExportMemory); nil for an unknown kind. The host checks a module
// against this list at upload. Other exports are allowed and ignored.
func Exports(k Kind) []FuncExport {
	var entry FuncExport
	switch k {
	case KindRule:
		entry = FuncExport{Name: ExportDecide, Params: []ValueType{I32, I32}, Results: []ValueType{I64}}
	case KindDraw:
		entry = FuncExport{Name: ExportDraw, Params: []ValueType{I32, I32}, Results: []ValueType{I32}}
	default:
		return nil
	}
	return []FuncExport{
		{Name: ExportVersion, Results: []ValueType{I32}},
		{Name: ExportInputPtr, Results: []ValueType{I32}},
		{Name: ExportInputCap, Results: []ValueType{I32}},
		entry,
	}
}

// Code is an error code a module returns instead of a result: any negative
// value from decide, or a value below -1 from draw. The ABI defines the codes
// below; a module may return others, which the host reports as they are.
// Code implements error, so a decoder error can carry one (see CodeOf).
type Code int64

// Result codes.
const (
	// NoMatch is decide's result when no activity matches.
	NoMatch = 0
	// NoAward is draw's result when the draw wins nothing.
	NoAward = -1

	// CodeFailed is a rule module's unspecified failure (decide returned -1).
	// For draw modules -1 is NoAward, not an error.
	CodeFailed Code = -1
	// CodeBadInput: the input is malformed (sizes, ranges, reserved bytes).
	CodeBadInput Code = -2
	// CodeVersion: the input's ABI version is not one the module implements.
	CodeVersion Code = -3
	// CodeUnsupported: a well-formed input the module does not handle, for
	// example a draw mode it was not built for.
	CodeUnsupported Code = -4
	// CodeInternal: the module broke one of its own invariants.
	CodeInternal Code = -5
)

// Error describes the code.
func (c Code) Error() string {
	switch c {
	case CodeFailed:
		return "abi: module failed"
	case CodeBadInput:
		return "abi: malformed input"
	case CodeVersion:
		return "abi: unsupported ABI version"
	case CodeUnsupported:
		return "abi: input not supported by this module"
	case CodeInternal:
		return "abi: module internal error"
	}
	return fmt.Sprintf("abi: module error code %d", int64(c))
}

// CodeOf returns the Code in err's chain, CodeInternal for another error,
// and 0 for nil. A Go guest uses it to turn a decoding error into its return
// value.
func CodeOf(err error) Code {
	if err == nil {
		return 0
	}
	var c Code
	if errors.As(err, &c) {
		return c
	}
	return CodeInternal
}

// ErrBadResult means a module returned a value outside what the ABI allows,
// such as an award index beyond the awards it was given.
var ErrBadResult = errors.New("abi: module result out of range")

// DrawResult interprets draw's return value for an input of n awards: an
// award index in [0, n), NoAward, or an error (a Code, or ErrBadResult).
func DrawResult(r int32, n int) (int, error) {
	switch {
	case r == NoAward:
		return NoAward, nil
	case r < NoAward:
		return NoAward, Code(r)
	case int(r) >= n:
		return NoAward, fmt.Errorf("%w: award %d of %d", ErrBadResult, r, n)
	}
	return int(r), nil
}

// DecideResult interprets decide's return value: an activity id (>= 1) and
// true, NoMatch and false, or a Code.
func DecideResult(r int64) (int64, bool, error) {
	switch {
	case r < 0:
		return 0, false, Code(r)
	case r == NoMatch:
		return 0, false, nil
	}
	return r, true, nil
}

// checkVersion checks the first field of every input: at least the two
// bytes of the version, which must be Version.
func checkVersion(b []byte) error {
	if len(b) < 2 {
		return fmt.Errorf("%w: %d bytes", CodeBadInput, len(b))
	}
	if v := binary.LittleEndian.Uint16(b); v != Version {
		return fmt.Errorf("%w: input version %d, want %d", CodeVersion, v, Version)
	}
	return nil
}
