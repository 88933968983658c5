package stock_test

import (
	"errors"
	"math"
	"sync"
	"testing"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/stock"
	"github.com/flashlottery/lottery/stock/stocktest"
)

func TestMemoryContract(t *testing.T) {
	stocktest.Run(t, func(*testing.T) stocktest.Store { return stock.NewMemory() })
}

func TestMemoryErrorsNameTheKey(t *testing.T) {
	m := stock.NewMemory()
	key := lottery.StockKey{Activity: 7, Award: "a1"}
	_, err := m.Reserve(t.Context(), key)
	if !errors.Is(err, lottery.ErrNotFound) || err.Error() != `stock: activity 7 award "a1": not found` {
		t.Fatalf("Reserve unknown = %q", err)
	}
	if err := m.Provision(t.Context(), key, 0, 0); err != nil {
		t.Fatal(err)
	}
	_, err = m.Reserve(t.Context(), key)
	if !errors.Is(err, lottery.ErrSoldOut) || err.Error() != `stock: activity 7 award "a1": sold out` {
		t.Fatalf("Reserve sold out = %q", err)
	}
}

// TestMemorySoldOutFlagNeverStuck races a refused reservation against the
// release that frees a unit: whatever the interleaving, the flag must not
// stay set while a unit is free, or the edge would refuse stock it has. The
// window is a few instructions wide; under -race (as in CI) it is hit reliably.
func TestMemorySoldOutFlagNeverStuck(t *testing.T) {
	ctx := t.Context()
	rounds := 20000
	if testing.Short() {
		rounds = 2000
	}
	m := stock.NewMemory()
	key := lottery.StockKey{Activity: 1}
	for i := range rounds {
		if err := m.Provision(ctx, key, 1, 1); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() { _, _ = m.Reserve(ctx, key) })
		wg.Go(func() { _ = m.Release(ctx, lottery.Reservation{Key: key, Slot: 1}) })
		wg.Wait()
		left, err := m.Left(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if left > 0 && m.SoldOut(key) {
			t.Fatalf("round %d: SoldOut = true with %d left", i, left)
		}
	}
}

// TestMemoryProvisionRacesReserve re-provisions a key while reservations run:
// a reservation must never slip past the total of the generation it counts in.
func TestMemoryProvisionRacesReserve(t *testing.T) {
	ctx := t.Context()
	m := stock.NewMemory()
	key := lottery.StockKey{Activity: 1}
	if err := m.Provision(ctx, key, 100, 0); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if r, err := m.Reserve(ctx, key); err == nil && r.Slot > 100 {
					t.Errorf("slot %d above every total provisioned", r.Slot)
					return
				}
			}
		})
	}
	for i := range 2000 {
		if err := m.Provision(ctx, key, int64(50+i%51), int64(i%40)); err != nil {
			t.Error(err)
			break
		}
	}
	// End on a known state: the last generation must never be oversold.
	if err := m.Provision(ctx, key, 10, 0); err != nil {
		t.Fatal(err)
	}
	for {
		if left, _ := m.Left(ctx, key); left == 0 {
			break
		}
	}
	close(stop)
	wg.Wait()
	if left, _ := m.Left(ctx, key); left != 0 {
		t.Fatalf("Left = %d, want 0", left)
	}
	if _, err := m.Reserve(ctx, key); !errors.Is(err, lottery.ErrSoldOut) {
		t.Fatalf("Reserve after the stock ran out = %v, want ErrSoldOut", err)
	}
}

func BenchmarkReserve(b *testing.B) {
	for _, bc := range []struct {
		name  string
		total int64
	}{
		{"InStock", math.MaxInt64},
		{"SoldOut", 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := stock.NewMemory()
			key := lottery.StockKey{Activity: 1}
			if err := m.Provision(b.Context(), key, bc.total, 0); err != nil {
				b.Fatal(err)
			}
			want := bc.total > 0
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := b.Context()
				for pb.Next() {
					if _, err := m.Reserve(ctx, key); (err == nil) != want {
						b.Errorf("Reserve = %v", err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkSoldOut(b *testing.B) {
	m := stock.NewMemory()
	key := lottery.StockKey{Activity: 1}
	if err := m.Provision(b.Context(), key, 0, 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !m.SoldOut(key) {
				b.Error("SoldOut = false")
				return
			}
		}
	})
}
