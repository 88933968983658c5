package stock_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/stock"
	"github.com/flashlottery/lottery/stock/stocktest"
)

// testRedisAddr returns the Redis the tests run against, or skips the test.
func testRedisAddr(tb testing.TB) string {
	tb.Helper()
	addr := os.Getenv("LOTTERY_TEST_REDIS")
	if addr == "" {
		tb.Skip("LOTTERY_TEST_REDIS is not set, so there is no Redis to test against: run scripts/services.sh start and . .services/env (CI sets it)")
	}
	return addr
}

var prefixSeq atomic.Uint64

// testPrefix returns a key prefix no other test, process or run uses: the
// Redis is shared, so tests never flush it and delete only their own keys.
func testPrefix() string {
	return fmt.Sprintf("stocktest:%d.%d.%d:", os.Getpid(), time.Now().UnixNano(), prefixSeq.Add(1))
}

// newTestRedis opens an adapter on the test Redis; an empty prefix gets a
// fresh one. The adapter is closed and the prefix's keys deleted at cleanup.
//
// Unset timeouts are one second, not the 50ms defaults: these tests check
// semantics, on a loaded machine and under the race detector, where a
// goroutine can wait longer than 50ms for a CPU and then find its read
// deadline past. TestRedisUnavailableFailsFast and the benchmarks run with
// the defaults.
func newTestRedis(tb testing.TB, cfg stock.RedisConfig) *stock.Redis {
	tb.Helper()
	cfg.Addr = testRedisAddr(tb)
	if cfg.Prefix == "" {
		cfg.Prefix = testPrefix()
	}
	for _, d := range []*time.Duration{&cfg.DialTimeout, &cfg.ReadTimeout, &cfg.WriteTimeout} {
		if *d == 0 {
			*d = time.Second
		}
	}
	r, err := stock.NewRedis(cfg)
	if err != nil {
		tb.Fatalf("NewRedis(%+v) = %v", cfg, err)
	}
	tb.Cleanup(func() {
		if err := r.Close(); err != nil {
			tb.Errorf("Close = %v", err)
		}
		deleteKeys(tb, cfg.Addr, cfg.Prefix)
	})
	return r
}

// deleteKeys deletes every key under prefix.
func deleteKeys(tb testing.TB, addr, prefix string) {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			c.Unlink(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		c.Unlink(ctx, keys...)
	}
	if err := iter.Err(); err != nil {
		tb.Errorf("scan %s*: %v", prefix, err)
	}
}

func TestRedisContract(t *testing.T) {
	testRedisAddr(t)
	for _, tc := range []struct {
		name string
		cfg  stock.RedisConfig
	}{
		{"lua", stock.RedisConfig{}},
		{"lock", stock.RedisConfig{Mode: stock.ModeLock}},
		{"lua-shards4", stock.RedisConfig{Shards: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stocktest.Run(t, func(t *testing.T) stocktest.Store { return newTestRedis(t, tc.cfg) })
		})
	}
}

// TestRedisTwoEdges hammers one stock from two adapters sharing one Redis,
// as two edges of a cluster do: the Lua mode sells exactly the total, the
// lock mode never more. Each edge provisions at its start; the second
// provision must not reset what the first sold.
func TestRedisTwoEdges(t *testing.T) {
	testRedisAddr(t)
	total, workers := int64(1000), 32
	if testing.Short() {
		total, workers = 200, 8
	}
	for _, tc := range []struct {
		name  string
		cfg   stock.RedisConfig
		exact bool
	}{
		{"lua", stock.RedisConfig{}, true},
		{"lock", stock.RedisConfig{Mode: stock.ModeLock}, false},
		{"lua-shards4", stock.RedisConfig{Shards: 4}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			cfg := tc.cfg
			cfg.Prefix = testPrefix()
			edges := []*stock.Redis{newTestRedis(t, cfg), newTestRedis(t, cfg)}
			key := lottery.StockKey{Activity: 1}
			if err := edges[0].Provision(ctx, key, total, 0); err != nil {
				t.Fatal(err)
			}
			var (
				accepted, released atomic.Int64
				wg                 sync.WaitGroup
				errOnce            sync.Once
				firstErr           error
			)
			for w := range 2 * workers {
				edge := edges[w%2]
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(w), 7))
					for {
						r, err := edge.Reserve(ctx, key)
						if errors.Is(err, lottery.ErrSoldOut) {
							return
						}
						if err != nil {
							errOnce.Do(func() { firstErr = err })
							return
						}
						accepted.Add(1)
						if rng.IntN(10) == 0 {
							if err := edge.Release(ctx, r); err != nil {
								errOnce.Do(func() { firstErr = err })
								return
							}
							released.Add(1)
							continue
						}
						if err := edge.Settle(ctx, r); err != nil {
							errOnce.Do(func() { firstErr = err })
							return
						}
					}
				})
				if w == workers {
					// The second edge starts while the first sells.
					if err := edges[1].Provision(ctx, key, total, 0); err != nil {
						t.Fatal(err)
					}
				}
			}
			wg.Wait()
			if firstErr != nil {
				t.Fatal(firstErr)
			}
			sold := accepted.Load() - released.Load()
			t.Logf("%s: %d accepted, %d released, %d sold of %d", tc.name, accepted.Load(), released.Load(), sold, total)
			if sold > total {
				t.Fatalf("oversold: %d sold of %d", sold, total)
			}
			if tc.exact && sold != total {
				t.Fatalf("sold %d, want exactly %d", sold, total)
			}
			used, err := edges[1].Used(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if used != sold {
				t.Fatalf("Used = %d, want the %d sold", used, sold)
			}
		})
	}
}

