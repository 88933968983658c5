// Package stocktest is the contract suite for lottery.Stock adapters: every
// adapter (stock.Memory always, stock.Redis when a Redis address is set) runs
// Run and so behaves the same way to the draw process.
package stocktest

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flashlottery/lottery/lottery"
)

// Store is what the suite drives: the stock port and its administration.
type Store interface {
	lottery.Stock
	lottery.StockAdmin
}

// Run runs the contract suite. newStock is called once per subtest and must
// return a store that holds none of the suite's keys (a fresh Memory, or a
// Redis adapter on an emptied database or a fresh key prefix); it registers
// its own cleanup with t.Cleanup. Subtests run one after the other.
func Run(t *testing.T, newStock func(t *testing.T) Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"ReserveUntilSoldOut", testReserveUntilSoldOut},
		{"ReleaseMakesUnitAvailable", testRelease},
		{"ReleaseNeverBelowZero", testReleaseNeverBelowZero},
		{"LeftTracks", testLeftTracks},
		{"ProvisionResumes", testProvisionResumes},
		{"ProvisionUsedAboveTotal", testProvisionUsedAboveTotal},
		{"ProvisionReplaces", testProvisionReplaces},
		{"ProvisionInvalid", testProvisionInvalid},
		{"UnknownKey", testUnknownKey},
		{"AwardKeysIndependent", testAwardKeysIndependent},
		{"ZeroTotal", testZeroTotal},
		{"Settle", testSettle},
		{"Hammer", testHammer},
		{"HammerManyKeys", testHammerManyKeys},
		{"ReserveEach", testReserveEach},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStock(t))
		})
	}
}

func provision(t *testing.T, s Store, key lottery.StockKey, total, used int64) {
	t.Helper()
	if err := s.Provision(t.Context(), key, total, used); err != nil {
		t.Fatalf("Provision(%v, %d, %d) = %v", key, total, used, err)
	}
}

func reserve(t *testing.T, s Store, key lottery.StockKey) lottery.Reservation {
	t.Helper()
	r, err := s.Reserve(t.Context(), key)
	if err != nil {
		t.Fatalf("Reserve(%v) = %v, want a reservation", key, err)
	}
	if r.Key != key {
		t.Fatalf("Reserve(%v) reserved key %v", key, r.Key)
	}
	return r
}

func wantSoldOut(t *testing.T, s Store, key lottery.StockKey) {
	t.Helper()
	if r, err := s.Reserve(t.Context(), key); !errors.Is(err, lottery.ErrSoldOut) {
		t.Fatalf("Reserve(%v) = %+v, %v; want ErrSoldOut", key, r, err)
	}
	if !s.SoldOut(key) {
		t.Fatalf("SoldOut(%v) = false after Reserve answered ErrSoldOut", key)
	}
}

func wantLeft(t *testing.T, s Store, key lottery.StockKey, want int64) {
	t.Helper()
	got, err := s.Left(t.Context(), key)
	if err != nil {
		t.Fatalf("Left(%v) = %v", key, err)
	}
	if got != want {
		t.Fatalf("Left(%v) = %d, want %d", key, got, want)
	}
}

// checkSlot accepts a zero slot (adapters that lock no slots may leave it
// zero); a non-zero slot must lie in 1..total.
func checkSlot(t *testing.T, r lottery.Reservation, total int64) {
	t.Helper()
	if r.Slot != 0 && (r.Slot < 1 || r.Slot > total) {
		t.Fatalf("reservation %+v: slot outside 1..%d", r, total)
	}
}

func testReserveUntilSoldOut(t *testing.T, s Store) {
	key := lottery.StockKey{Activity: 101}
	const total = 5
	provision(t, s, key, total, 0)
	if s.SoldOut(key) {
		t.Fatal("SoldOut = true for a freshly provisioned key with stock")
	}
	seen := map[int64]bool{}
	for i := range total {
		r := reserve(t, s, key)
		checkSlot(t, r, total)
		if r.Slot != 0 {
			if seen[r.Slot] {
				t.Fatalf("reservation %d: slot %d given twice", i+1, r.Slot)
			}
			seen[r.Slot] = true
		}
	}
	wantSoldOut(t, s, key)
	wantSoldOut(t, s, key) // and stays sold out
	wantLeft(t, s, key, 0)
}

