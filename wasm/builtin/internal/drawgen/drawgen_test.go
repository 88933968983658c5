package drawgen

import (
	"context"
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/tetratelabs/wazero"
)

// TestPrimitives checks the generated mulhi against bits.Mul64 and
// splitmix64 against lottery.SplitMix64 over edge cases and random values.
// The draw modules only multiply by small numbers (at most 65 columns and a
// total of at most 64 million), where a wrong carry would hardly ever show;
// here both operands range over all 64 bits.
func TestPrimitives(t *testing.T) {
	bin, err := Primitives()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	mod, err := r.Instantiate(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	mulhi, splitmix := mod.ExportedFunction("mulhi"), mod.ExportedFunction("splitmix64")
	edges := []uint64{0, 1, 2, 65, lo32 - 1, lo32, lo32 + 1, 1 << 32, 1<<63 - 1, 1 << 63, math.MaxUint64 - 1, math.MaxUint64, golden, mix1, mix2}
	var pairs [][2]uint64
	for _, a := range edges {
		for _, b := range edges {
			pairs = append(pairs, [2]uint64{a, b})
		}
	}
	rng := rand.New(rand.NewPCG(1, 1))
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	for range n {
		a, b := rng.Uint64(), rng.Uint64()
		switch rng.IntN(4) { // also small and 32-bit operands, as the modules use them
		case 1:
			b = uint64(1 + rng.IntN(65))
		case 2:
			b = rng.Uint64() >> 32
		case 3:
			a |= lo32 // all-ones low halves stress the carries
			b |= lo32
		}
		pairs = append(pairs, [2]uint64{a, b})
	}
	stack := make([]uint64, 2)
	for _, p := range pairs {
		stack[0], stack[1] = p[0], p[1]
		if err := mulhi.CallWithStack(ctx, stack); err != nil {
			t.Fatal(err)
		}
		if want, _ := bits.Mul64(p[0], p[1]); stack[0] != want {
			t.Fatalf("mulhi(%#x, %#x) = %#x, want %#x", p[0], p[1], stack[0], want)
		}
		stack[0] = p[0]
		if err := splitmix.CallWithStack(ctx, stack); err != nil {
			t.Fatal(err)
		}
		if want := lottery.SplitMix64(p[0]); stack[0] != want {
			t.Fatalf("splitmix64(%#x) = %#x, want %#x", p[0], stack[0], want)
		}
	}
}

func TestModuleDeterministic(t *testing.T) {
	for _, mode := range []abi.Mode{abi.ModeSingle, abi.ModeTotal} {
		a, err := Module(mode)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Module(mode)
		if string(a) != string(b) {
			t.Fatalf("mode %d: two generations differ", mode)
		}
	}
	if _, err := Module(3); err == nil {
		t.Fatal("Module(3) succeeded")
	}
	if Name(3) != "" {
		t.Fatal("Name(3) is not empty")
	}
}

func TestLayoutFits(t *testing.T) {
	const cols = abi.MaxAwards + 1
	regions := []struct {
		name       string
		addr, size int
	}{
		{"scaled", scaledAddr, 8 * cols},
		{"alias", aliasAddr, cols},
		{"small", smallAddr, cols},
		{"large", largeAddr, cols},
		{"key", keyAddr, abi.MaxAwards * abi.DrawAwardSize},
		{"input", inputPtr, abi.MaxInputSize},
	}
	for i, r := range regions {
		if r.addr%8 != 0 {
			t.Errorf("%s at %d is not 8-aligned", r.name, r.addr)
		}
		if i > 0 && regions[i-1].addr+regions[i-1].size > r.addr {
			t.Errorf("%s overlaps %s", regions[i-1].name, r.name)
		}
	}
	if last := regions[len(regions)-1]; last.addr+last.size > 65536 {
		t.Error("the input buffer leaves the page")
	}
}