// TestRedisUnavailableFailsFast checks that a draw learns within 100ms that
// Redis is down, whether nothing listens (refused) or Redis hangs (accepts
// and never answers), one call at a time and many at once.
func TestRedisUnavailableFailsFast(t *testing.T) {
	const budget = 100 * time.Millisecond
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	defer func() { hung.Close(); conns.Wait() }()
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			})
		}
	}()
	for _, tc := range []struct{ name, addr string }{
		{"refused", "127.0.0.1:1"},
		{"hung", hung.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := stock.NewRedis(stock.RedisConfig{Addr: tc.addr})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			key := lottery.StockKey{Activity: 1}
			var slowest atomic.Int64
			defer func() { t.Logf("slowest call: %v", time.Duration(slowest.Load())) }()
			check := func(what string, f func() error) {
				t.Helper()
				start := time.Now()
				err := f()
				d := time.Since(start)
				for s := slowest.Load(); int64(d) > s && !slowest.CompareAndSwap(s, int64(d)); s = slowest.Load() {
				}
				if d > budget {
					t.Errorf("%s took %v, want under %v", what, d, budget)
				}
				if !errors.Is(err, lottery.ErrUnavailable) {
					t.Errorf("%s = %v, want ErrUnavailable", what, err)
				}
			}
			for range 5 {
				check("Reserve", func() error { _, err := r.Reserve(context.Background(), key); return err })
			}
			var wg sync.WaitGroup
			for range 50 {
				wg.Go(func() {
					check("concurrent Reserve", func() error { _, err := r.Reserve(context.Background(), key); return err })
				})
			}
			wg.Wait()
			check("Release", func() error { return r.Release(context.Background(), lottery.Reservation{Key: key}) })
			check("Left", func() error { _, err := r.Left(context.Background(), key); return err })
			check("Provision", func() error { return r.Provision(context.Background(), key, 1, 0) })
			check("Ping", func() error { return r.Ping(context.Background()) })
			if st := r.Stats(); st.Failures < 55 || st.Reservations != 0 {
				t.Errorf("Stats = %+v, want 55 failures and no reservation", st)
			}
		})
	}
}

// TestRedisProvisionCluster checks Provision's merge rule: it never lowers
// the live count, raises it to the durable count, and resets only on a
// redefinition or through Reset.
func TestRedisProvisionCluster(t *testing.T) {
	for _, shards := range []int{1, 4} {
		t.Run(fmt.Sprintf("shards%d", shards), func(t *testing.T) {
			ctx := t.Context()
			cfg := stock.RedisConfig{Prefix: testPrefix(), Shards: shards}
			a, b := newTestRedis(t, cfg), newTestRedis(t, cfg)
			key := lottery.StockKey{Activity: 9, Award: "gold"}
			left := func(want int64) {
				t.Helper()
				for _, e := range []*stock.Redis{a, b} {
					if got, err := e.Left(ctx, key); err != nil || got != want {
						t.Fatalf("Left = %d, %v; want %d", got, err, want)
					}
				}
			}
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(a.Provision(ctx, key, 10, 0))
			for range 3 {
				if _, err := a.Reserve(ctx, key); err != nil {
					t.Fatal(err)
				}
			}
			left(7)
			// Edge b starts: the database has no take yet, Redis counts the
			// three in flight. Nothing is forgotten.
			must(b.Provision(ctx, key, 10, 0))
			left(7)
			// An edge that read the database earlier provisions later.
			must(b.Provision(ctx, key, 10, 2))
			must(a.Provision(ctx, key, 10, 1))
			left(7)
			// Redis lost writes: the database knows of five.
			must(b.Provision(ctx, key, 10, 5))
			left(5)
			// More stock, live count kept.
			must(a.Provision(ctx, key, 12, 5))
			left(7)
			// A stale durable count with the same total changes nothing.
			must(a.Provision(ctx, key, 12, 1))
			left(7)
			// A redefinition: new total and a durable count below the last
			// one means the database was reset.
			must(a.Provision(ctx, key, 4, 1))
			left(3)
			// Reset replaces whatever Redis holds.
			must(b.Reset(ctx, key, 6, 6))
			left(0)
			if _, err := b.Reserve(ctx, key); !errors.Is(err, lottery.ErrSoldOut) {
				t.Fatalf("Reserve after Reset(6, 6) = %v, want ErrSoldOut", err)
			}
			must(a.Reset(ctx, key, 6, 0))
			left(6)
			for _, e := range []*stock.Redis{a, b} {
				if used, err := e.Used(ctx, key); err != nil || used != 0 {
					t.Fatalf("Used = %d, %v; want 0", used, err)
				}
			}
			if _, err := a.Used(ctx, lottery.StockKey{Activity: 10}); !errors.Is(err, lottery.ErrNotFound) {
				t.Fatalf("Used of an unknown key = %v, want ErrNotFound", err)
			}
		})
	}
}