func testRelease(t *testing.T, s Store) {
	key := lottery.StockKey{Activity: 102}
	provision(t, s, key, 2, 0)
	a := reserve(t, s, key)
	reserve(t, s, key)
	wantSoldOut(t, s, key)
	if err := s.Release(t.Context(), a); err != nil {
		t.Fatalf("Release(%+v) = %v", a, err)
	}
	if s.SoldOut(key) {
		t.Fatal("SoldOut = true after a release freed a unit")
	}
	wantLeft(t, s, key, 1)
	r := reserve(t, s, key)
	checkSlot(t, r, 2)
	wantSoldOut(t, s, key)
}

func testReleaseNeverBelowZero(t *testing.T, s Store) {
	key := lottery.StockKey{Activity: 103}
	provision(t, s, key, 3, 0)
	if err := s.Release(t.Context(), lottery.Reservation{Key: key, Slot: 1}); err != nil {
		t.Fatalf("Release with nothing in use = %v, want nil", err)
	}
	wantLeft(t, s, key, 3)
	for range 3 {
		reserve(t, s, key)
	}
	wantSoldOut(t, s, key)
}

func testLeftTracks(t *testing.T, s Store) {
	key := lottery.StockKey{Activity: 104}
	provision(t, s, key, 4, 0)
	wantLeft(t, s, key, 4)
	var held []lottery.Reservation
	for want := int64(3); want >= 0; want-- {
		held = append(held, reserve(t, s, key))
		wantLeft(t, s, key, want)
	}
	for i, r := range held {
		if err := s.Release(t.Context(), r); err != nil {
			t.Fatalf("Release(%+v) = %v", r, err)
		}
		wantLeft(t, s, key, int64(i+1))
	}
}

func testProvisionResumes(t *testing.T, s Store) {
	key := lottery.StockKey{Activity: 105}
	provision(t, s, key, 10, 7)
	wantLeft(t, s, key, 3)
	for want := int64(8); want <= 10; want++ {
		r := reserve(t, s, key)
		if r.Slot != 0 && r.Slot != want {
			t.Fatalf("resumed reservation slot = %d, want %d", r.Slot, want)
		}
	}
	wantSoldOut(t, s, key)
}

func testProvisionUsedAboveTotal(t *testing.T, s Store) {
	key := lottery.StockKey{Activity: 106}
	provision(t, s, key, 5, 8)
	wantLeft(t, s, key, 0)
	wantSoldOut(t, s, key)
	// One release brings used to 7, still above the total of 5.
	if err := s.Release(t.Context(), lottery.Reservation{Key: key, Slot: 8}); err != nil {
		t.Fatalf("Release = %v", err)
	}
	wantLeft(t, s, key, 0)
	wantSoldOut(t, s, key)
}

func testProvisionReplaces(t *testing.T, s Store) {
	key := lottery.StockKey{Activity: 107}
	provision(t, s, key, 2, 2)
	wantSoldOut(t, s, key)
	provision(t, s, key, 5, 2)
	if s.SoldOut(key) {
		t.Fatal("SoldOut = true after provisioning more stock")
	}
	wantLeft(t, s, key, 3)
	for range 3 {
		checkSlot(t, reserve(t, s, key), 5)
	}
	wantSoldOut(t, s, key)
	provision(t, s, key, 1, 0)
	wantLeft(t, s, key, 1)
	reserve(t, s, key)
	wantSoldOut(t, s, key)
}

func testProvisionInvalid(t *testing.T, s Store) {
	key := lottery.StockKey{Activity: 108}
	for _, c := range []struct{ total, used int64 }{{-1, 0}, {5, -1}, {-3, -3}} {
		if err := s.Provision(t.Context(), key, c.total, c.used); !errors.Is(err, lottery.ErrInvalid) {
			t.Errorf("Provision(total %d, used %d) = %v, want ErrInvalid", c.total, c.used, err)
		}
	}
	if _, err := s.Left(t.Context(), key); !errors.Is(err, lottery.ErrNotFound) {
		t.Errorf("Left after invalid provisions = %v, want ErrNotFound (nothing created)", err)
	}
}

func testUnknownKey(t *testing.T, s Store) {
	ctx := t.Context()
	provision(t, s, lottery.StockKey{Activity: 109}, 3, 0)
	for _, key := range []lottery.StockKey{
		{Activity: 110},
		{Activity: 109, Award: "never-provisioned"},
	} {
		if r, err := s.Reserve(ctx, key); !errors.Is(err, lottery.ErrNotFound) {
			t.Errorf("Reserve(%v) = %+v, %v; want ErrNotFound", key, r, err)
		}
		if _, err := s.Left(ctx, key); !errors.Is(err, lottery.ErrNotFound) {
			t.Errorf("Left(%v) = %v, want ErrNotFound", key, err)
		}
		if err := s.Release(ctx, lottery.Reservation{Key: key, Slot: 1}); !errors.Is(err, lottery.ErrNotFound) {
			t.Errorf("Release(%v) = %v, want ErrNotFound", key, err)
		}
		if s.SoldOut(key) {
			t.Errorf("SoldOut(%v) = true for an unknown key", key)
		}
	}
}

