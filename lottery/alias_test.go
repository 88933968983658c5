package lottery

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

func testStrategy(mode Mode, rates ...int64) *Strategy {
	s := &Strategy{ID: 1, Mode: mode, GrantType: GrantImmediate}
	for i, r := range rates {
		s.Details = append(s.Details, StrategyDetail{Award: Award{ID: string(rune('a' + i)), Type: AwardDescription, Name: "x"}, AwardCount: 10, Rate: r})
	}
	return s
}

// chiSquare returns the chi-square statistic of observed counts against
// expected probabilities (expected cells of zero must observe zero).
func chiSquare(t *testing.T, obs []int, probs []float64, n int) float64 {
	t.Helper()
	var x float64
	for i, p := range probs {
		e := p * float64(n)
		if e == 0 {
			if obs[i] != 0 {
				t.Fatalf("outcome %d has probability 0 but was drawn %d times", i, obs[i])
			}
			continue
		}
		d := float64(obs[i]) - e
		x += d * d / e
	}
	return x
}

// chiCritical is the 0.999 quantile of chi-square for df degrees of freedom
// (Wilson-Hilferty), so the test fails by chance about once in a thousand runs
// at most; the seeds are fixed, so in practice never.
func chiCritical(df int) float64 {
	k := float64(df)
	z := 3.0902 // the standard normal 0.999 quantile
	return k * math.Pow(1-2/(9*k)+z*math.Sqrt(2/(9*k)), 3)
}

func TestDrawRatesSingle(t *testing.T) {
	// 0.01% granularity at least: a rate of 0.0001 must be honoured.
	s := testStrategy(ModeSingle, 100, 5000, 150000, 300000) // 0.01%, 0.5%, 15%, 30%; miss 54.49%
	inStock := []bool{true, true, false, true}               // c has no stock: a miss
	n := 2_000_000
	if testing.Short() {
		n = 400_000
	}
	var d NativeDrawer
	obs := make([]int, 5) // a, b, c, d, miss
	rng := rand.New(rand.NewPCG(1, 2))
	for range n {
		r, _ := d.Draw(context.Background(), DrawRequest{Strategy: s, InStock: inStock, Seed: rng.Uint64()})
		if r.Index < 0 {
			obs[4]++
		} else {
			obs[r.Index]++
		}
	}
	probs := []float64{0.0001, 0.005, 0, 0.3, 1 - 0.0001 - 0.005 - 0.3}
	if x, c := chiSquare(t, obs, probs, n), chiCritical(3); x > c {
		t.Fatalf("chi-square %.2f > %.2f: observed %v", x, c, obs)
	}
}

func TestDrawRatesTotal(t *testing.T) {
	s := testStrategy(ModeTotal, 100, 200, 300, 400)
	inStock := []bool{true, false, true, true} // b removed: renormalise over 100+300+400
	n := 1_000_000
	if testing.Short() {
		n = 200_000
	}
	var d NativeDrawer
	obs := make([]int, 4)
	rng := rand.New(rand.NewPCG(3, 4))
	for range n {
		r, _ := d.Draw(context.Background(), DrawRequest{Strategy: s, InStock: inStock, Seed: rng.Uint64()})
		if r.Index < 0 {
			t.Fatal("total mode missed while awards had stock")
		}
		obs[r.Index]++
	}
	probs := []float64{100.0 / 800, 0, 300.0 / 800, 400.0 / 800}
	if x, c := chiSquare(t, obs, probs, n), chiCritical(2); x > c {
		t.Fatalf("chi-square %.2f > %.2f: observed %v", x, c, obs)
	}
	r, _ := d.Draw(context.Background(), DrawRequest{Strategy: s, InStock: make([]bool, 4), Seed: 7})
	if r.Index != -1 {
		t.Fatalf("nothing in stock: got index %d, want -1", r.Index)
	}
}

func TestAliasTableExact(t *testing.T) {
	// Every column's kept mass plus what other columns alias to it must equal
	// its weight exactly: the integer construction loses nothing.
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		n := 1 + rng.IntN(MaxAwards)
		w := make([]int64, n)
		for i := range w {
			if rng.IntN(4) > 0 {
				w[i] = rng.Int64N(RateScale)
			}
		}
		w[rng.IntN(n)] += 1 // at least one positive weight
		tab := newAliasTable(w)
		mass := make([]uint64, n)
		for i := range n {
			mass[i] += tab.prob[i]
			mass[tab.alias[i]] += tab.total - tab.prob[i]
		}
		for i := range n {
			if mass[i] != uint64(w[i])*uint64(n) {
				t.Fatalf("weights %v: outcome %d has mass %d, want %d", w, i, mass[i], uint64(w[i])*uint64(n))
			}
		}
	}
}

func TestDrawReproducible(t *testing.T) {
	s := testStrategy(ModeTotal, 1, 2, 3)
	var d1, d2 NativeDrawer
	for seed := range uint64(1000) {
		req := DrawRequest{Strategy: s, InStock: []bool{true, true, true}, Seed: seed}
		a, _ := d1.Draw(context.Background(), req)
		b, _ := d2.Draw(context.Background(), req)
		if a != b {
			t.Fatalf("seed %d: %v vs %v", seed, a, b)
		}
	}
}

func TestSnowflakeUnique(t *testing.T) {
	sf, err := NewSnowflake(7)
	if err != nil {
		t.Fatal(err)
	}
	const workers, per = 8, 20000
	ids := make([][]int64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range per {
				ids[w] = append(ids[w], sf.Next())
			}
		})
	}
	wg.Wait()
	seen := make(map[int64]bool, workers*per)
	for _, l := range ids {
		for i, id := range l {
			if id <= 0 || seen[id] {
				t.Fatalf("id %d repeated or not positive", id)
			}
			if i > 0 && id <= l[i-1] {
				t.Fatalf("ids not increasing within a goroutine: %d after %d", id, l[i-1])
			}
			if (id>>12)&MaxNode != 7 {
				t.Fatalf("id %d does not carry node 7", id)
			}
			seen[id] = true
		}
	}
	if _, err := NewSnowflake(MaxNode + 1); err == nil {
		t.Fatal("node above MaxNode accepted")
	}
}

func BenchmarkNativeDraw(b *testing.B) {
	s := testStrategy(ModeSingle, 100, 5000, 150000, 300000)
	inStock := []bool{true, true, true, true}
	var d NativeDrawer
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		seed := uint64(0)
		for pb.Next() {
			seed++
			d.Draw(context.Background(), DrawRequest{Strategy: s, InStock: inStock, Seed: seed})
		}
	})
}