// TestRedisShardMismatch checks that edges configured with different shard
// counts cannot both provision a key: they would count two separate stocks.
func TestRedisShardMismatch(t *testing.T) {
	ctx := t.Context()
	prefix := testPrefix()
	a := newTestRedis(t, stock.RedisConfig{Prefix: prefix, Shards: 4})
	b := newTestRedis(t, stock.RedisConfig{Prefix: prefix})
	key := lottery.StockKey{Activity: 1}
	if err := a.Provision(ctx, key, 10, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Provision(ctx, key, 10, 0); !errors.Is(err, lottery.ErrConflict) {
		t.Fatalf("Provision with another shard count = %v, want ErrConflict", err)
	}
}

// TestRedisSoldOutFlagExpires checks that the local sold-out flag of one
// edge, which costs no I/O, sees stock freed by another edge after SoldOutTTL.
func TestRedisSoldOutFlagExpires(t *testing.T) {
	ctx := t.Context()
	prefix := testPrefix()
	const ttl = 50 * time.Millisecond
	a := newTestRedis(t, stock.RedisConfig{Prefix: prefix, SoldOutTTL: ttl})
	b := newTestRedis(t, stock.RedisConfig{Prefix: prefix, SoldOutTTL: ttl})
	key := lottery.StockKey{Activity: 3}
	if err := a.Provision(ctx, key, 1, 0); err != nil {
		t.Fatal(err)
	}
	held, err := b.Reserve(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reserve(ctx, key); !errors.Is(err, lottery.ErrSoldOut) {
		t.Fatalf("Reserve = %v, want ErrSoldOut", err)
	}
	if !a.SoldOut(key) {
		t.Fatal("SoldOut = false after a refused reservation")
	}
	if err := b.Release(ctx, held); err != nil {
		t.Fatal(err)
	}
	if b.SoldOut(key) {
		t.Fatal("SoldOut on the releasing edge = true")
	}
	deadline := time.Now().Add(10 * ttl)
	for a.SoldOut(key) {
		if time.Now().After(deadline) {
			t.Fatalf("SoldOut still true %v after another edge freed a unit", 10*ttl)
		}
		time.Sleep(ttl / 10)
	}
	if _, err := a.Reserve(ctx, key); err != nil {
		t.Fatalf("Reserve after the flag expired = %v", err)
	}
}

// TestRedisAbandonedReservationsGivenBack has callers give up while their
// reservation is on its way: a unit reserved for a caller that left must go
// back, so the units held by callers plus what is left equal the total.
func TestRedisAbandonedReservationsGivenBack(t *testing.T) {
	for _, mode := range []string{stock.ModeLua, stock.ModeLock} {
		t.Run(mode, func(t *testing.T) {
			ctx := t.Context()
			cfg := stock.RedisConfig{Prefix: testPrefix(), Mode: mode}
			r := newTestRedis(t, cfg)
			check := newTestRedis(t, cfg)
			key := lottery.StockKey{Activity: 4}
			const total = 100000
			if err := r.Provision(ctx, key, total, 0); err != nil {
				t.Fatal(err)
			}
			var (
				held atomic.Int64
				wg   sync.WaitGroup
			)
			for round := 0; round < 200 && (r.Stats().GivenBack < 5 || held.Load() < 20); round++ {
				for i := range 64 {
					wg.Go(func() {
						c, cancel := context.WithTimeout(ctx, time.Duration(i%32)*25*time.Microsecond)
						defer cancel()
						if _, err := r.Reserve(c, key); err == nil {
							held.Add(1)
						} else if !errors.Is(err, lottery.ErrUnavailable) {
							t.Errorf("Reserve = %v, want a unit or ErrUnavailable", err)
						}
					})
				}
				wg.Wait()
			}
			st := r.Stats()
			if st.Abandoned == 0 {
				t.Skip("no caller gave up while its reservation was in flight; nothing to check")
			}
			if st.GivenBack > st.Abandoned {
				t.Fatalf("Stats = %+v: more units given back than callers abandoned", st)
			}
			// Close finishes the give-backs the batcher holds.
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			left, err := check.Left(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d held, %d abandoned, %d given back before Close, %d left", held.Load(), st.Abandoned, st.GivenBack, left)
			if held.Load()+left != total {
				t.Fatalf("held %d + left %d = %d, want the total %d", held.Load(), left, held.Load()+left, total)
			}
		})
	}
}

// TestRedisLockSlots checks the lock mode's slots: a release below slots in
// flight makes the count hand out a slot still locked, and the reservation
// takes a free one instead of failing; Settle and Release drop locks; a slot
// locked by a holder the count forgot (Reset under load) is not sold twice.
func TestRedisLockSlots(t *testing.T) {
	ctx := t.Context()
	addr := testRedisAddr(t)
	prefix := testPrefix()
	const ttl = 200 * time.Millisecond
	r := newTestRedis(t, stock.RedisConfig{Prefix: prefix, Mode: stock.ModeLock, LockTTL: ttl})
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	locked := func(slot int64) bool {
		n, err := c.Exists(ctx, fmt.Sprintf("%s{5}_%d", prefix, slot)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	key := lottery.StockKey{Activity: 5}
	if err := r.Provision(ctx, key, 4, 0); err != nil {
		t.Fatal(err)
	}
	var res []lottery.Reservation
	for want := int64(1); want <= 3; want++ {
		x, err := r.Reserve(ctx, key)
		if err != nil || x.Slot != want {
			t.Fatalf("Reserve = %+v, %v; want slot %d", x, err, want)
		}
		if !locked(want) {
			t.Fatalf("slot %d not locked", want)
		}
		res = append(res, x)
	}
	if err := r.Release(ctx, res[1]); err != nil { // slot 2
		t.Fatal(err)
	}
	if locked(2) {
		t.Fatal("Release left slot 2 locked")
	}
	// The count is back to 2, so the next reservation is counted as the
	// third unit, whose slot 3 is still held: it must take slot 2.
	x, err := r.Reserve(ctx, key)
	if err != nil || x.Slot != 2 {
		t.Fatalf("Reserve after a release below a held slot = %+v, %v; want slot 2", x, err)
	}
	if err := r.Settle(ctx, res[2]); err != nil {
		t.Fatal(err)
	}
	if locked(3) {
		t.Fatal("Settle left slot 3 locked")
	}
	if left, err := r.Left(ctx, key); err != nil || left != 1 {
		t.Fatalf("Left = %d, %v; want 1", left, err)
	}

	// Reset forgets the three units in flight, but slots 1 and 2 are still
	// locked by their holders: the guard refuses to sell them again.
	if err := r.Reset(ctx, key, 2, 0); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := r.Reserve(ctx, key); !errors.Is(err, lottery.ErrSoldOut) {
			t.Fatalf("Reserve over locked slots = %v, want ErrSoldOut", err)
		}
	}
	if left, err := r.Left(ctx, key); err != nil || left != 2 {
		t.Fatalf("Left = %d, %v; want 2 (the refusals gave their count back)", left, err)
	}
	time.Sleep(ttl + 50*time.Millisecond)
	for want := int64(1); want <= 2; want++ {
		if x, err := r.Reserve(ctx, key); err != nil || x.Slot != want {
			t.Fatalf("Reserve after the locks expired = %+v, %v; want slot %d", x, err, want)
		}
	}
}

// TestRedisAwardKeysEscaped checks that award ids with the characters the
// key layout uses stay separate keys.
func TestRedisAwardKeysEscaped(t *testing.T) {
	ctx := t.Context()
	r := newTestRedis(t, stock.RedisConfig{Shards: 2})
	awards := []string{"a", "a:b", "a%3Ab", "a}b", "a#0", "a_1", "{a}", "", "é"}
	for i, aw := range awards {
		if err := r.Provision(ctx, lottery.StockKey{Activity: 1, Award: aw}, int64(i+1), 0); err != nil {
			t.Fatal(err)
		}
	}
	for i, aw := range awards {
		key := lottery.StockKey{Activity: 1, Award: aw}
		if left, err := r.Left(ctx, key); err != nil || left != int64(i+1) {
			t.Fatalf("Left(%q) = %d, %v; want %d", aw, left, err, i+1)
		}
	}
}

func TestRedisConfigValidate(t *testing.T) {
	if err := (stock.RedisConfig{Addr: "x:1"}).Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	bad := stock.RedisConfig{
		DB: -1, Prefix: "a{", Mode: "fast", LockTTL: time.Microsecond, Shards: 1000,
		DialTimeout: -1, PoolSize: -1, Batch: 1 << 20, SoldOutTTL: -1,
	}
	err := bad.Validate()
	if !errors.Is(err, lottery.ErrInvalid) {
		t.Fatalf("Validate = %v, want ErrInvalid", err)
	}
	for _, want := range []string{"addr", "db", "prefix", "mode", "lock ttl", "shards", "dial timeout", "pool size", "batch", "sold-out ttl"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %q does not name %q", err, want)
		}
	}
	err = (stock.RedisConfig{Addr: "x:1", Mode: stock.ModeLock, Shards: 2}).Validate()
	if err == nil || !strings.Contains(err.Error(), "shards 1") {
		t.Errorf("lock mode with shards: %v, want an error", err)
	}
	if _, err := stock.NewRedis(bad); !errors.Is(err, lottery.ErrInvalid) {
		t.Errorf("NewRedis(bad) = %v, want ErrInvalid", err)
	}
}

func TestRedisClosed(t *testing.T) {
	r := newTestRedis(t, stock.RedisConfig{})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reserve(t.Context(), lottery.StockKey{Activity: 1}); !errors.Is(err, lottery.ErrUnavailable) {
		t.Fatalf("Reserve after Close = %v, want ErrUnavailable", err)
	}
}

// BenchmarkRedisReserve measures reservations through the batcher from many
// goroutines (64 per CPU), as a busy edge makes them, and reports the round
// trips to Redis per reservation. The lock mode settles each reservation,
// as a draw does after its take commits, to drop the slot lock. It runs with
// the production timeouts (50ms): on a machine too loaded to meet them a
// few calls fail with ErrUnavailable, as draws would; they are reported as
// fail/op rather than failing the benchmark.
func BenchmarkRedisReserve(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  stock.RedisConfig
	}{
		{"lua", stock.RedisConfig{}},
		{"lua-shards4", stock.RedisConfig{Shards: 4}},
		{"lock", stock.RedisConfig{Mode: stock.ModeLock, LockTTL: time.Second}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := tc.cfg
			cfg.DialTimeout, cfg.ReadTimeout, cfg.WriteTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
			r := newTestRedis(b, cfg)
			key := lottery.StockKey{Activity: 1}
			if err := r.Provision(context.Background(), key, 1<<50, 0); err != nil {
				b.Fatal(err)
			}
			before := r.Stats()
			var unavailable atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(64)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					res, err := r.Reserve(ctx, key)
					if err == nil {
						err = r.Settle(ctx, res)
					}
					if errors.Is(err, lottery.ErrUnavailable) {
						unavailable.Add(1)
					} else if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			after := r.Stats()
			b.ReportMetric(float64(unavailable.Load())/float64(b.N), "fail/op")
			n := float64(after.Reservations - before.Reservations)
			b.ReportMetric(float64(after.Batches-before.Batches)/n, "batches/res")
			b.ReportMetric(float64(after.RoundTrips-before.RoundTrips)/n, "rtt/res")
			b.ReportMetric(n/b.Elapsed().Seconds(), "res/s")
		})
	}
}

// BenchmarkRedisEvalShaUnbatched is the baseline without the batcher: each
// goroutine sends its own EVALSHA of the same check-and-increment.
func BenchmarkRedisEvalShaUnbatched(b *testing.B) {
	addr := testRedisAddr(b)
	prefix := testPrefix()
	b.Cleanup(func() { deleteKeys(b, addr, prefix) })
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	key := prefix + "{1}"
	if err := c.HSet(ctx, key, "t", 1<<50, "u", 0).Err(); err != nil {
		b.Fatal(err)
	}
	s := redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 't', 'u')
if not v[1] then return -1 end
local u = tonumber(v[2]) or 0
if u >= tonumber(v[1]) then return 0 end
return redis.call('HINCRBY', KEYS[1], 'u', 1)
`)
	keys := []string{key}
	b.ReportAllocs()
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Run(ctx, c, keys).Err(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "res/s")
}
