package guest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/flashlottery/lottery/sdk/abi"
)

func TestDrawResult(t *testing.T) {
	for _, c := range []struct {
		award int
		err   error
		want  int32
	}{
		{0, nil, 0},
		{2, nil, 2},
		{abi.NoAward, nil, abi.NoAward},
		{3, nil, int32(abi.CodeInternal)},  // beyond the 3 awards
		{-2, nil, int32(abi.CodeInternal)}, // would read as CodeBadInput
		{0, abi.CodeUnsupported, int32(abi.CodeUnsupported)},
		{0, fmt.Errorf("wrapped: %w", abi.CodeBadInput), int32(abi.CodeBadInput)},
		{0, abi.Code(-1000), -1000},
		{0, abi.CodeFailed, int32(abi.CodeInternal)}, // -1 would read as NoAward
		{0, abi.Code(5), int32(abi.CodeInternal)},
		{0, abi.Code(-1 << 40), int32(abi.CodeInternal)},
		{1, errors.New("no code"), int32(abi.CodeInternal)},
	} {
		if got := drawResult(c.award, c.err, 3); got != c.want {
			t.Errorf("drawResult(%d, %v) = %d, want %d", c.award, c.err, got, c.want)
		}
	}
}

func TestDecideResult(t *testing.T) {
	for _, c := range []struct {
		id      int64
		matched bool
		err     error
		want    int64
	}{
		{100, true, nil, 100},
		{100, false, nil, abi.NoMatch},
		{0, true, nil, int64(abi.CodeInternal)},
		{-3, true, nil, int64(abi.CodeInternal)},
		{0, false, abi.CodeFailed, int64(abi.CodeFailed)},
		{7, true, fmt.Errorf("age: %w", abi.CodeBadInput), int64(abi.CodeBadInput)},
		{0, false, abi.Code(-1 << 40), -1 << 40},
		{0, false, abi.Code(0), int64(abi.CodeInternal)},
		{0, false, errors.New("no code"), int64(abi.CodeInternal)},
	} {
		if got := decideResult(c.id, c.matched, c.err); got != c.want {
			t.Errorf("decideResult(%d, %v, %v) = %d, want %d", c.id, c.matched, c.err, got, c.want)
		}
	}
}

func TestDrawBytes(t *testing.T) {
	in := abi.DrawInput{Mode: abi.ModeTotal, Seed: 42, TimeMs: 7, Awards: []abi.Award{{Rate: 1, InStock: true}, {Rate: 2}}}
	b, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	called := 0
	fn := func(got *abi.DrawInput) (int, error) {
		called++
		if got.Seed != 42 || got.TimeMs != 7 || len(got.Awards) != 2 || got.Awards[1].Rate != 2 {
			t.Errorf("decoded %+v", got)
		}
		return 1, nil
	}
	if r := drawBytes(b, fn); r != 1 || called != 1 {
		t.Fatalf("draw = %d after %d calls", r, called)
	}
	if allocs := testing.AllocsPerRun(100, func() { drawBytes(b, fn) }); allocs != 0 {
		t.Errorf("a draw allocates %v times", allocs)
	}
	bad := append([]byte(nil), b...)
	bad[0] = 2
	if r := drawBytes(bad, fn); r != int32(abi.CodeVersion) {
		t.Errorf("version 2: %d", r)
	}
	if r := drawBytes(b[:len(b)-1], fn); r != int32(abi.CodeBadInput) {
		t.Errorf("cut off: %d", r)
	}
	if called != 102 {
		t.Errorf("fn called %d times, want only for the valid inputs", called)
	}
}

func TestDecideBytes(t *testing.T) {
	in := abi.RuleInput{TimeMs: 9, Attrs: []abi.Attr{abi.StrAttr(abi.KeyUserCity, "wuhan")}}
	b, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	fn := func(got *abi.RuleInput) (int64, bool, error) {
		if a, ok := got.Lookup(abi.KeyUserCity); !ok || a.Str != "wuhan" || got.TimeMs != 9 {
			t.Errorf("decoded %+v", got)
		}
		return 100001, true, nil
	}
	if r := decideBytes(b, fn); r != 100001 {
		t.Fatalf("decide = %d", r)
	}
	b[2] = 1 // a reserved byte
	if r := decideBytes(b, fn); r != int64(abi.CodeBadInput) {
		t.Errorf("reserved byte set: %d", r)
	}
}

// TestInput checks the entry points read only the buffer the module offers.
func TestInput(t *testing.T) {
	if _, ok := input(0, 10); ok {
		t.Error("input at address 0 accepted")
	}
	if r := Draw(0, 10, nil); r != int32(abi.CodeBadInput) {
		t.Errorf("Draw at a foreign address: %d", r)
	}
	if r := Decide(-1, 10, nil); r != int64(abi.CodeBadInput) {
		t.Errorf("Decide at a foreign address: %d", r)
	}
	p := int32(inputPtr())
	if uintptr(p) != inputPtr() {
		t.Skip("the buffer's address does not fit an int32 on this platform")
	}
	for _, size := range []int32{-1, abi.MaxInputSize + 1} {
		if _, ok := input(p, size); ok {
			t.Errorf("size %d accepted", size)
		}
	}
	if b, ok := input(p, abi.MaxInputSize); !ok || len(b) != abi.MaxInputSize {
		t.Errorf("the whole buffer: %d bytes, %v", len(b), ok)
	}
}
