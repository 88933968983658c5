package builtin_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/wasm/builtin"
)

// BenchmarkDraw compares one draw through a module instance (encode the
// input, write it into guest memory, call draw) with lottery.NativeDrawer
// (whose alias tables are cached), for a small and the largest strategy,
// with the module's table cache hitting (one strategy) and missing (two
// strategies alternating).
func BenchmarkDraw(b *testing.B) {
	for _, mode := range modes {
		for _, n := range []int{4, 64} {
			rng := rand.New(rand.NewPCG(1, uint64(n)))
			s := strategy(1, mode, randomRates(rng, mode, n))
			inStock := make([]bool, n)
			for i := range inStock {
				inStock[i] = i%5 != 0
			}
			req := lottery.DrawRequest{Strategy: s, InStock: inStock}
			name := builtin.Name(mode)[len("builtin/"):] + "/awards=" + strconv.Itoa(n)
			b.Run(name+"/wasm", func(b *testing.B) {
				d := newDrawer(b, mode)
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					req.Seed = uint64(i) * 0x9e3779b97f4a7c15
					d.pick(b, req)
				}
			})
			b.Run(name+"/wasm-rebuild", func(b *testing.B) {
				// Two strategies alternate on one instance: every draw
				// misses the module's one-entry table cache.
				other := strategy(2, mode, randomRates(rng, mode, n))
				reqs := [2]lottery.DrawRequest{req, {Strategy: other, InStock: inStock}}
				d := newDrawer(b, mode)
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					r := &reqs[i&1]
					r.Seed = uint64(i) * 0x9e3779b97f4a7c15
					d.pick(b, *r)
				}
			})
			b.Run(name+"/native", func(b *testing.B) {
				var d lottery.NativeDrawer
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					req.Seed = uint64(i) * 0x9e3779b97f4a7c15
					d.Draw(context.Background(), req)
				}
			})
		}
	}
}
