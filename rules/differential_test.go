package rules

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/tetratelabs/wazero"
)

// differential compiles the random tree of treeSeed, then checks that the
// module answers exactly what the reference answers (Evaluate, or the
// decoder's error code) for inputs random inputs and for extra.
func differential(t *testing.T, ctx context.Context, r wazero.Runtime, treeSeed uint64, inputs int, extra []byte) {
	rng := rand.New(rand.NewPCG(treeSeed, 0x5eed))
	tree := randomTree(rng)
	e, err := NewEvaluator(tree)
	if err != nil {
		t.Fatalf("random tree %d is invalid: %v\n%+v", treeSeed, err, tree)
	}
	bin, err := Compile(tree)
	if err != nil {
		t.Fatalf("tree %d: %v", treeSeed, err)
	}
	m := instantiate(t, ctx, r, bin)
	check := func(b []byte) {
		want := reference(t, e, b) // the decoder rejects more than abi.MaxInputSize bytes
		got, err := m.call(ctx, b[:min(len(b), abi.MaxInputSize)], len(b))
		if err != nil || got != want {
			t.Fatalf("tree %d: decide(% x) = %d, %v; the reference says %d\ntree: %+v", treeSeed, b, got, err, want, tree)
		}
	}
	if extra != nil {
		check(extra)
	}
	for range inputs {
		check(randomInput(rng))
	}
}

// TestCompiledMatchesEvaluate runs the differential over many random trees
// (fewer with -short).
func TestCompiledMatchesEvaluate(t *testing.T) {
	trees, inputs := 400, 300
	if testing.Short() {
		trees, inputs = 50, 100
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	for seed := range uint64(trees) {
		differential(t, ctx, r, seed, inputs, nil)
	}
}

// FuzzCompiledMatchesEvaluate is the differential under the fuzzer: the
// tree comes from seed, and raw is one more input, as it comes.
func FuzzCompiledMatchesEvaluate(f *testing.F) {
	f.Add(uint64(0), []byte(nil))
	f.Add(uint64(1), []byte{1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 3, 'm', 'a', 'n'})
	f.Add(uint64(2), []byte{1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 25, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint64(3), []byte{2, 0})
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	f.Fuzz(func(t *testing.T, seed uint64, raw []byte) {
		if raw == nil {
			raw = []byte{}
		}
		differential(t, ctx, r, seed, 32, raw)
	})
}
