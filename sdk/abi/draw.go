package abi

import (
	"encoding/binary"
	"fmt"
)

// Draw input layout: a 24-byte header, then 5 bytes per award.
//
//	offset size field
//	0      2    ABI version (u16, 1)
//	2      1    strategy mode (u8: 1 single, 2 total)
//	3      1    number of awards n (u8, 1..64)
//	4      4    reserved, zero
//	8      8    seed (u64), chosen by the host
//	16     8    time (i64, unix milliseconds), supplied by the host
//	24     5*n  per award, in strategy order: rate (u32, parts per million,
//	            0..1_000_000), in stock (u8, 0 or 1)
//
// The encoding is canonical: a decoder rejects anything Encode would not
// produce, so equal inputs have equal bytes.
const (
	DrawHeaderSize   = 24
	DrawAwardSize    = 5
	MaxAwards        = 64
	MaxDrawInputSize = DrawHeaderSize + MaxAwards*DrawAwardSize
	// RateScale is the fixed-point scale of rates: one part per million (the
	// same as lottery.RateScale).
	RateScale = 1_000_000
)

// Mode is a strategy's draw mode (the same values as lottery.Mode).
type Mode uint8

// Draw modes.
const (
	// ModeSingle: each award has its own rate, the rest up to RateScale is a
	// miss, and a drawn award without stock is a miss.
	ModeSingle Mode = 1
	// ModeTotal: awards without stock or with rate 0 are removed and the
	// others' rates renormalised; a draw misses only when none is left.
	ModeTotal Mode = 2
)

// Award is one award of a draw input; the award is identified by its index.
type Award struct {
	Rate    uint32 // parts per million
	InStock bool
}

// DrawInput is the input of a draw module's draw export.
type DrawInput struct {
	Mode   Mode
	Seed   uint64
	TimeMs int64
	Awards []Award
}

// Size returns the encoded size in bytes.
func (in *DrawInput) Size() int { return DrawHeaderSize + DrawAwardSize*len(in.Awards) }

// Validate checks what the encoding cannot represent or a module may rely on:
// the mode, 1..MaxAwards awards, rates within RateScale, and single-mode
// rates summing to at most RateScale. Errors wrap CodeBadInput.
func (in *DrawInput) Validate() error {
	if in.Mode != ModeSingle && in.Mode != ModeTotal {
		return fmt.Errorf("%w: mode %d", CodeBadInput, in.Mode)
	}
	if len(in.Awards) == 0 || len(in.Awards) > MaxAwards {
		return fmt.Errorf("%w: %d awards (want 1..%d)", CodeBadInput, len(in.Awards), MaxAwards)
	}
	var sum uint64
	for i, a := range in.Awards {
		if a.Rate > RateScale {
			return fmt.Errorf("%w: award %d rate %d above %d", CodeBadInput, i, a.Rate, RateScale)
		}
		sum += uint64(a.Rate)
	}
	if in.Mode == ModeSingle && sum > RateScale {
		return fmt.Errorf("%w: single-mode rates sum to %d, above %d", CodeBadInput, sum, RateScale)
	}
	return nil
}

// AppendBinary appends the encoding to b (encoding.BinaryAppender). With a
// b of enough capacity it does not allocate, which is what the host's hot
// path wants.
func (in *DrawInput) AppendBinary(b []byte) ([]byte, error) {
	if err := in.Validate(); err != nil {
		return b, err
	}
	b = binary.LittleEndian.AppendUint16(b, Version)
	b = append(b, byte(in.Mode), byte(len(in.Awards)), 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, in.Seed)
	b = binary.LittleEndian.AppendUint64(b, uint64(in.TimeMs))
	for _, a := range in.Awards {
		b = binary.LittleEndian.AppendUint32(b, a.Rate)
		if a.InStock {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	return b, nil
}

// MarshalBinary returns the encoding (encoding.BinaryMarshaler).
func (in *DrawInput) MarshalBinary() ([]byte, error) {
	return in.AppendBinary(make([]byte, 0, in.Size()))
}

// UnmarshalBinary decodes b into in, reusing in.Awards' storage
// (encoding.BinaryUnmarshaler). It never reads beyond b, allocates at most
// MaxAwards awards, and rejects non-canonical encodings. Errors wrap
// CodeVersion or CodeBadInput; on error in is left in an unspecified state.
func (in *DrawInput) UnmarshalBinary(b []byte) error {
	if err := checkVersion(b); err != nil {
		return err
	}
	if len(b) < DrawHeaderSize {
		return fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", CodeBadInput, len(b), DrawHeaderSize)
	}
	in.Mode = Mode(b[2])
	if in.Mode != ModeSingle && in.Mode != ModeTotal {
		return fmt.Errorf("%w: mode %d", CodeBadInput, in.Mode)
	}
	n := int(b[3])
	if n == 0 || n > MaxAwards {
		return fmt.Errorf("%w: %d awards (want 1..%d)", CodeBadInput, n, MaxAwards)
	}
	if binary.LittleEndian.Uint32(b[4:]) != 0 {
		return fmt.Errorf("%w: reserved header bytes are not zero", CodeBadInput)
	}
	if want := DrawHeaderSize + DrawAwardSize*n; len(b) != want {
		return fmt.Errorf("%w: %d bytes for %d awards, want %d", CodeBadInput, len(b), n, want)
	}
	in.Seed = binary.LittleEndian.Uint64(b[8:])
	in.TimeMs = int64(binary.LittleEndian.Uint64(b[16:]))
	in.Awards = in.Awards[:0]
	var sum uint64
	for i := range n {
		p := b[DrawHeaderSize+DrawAwardSize*i:]
		rate, flag := binary.LittleEndian.Uint32(p), p[4]
		if rate > RateScale {
			return fmt.Errorf("%w: award %d rate %d above %d", CodeBadInput, i, rate, RateScale)
		}
		if flag > 1 {
			return fmt.Errorf("%w: award %d stock flag %d", CodeBadInput, i, flag)
		}
		sum += uint64(rate)
		in.Awards = append(in.Awards, Award{Rate: rate, InStock: flag == 1})
	}
	if in.Mode == ModeSingle && sum > RateScale {
		return fmt.Errorf("%w: single-mode rates sum to %d, above %d", CodeBadInput, sum, RateScale)
	}
	return nil
}
