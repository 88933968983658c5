package lottery

import (
	"context"
	"math/bits"
	"sync"
)

// aliasTable is Vose's alias method in exact integer arithmetic: column i is
// kept with probability prob[i]/total and otherwise replaced by alias[i]. A
// draw costs two random numbers and one comparison, whatever the number of
// outcomes, and reproduces the weights exactly (no floating point).
type aliasTable struct {
	prob  []uint64
	alias []int32
	total uint64 // the sum of the weights: the coin's range
}

// newAliasTable builds the table for weights (all >= 0, sum > 0).
func newAliasTable(weights []int64) *aliasTable {
	n := len(weights)
	var total uint64
	for _, w := range weights {
		total += uint64(w)
	}
	t := &aliasTable{prob: make([]uint64, n), alias: make([]int32, n), total: total}
	scaled := make([]uint64, n)
	small := make([]int32, 0, n)
	large := make([]int32, 0, n)
	for i, w := range weights {
		scaled[i] = uint64(w) * uint64(n)
		if scaled[i] < total {
			small = append(small, int32(i))
		} else {
			large = append(large, int32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s := small[len(small)-1]
		small = small[:len(small)-1]
		l := large[len(large)-1]
		large = large[:len(large)-1]
		t.prob[s] = scaled[s]
		t.alias[s] = l
		scaled[l] -= total - scaled[s]
		if scaled[l] < total {
			small = append(small, l)
		} else {
			large = append(large, l)
		}
	}
	for _, i := range large {
		t.prob[i], t.alias[i] = total, i
	}
	for _, i := range small { // only reachable through rounding, which integers do not have
		t.prob[i], t.alias[i] = total, i
	}
	return t
}

// pick maps a seed to an outcome index.
func (t *aliasTable) pick(seed uint64) int {
	r1, r2 := SplitMix64(seed), SplitMix64(seed^0x9e3779b97f4a7c15)
	col, _ := bits.Mul64(r1, uint64(len(t.prob)))
	coin, _ := bits.Mul64(r2, t.total)
	if coin < t.prob[col] {
		return int(col)
	}
	return int(t.alias[col])
}

// SplitMix64 is the finaliser of the SplitMix64 generator: a bijective mix
// of a 64-bit seed. Draw modules use it too, so native and Wasm draws agree.
func SplitMix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// NativeDrawer is the reference draw algorithm in Go for both modes, with
// alias tables cached per strategy (and, in total mode, per set of awards
// in stock). It is safe for concurrent use.
type NativeDrawer struct {
	tables sync.Map // strategy id -> *strategyTables
}

type strategyTables struct {
	s      *Strategy
	single *aliasTable            // mode 1: awards plus one "miss" outcome
	total  map[uint64]*aliasTable // mode 2: by in-stock mask
	mu     sync.RWMutex
}

// NativeModule is the module name recorded on orders drawn by NativeDrawer.
const NativeModule = "native/alias-v1"

// Draw implements Drawer.
func (d *NativeDrawer) Draw(_ context.Context, req DrawRequest) (DrawResult, error) {
	return DrawResult{Index: d.pick(req), Module: NativeModule}, nil
}

func (d *NativeDrawer) pick(req DrawRequest) int {
	st := d.tablesFor(req.Strategy)
	if req.Strategy.Mode == ModeSingle {
		i := st.single.pick(req.Seed)
		if i >= len(req.Strategy.Details) || !req.InStock[i] {
			return -1
		}
		return i
	}
	var mask uint64
	for i, ok := range req.InStock {
		if ok && req.Strategy.Details[i].Rate > 0 {
			mask |= 1 << uint(i)
		}
	}
	if mask == 0 {
		return -1
	}
	st.mu.RLock()
	t := st.total[mask]
	st.mu.RUnlock()
	if t == nil {
		w := make([]int64, len(req.Strategy.Details))
		for i := range w {
			if mask&(1<<uint(i)) != 0 {
				w[i] = req.Strategy.Details[i].Rate
			}
		}
		t = newAliasTable(w)
		st.mu.Lock()
		if len(st.total) > 1024 { // bound the cache; masks change only as awards sell out
			clear(st.total)
		}
		st.total[mask] = t
		st.mu.Unlock()
	}
	return t.pick(req.Seed)
}

func (d *NativeDrawer) tablesFor(s *Strategy) *strategyTables {
	if v, ok := d.tables.Load(s.ID); ok && v.(*strategyTables).s == s {
		return v.(*strategyTables)
	}
	// A new or changed strategy: build its tables. Two racing builders build
	// the same thing; the last store wins.
	st := &strategyTables{s: s, total: make(map[uint64]*aliasTable)}
	if s.Mode == ModeSingle {
		w := make([]int64, len(s.Details)+1)
		var sum int64
		for i, det := range s.Details {
			w[i] = det.Rate
			sum += det.Rate
		}
		w[len(s.Details)] = RateScale - sum
		st.single = newAliasTable(w)
	}
	d.tables.Store(s.ID, st)
	return st
}