func testAwardKeysIndependent(t *testing.T, s Store) {
	act := lottery.StockKey{Activity: 111}
	a1 := lottery.StockKey{Activity: 111, Award: "a1"}
	a2 := lottery.StockKey{Activity: 111, Award: "a2"}
	other := lottery.StockKey{Activity: 112, Award: "a1"}
	provision(t, s, act, 1, 0)
	provision(t, s, a1, 2, 0)
	provision(t, s, a2, 1, 0)
	provision(t, s, other, 1, 0)

	reserve(t, s, act)
	wantSoldOut(t, s, act)
	wantLeft(t, s, a1, 2)
	wantLeft(t, s, a2, 1)
	if s.SoldOut(a1) || s.SoldOut(a2) {
		t.Fatal("an award is sold out because its activity is")
	}

	reserve(t, s, a2)
	wantSoldOut(t, s, a2)
	wantLeft(t, s, a1, 2)
	wantLeft(t, s, other, 1)
	reserve(t, s, a1)
	reserve(t, s, a1)
	wantSoldOut(t, s, a1)
	wantLeft(t, s, other, 1)
	if s.SoldOut(other) {
		t.Fatal("award a1 of another activity is sold out")
	}
	reserve(t, s, other)
}

func testZeroTotal(t *testing.T, s Store) {
	key := lottery.StockKey{Activity: 113}
	provision(t, s, key, 0, 0)
	wantLeft(t, s, key, 0)
	wantSoldOut(t, s, key)
	if err := s.Release(t.Context(), lottery.Reservation{Key: key}); err != nil {
		t.Fatalf("Release = %v", err)
	}
	wantSoldOut(t, s, key)
}

func testSettle(t *testing.T, s Store) {
	key := lottery.StockKey{Activity: 114, Award: "a1"}
	provision(t, s, key, 2, 0)
	r := reserve(t, s, key)
	if err := s.Settle(t.Context(), r); err != nil {
		t.Fatalf("Settle(%+v) = %v, want nil", r, err)
	}
	// A settled unit stays sold.
	wantLeft(t, s, key, 1)
	reserve(t, s, key)
	wantSoldOut(t, s, key)
}

// testHammer has many goroutines race for the stock, demand far above
// supply, and asserts no unit is ever sold twice: at no moment are more units
// held than the total, and at the end exactly total are held.
func testHammer(t *testing.T, s Store) {
	total, workers := int64(2000), 64
	if testing.Short() {
		total, workers = 200, 16
	}
	for _, tc := range []struct {
		name     string
		key      lottery.StockKey
		releaseP float64
	}{
		{"NoRelease", lottery.StockKey{Activity: 115}, 0},
		{"RandomRelease", lottery.StockKey{Activity: 116, Award: "a1"}, 0.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hammer(t, s, tc.key, total, workers, tc.releaseP)
		})
	}
}

