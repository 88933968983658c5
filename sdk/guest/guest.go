package guest

import (
	"unsafe"

	"github.com/flashlottery/lottery/sdk/abi"
)

// DrawFunc picks an award for a decoded draw input: an index into
// in.Awards, or abi.NoAward. A returned error becomes draw's error code
// (abi.CodeOf). in is reused by the next call: do not keep it.
type DrawFunc func(in *abi.DrawInput) (award int, err error)

// DecideFunc picks an activity for a decoded rule input: its id (>= 1) and
// true, or false for no match. A returned error becomes decide's error code
// (abi.CodeOf). in is reused by the next call: do not keep it.
type DecideFunc func(in *abi.RuleInput) (activityID int64, matched bool, err error)

// buf is the input buffer the host writes into (input_ptr, input_cap):
// abi.MaxInputSize bytes, 8-byte aligned because it is declared as uint64s.
var buf [abi.MaxInputSize / 8]uint64

// The decoded inputs, reused from call to call so a draw allocates nothing.
// The host never calls an instance concurrently.
var (
	drawIn = abi.DrawInput{Awards: make([]abi.Award, 0, abi.MaxAwards)}
	ruleIn abi.RuleInput
)

// inputPtr is the address of buf in linear memory.
func inputPtr() uintptr { return uintptr(unsafe.Pointer(&buf)) }

// input returns the first size bytes of buf if (ptr, size) is the buffer
// ABI v1 hosts pass: ptr is input_ptr and size is within input_cap.
func input(ptr, size int32) ([]byte, bool) {
	if uintptr(ptr) != inputPtr() || size < 0 || int(size) > abi.MaxInputSize {
		return nil, false
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&buf)), size), true
}

// Draw is the body of a draw module's draw export: it decodes the input the
// host wrote at ptr, calls fn and encodes its answer. An input that does not
// decode is answered with its code (abi.CodeBadInput or abi.CodeVersion)
// without calling fn.
//
//	//go:wasmexport draw
//	func draw(ptr, size int32) int32 { return guest.Draw(ptr, size, pick) }
func Draw(ptr, size int32, fn DrawFunc) int32 {
	b, ok := input(ptr, size)
	if !ok {
		return int32(abi.CodeBadInput)
	}
	return drawBytes(b, fn)
}

// Decide is the body of a rule module's decide export, as Draw is of draw.
//
//	//go:wasmexport decide
//	func decide(ptr, size int32) int64 { return guest.Decide(ptr, size, pick) }
func Decide(ptr, size int32, fn DecideFunc) int64 {
	b, ok := input(ptr, size)
	if !ok {
		return int64(abi.CodeBadInput)
	}
	return decideBytes(b, fn)
}

func drawBytes(b []byte, fn DrawFunc) int32 {
	if err := drawIn.UnmarshalBinary(b); err != nil {
		return drawCode(err)
	}
	award, err := fn(&drawIn)
	return drawResult(award, err, len(drawIn.Awards))
}

func decideBytes(b []byte, fn DecideFunc) int64 {
	if err := ruleIn.UnmarshalBinary(b); err != nil {
		return decideCode(err)
	}
	id, matched, err := fn(&ruleIn)
	return decideResult(id, matched, err)
}

// drawResult encodes a DrawFunc's answer for an input of n awards. What
// the ABI cannot carry, an index outside [0, n) other than NoAward, is the
// module breaking its own invariant: abi.CodeInternal.
func drawResult(award int, err error, n int) int32 {
	switch {
	case err != nil:
		return drawCode(err)
	case award == abi.NoAward:
		return abi.NoAward
	case award < 0 || award >= n:
		return int32(abi.CodeInternal)
	}
	return int32(award)
}

// drawCode is err's code as draw returns it. A code draw cannot return
// (-1 is NoAward, and anything not below it is a result) or one beyond
// int32 becomes abi.CodeInternal.
func drawCode(err error) int32 {
	if c := abi.CodeOf(err); c < abi.NoAward && c >= -1<<31 {
		return int32(c)
	}
	return int32(abi.CodeInternal)
}

// decideResult encodes a DecideFunc's answer: a matched id below 1 would
// read as no match or as an error, so it is abi.CodeInternal.
func decideResult(id int64, matched bool, err error) int64 {
	switch {
	case err != nil:
		return decideCode(err)
	case !matched:
		return abi.NoMatch
	case id < 1:
		return int64(abi.CodeInternal)
	}
	return id
}

// decideCode is err's code as decide returns it; a non-negative code would
// read as a result, so it becomes abi.CodeInternal.
func decideCode(err error) int64 {
	if c := abi.CodeOf(err); c < 0 {
		return int64(c)
	}
	return int64(abi.CodeInternal)
}
