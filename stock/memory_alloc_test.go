//go:build !race

package stock_test

import (
	"testing"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/stock"
)

// TestMemoryHotPathAllocs holds the promise of the doc: Reserve, Release and
// SoldOut allocate nothing, in stock or sold out.
func TestMemoryHotPathAllocs(t *testing.T) {
	ctx := t.Context()
	m := stock.NewMemory()
	in := lottery.StockKey{Activity: 1, Award: "a1"}
	out := lottery.StockKey{Activity: 2}
	if err := m.Provision(ctx, in, 1<<40, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Provision(ctx, out, 0, 0); err != nil {
		t.Fatal(err)
	}
	for name, fn := range map[string]func(){
		"ReserveRelease": func() {
			r, _ := m.Reserve(ctx, in)
			_ = m.Release(ctx, r)
		},
		"ReserveSoldOut": func() { _, _ = m.Reserve(ctx, out) },
		"SoldOut":        func() { _ = m.SoldOut(in) },
	} {
		if n := testing.AllocsPerRun(1000, fn); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
}
