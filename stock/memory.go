package stock

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/flashlottery/lottery/lottery"
)

// Interface guards.
var (
	_ lottery.Stock        = (*Memory)(nil)
	_ lottery.StockBatch   = (*Memory)(nil)
	_ lottery.StockAdmin   = (*Memory)(nil)
	_ lottery.StockTrimmer = (*Memory)(nil)
)

// Memory is the in-process sliding stock: the embedded default and the
// reference for the Redis adapter. It is safe for concurrent use; Reserve,
// Release and SoldOut take no lock and allocate nothing. Its counts live only
// as long as the process, so a restart provisions every key again from the
// durable usage (see lottery.StockAdmin).
type Memory struct {
	counters sync.Map // lottery.StockKey -> *counter
}

// NewMemory returns an empty Memory; every key must be provisioned before it
// can be reserved.
func NewMemory() *Memory {
	return &Memory{}
}

// counter is the stock of one key. Its state is a generation that Provision
// swaps as a whole; the counter itself lives as long as the Memory.
type counter struct {
	gen atomic.Pointer[generation]
	// errSoldOut is built once so the sold-out path does not allocate.
	errSoldOut error
}

// generation is one provisioned state of a counter: an immutable total and a
// used count that reservations and releases move.
type generation struct {
	used atomic.Int64
	// The padding keeps used, which every reservation writes, off the cache
	// line of soldOut, which every SoldOut call reads.
	_       [64]byte
	soldOut atomic.Bool
	total   int64
}

// Reserve takes one unit of the key's stock. It answers an error wrapping
// lottery.ErrSoldOut when used has reached total (and sets the key's local
// sold-out flag), and an error wrapping lottery.ErrNotFound when the key was
// never provisioned. The reservation's Slot is the used count after it, from 1.
func (m *Memory) Reserve(_ context.Context, key lottery.StockKey) (lottery.Reservation, error) {
	c := m.lookup(key)
	if c == nil {
		return lottery.Reservation{}, notFound(key)
	}
	for {
		g := c.gen.Load()
		used := g.used.Load()
		if used >= g.total {
			if g.soldOut.Load() {
				return lottery.Reservation{}, c.errSoldOut
			}
			g.soldOut.Store(true)
			// A release between the load of used and the store of the flag
			// may have seen the flag still clear and left it alone; look
			// again so the flag never stays set while a unit is free.
			if g.used.Load() < g.total || c.gen.Load() != g {
				g.soldOut.Store(false)
				continue
			}
			return lottery.Reservation{}, c.errSoldOut
		}
		if !g.used.CompareAndSwap(used, used+1) {
			continue
		}
		if c.gen.Load() != g {
			// Provision replaced the state after we loaded it: the unit came
			// from a generation that no longer counts. Take it from the new one.
			continue
		}
		return lottery.Reservation{Key: key, Slot: used + 1}, nil
	}
}

// ReserveEach reserves one unit of each key, as Reserve does for each
// (in process there is no round trip to share). res and errs, of
// len(keys), receive each key's answer.
func (m *Memory) ReserveEach(ctx context.Context, keys []lottery.StockKey, res []lottery.Reservation, errs []error) {
	for i, key := range keys {
		res[i], errs[i] = m.Reserve(ctx, key)
	}
}

// Release gives a reservation's unit back and clears the key's sold-out flag
// when a unit is free again. The used count never goes below zero: a release
// with nothing in use (for example after a Provision reset it) changes nothing.
func (m *Memory) Release(_ context.Context, r lottery.Reservation) error {
	c := m.lookup(r.Key)
	if c == nil {
		return notFound(r.Key)
	}
	g := c.gen.Load()
	for {
		used := g.used.Load()
		if used <= 0 {
			return nil
		}
		if g.used.CompareAndSwap(used, used-1) {
			if used-1 < g.total && g.soldOut.Load() {
				g.soldOut.Store(false)
			}
			return nil
		}
	}
}

// Settle does nothing: Memory holds no slot locks. It returns nil.
func (m *Memory) Settle(context.Context, lottery.Reservation) error {
	return nil
}

// SoldOut reports the key's local sold-out flag: set by a refused
// reservation (or by provisioning a key with nothing left), cleared by a
// release. It is false for a key that was never provisioned.
func (m *Memory) SoldOut(key lottery.StockKey) bool {
	c := m.lookup(key)
	if c == nil {
		return false
	}
	return c.gen.Load().soldOut.Load()
}

// Provision creates the key's counter or replaces its state: total units, of
// which used are already taken (the durable count; it may exceed total if the
// durable record says so, and then nothing is left). It answers an error
// wrapping lottery.ErrInvalid when total or used is negative.
func (m *Memory) Provision(_ context.Context, key lottery.StockKey, total, used int64) error {
	if total < 0 || used < 0 {
		return &keyError{key: key, err: fmt.Errorf("%w: total %d and used %d must not be negative", lottery.ErrInvalid, total, used)}
	}
	g := &generation{total: total}
	g.used.Store(used)
	g.soldOut.Store(used >= total)
	if c := m.lookup(key); c != nil {
		c.gen.Store(g)
		return nil
	}
	c := &counter{errSoldOut: &keyError{key: key, err: lottery.ErrSoldOut}}
	c.gen.Store(g)
	if v, loaded := m.counters.LoadOrStore(key, c); loaded {
		v.(*counter).gen.Store(g)
	}
	return nil
}

// Left returns what is left of the key's stock, total - used and never below
// zero, or an error wrapping lottery.ErrNotFound for an unknown key.
func (m *Memory) Left(_ context.Context, key lottery.StockKey) (int64, error) {
	c := m.lookup(key)
	if c == nil {
		return 0, notFound(key)
	}
	g := c.gen.Load()
	return max(g.total-g.used.Load(), 0), nil
}

func (m *Memory) lookup(key lottery.StockKey) *counter {
	v, ok := m.counters.Load(key)
	if !ok {
		return nil
	}
	return v.(*counter)
}

// keyError is an error about one stock key; it unwraps to the domain sentinel.
type keyError struct {
	key lottery.StockKey
	err error
}

func (e *keyError) Error() string {
	s := "stock: activity " + strconv.FormatInt(e.key.Activity, 10)
	if e.key.Award != "" {
		s += " award " + strconv.Quote(e.key.Award)
	}
	return s + ": " + e.err.Error()
}

func (e *keyError) Unwrap() error { return e.err }

func notFound(key lottery.StockKey) error {
	return &keyError{key: key, err: lottery.ErrNotFound}
}

// Trim sets the key's used count to toUsed if it is still expectUsed, and
// reports whether it did: a compare-and-set, so that reconciliations running
// at once give back leaked units once. It clears the sold-out flag when a
// unit becomes free.
func (m *Memory) Trim(_ context.Context, key lottery.StockKey, expectUsed, toUsed int64) (bool, error) {
	c := m.lookup(key)
	if c == nil {
		return false, notFound(key)
	}
	if err := checkTrim(key, expectUsed, toUsed); err != nil {
		return false, err
	}
	g := c.gen.Load()
	if !g.used.CompareAndSwap(expectUsed, toUsed) {
		return false, nil
	}
	if toUsed < g.total {
		g.soldOut.Store(false)
	}
	return true, nil
}

// checkTrim refuses a Trim that would raise the used count or take it
// below zero.
func checkTrim(key lottery.StockKey, expectUsed, toUsed int64) error {
	if toUsed < 0 || toUsed > expectUsed {
		return &keyError{key: key, err: fmt.Errorf("%w: trim from %d to %d", lottery.ErrInvalid, expectUsed, toUsed)}
	}
	return nil
}