func hammer(t *testing.T, s Store, key lottery.StockKey, total int64, workers int, releaseP float64) {
	provision(t, s, key, total, 0)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	var (
		reserved, released atomic.Int64
		held               atomic.Int64 // a lower bound on the store's used count
		errMu              sync.Mutex
		firstErr           error
		slotsMu            sync.Mutex
		slots              = make(map[int64]int) // slot -> times given, without releases
	)
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(total)))
			// A worker stops only when it sees the stock sold out. Its own
			// releases come before that, so after the last worker stops
			// nobody releases again: the stock ends exactly sold out.
			for ctx.Err() == nil {
				r, err := s.Reserve(ctx, key)
				if errors.Is(err, lottery.ErrSoldOut) {
					return
				}
				if err != nil {
					fail(err)
					return
				}
				reserved.Add(1)
				if n := held.Add(1); n > total {
					fail(errors.New("oversold: more units held than the total"))
					return
				}
				if r.Slot != 0 && (r.Slot < 1 || r.Slot > total) {
					fail(errors.New("slot outside 1..total"))
					return
				}
				if releaseP == 0 {
					if r.Slot != 0 {
						slotsMu.Lock()
						slots[r.Slot]++
						slotsMu.Unlock()
					}
					continue
				}
				if rng.Float64() < releaseP {
					held.Add(-1)
					if err := s.Release(ctx, r); err != nil {
						fail(err)
						return
					}
					released.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	got, rel := reserved.Load(), released.Load()
	if got-rel != total {
		t.Fatalf("reserved %d - released %d = %d, want exactly the total %d", got, rel, got-rel, total)
	}
	if releaseP > 0 && rel == 0 {
		t.Fatal("no release happened; the hammer tested nothing")
	}
	for slot, n := range slots {
		if n != 1 {
			t.Fatalf("slot %d given %d times", slot, n)
		}
	}
	if len(slots) != 0 && int64(len(slots)) != total {
		t.Fatalf("%d distinct slots given, want %d", len(slots), total)
	}
	wantLeft(t, s, key, 0)
	wantSoldOut(t, s, key)
}

// testHammerManyKeys has many goroutines race for several keys at once, an
// activity and its awards, with releases: concurrent reservations of
// different keys (which a batching adapter sends together) must not mix up
// their counts. Each worker draws a random key among those it has not yet
// seen sold out, and stops when it has seen them all sold out; every key
// ends with exactly its total held.
func testHammerManyKeys(t *testing.T, s Store) {
	total, workers := int64(300), 32
	if testing.Short() {
		total, workers = 50, 8
	}
	keys := []lottery.StockKey{
		{Activity: 117},
		{Activity: 117, Award: "a1"},
		{Activity: 117, Award: "a2"},
		{Activity: 118, Award: "a1"},
	}
	for i, key := range keys {
		provision(t, s, key, total+int64(i), 0)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	held := make([]atomic.Int64, len(keys))
	var (
		errMu    sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 118))
			open := []int{0, 1, 2, 3}
			for len(open) > 0 && ctx.Err() == nil {
				j := rng.IntN(len(open))
				i := open[j]
				r, err := s.Reserve(ctx, keys[i])
				if errors.Is(err, lottery.ErrSoldOut) {
					open = append(open[:j], open[j+1:]...)
					continue
				}
				if err != nil {
					fail(err)
					return
				}
				if r.Key != keys[i] {
					fail(errors.New("reservation of another key"))
					return
				}
				if n := held[i].Add(1); n > total+int64(i) {
					fail(errors.New("oversold"))
					return
				}
				if rng.IntN(10) == 0 {
					held[i].Add(-1)
					if err := s.Release(ctx, r); err != nil {
						fail(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	for i, key := range keys {
		if got, want := held[i].Load(), total+int64(i); got != want {
			t.Errorf("key %v: %d held, want exactly the total %d", key, got, want)
		}
		wantLeft(t, s, key, 0)
	}
}

// testReserveEach holds a lottery.StockBatch (if the store is one) to
// Reserve: each key is reserved, refused or unknown on its own.
func testReserveEach(t *testing.T, s Store) {
	b, ok := s.(lottery.StockBatch)
	if !ok {
		t.Skip("not a lottery.StockBatch")
	}
	ctx := t.Context()
	act := lottery.StockKey{Activity: 140}
	award := lottery.StockKey{Activity: 140, Award: "a"}
	provision(t, s, act, 2, 0)
	provision(t, s, award, 1, 0)
	each := func(keys ...lottery.StockKey) ([]lottery.Reservation, []error) {
		res, errs := make([]lottery.Reservation, len(keys)), make([]error, len(keys))
		b.ReserveEach(ctx, keys, res, errs)
		return res, errs
	}
	res, errs := each(act, award)
	if errs[0] != nil || errs[1] != nil || res[0].Key != act || res[1].Key != award {
		t.Fatalf("ReserveEach(both in stock) = %+v, %v", res, errs)
	}
	res, errs = each(act, award)
	if errs[0] != nil || res[0].Key != act || !errors.Is(errs[1], lottery.ErrSoldOut) {
		t.Fatalf("ReserveEach(award sold out) = %+v, %v; want the activity, award sold out", res, errs)
	}
	if _, errs = each(act, award); !errors.Is(errs[0], lottery.ErrSoldOut) || !errors.Is(errs[1], lottery.ErrSoldOut) {
		t.Fatalf("ReserveEach(both sold out) = %v", errs)
	}
	wantLeft(t, s, act, 0)
	wantLeft(t, s, award, 0)
	if err := s.Release(ctx, res[0]); err != nil {
		t.Fatal(err)
	}
	unknown := lottery.StockKey{Activity: 140, Award: "never-provisioned"}
	res, errs = each(unknown, act)
	if !errors.Is(errs[0], lottery.ErrNotFound) || errs[1] != nil || res[1].Key != act {
		t.Fatalf("ReserveEach(unknown, in stock) = %+v, %v", res, errs)
	}
	wantLeft(t, s, act, 0)
}
