package stock

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashlottery/lottery/lottery"
)

// TestRedisNoScriptFallback gives the adapter scripts Redis has never seen
// (a salt changes their digests), as after a Redis restart empties its
// script cache: every EVALSHA answers NOSCRIPT once and the adapter falls
// back to EVAL, in the batcher and in direct calls, without an error.
func TestRedisNoScriptFallback(t *testing.T) {
	addr := os.Getenv("LOTTERY_TEST_REDIS")
	if addr == "" {
		t.Skip("LOTTERY_TEST_REDIS is not set, so there is no Redis to test against: run scripts/services.sh start and . .services/env (CI sets it)")
	}
	for _, mode := range []string{ModeLua, ModeLock} {
		t.Run(mode, func(t *testing.T) {
			ctx := t.Context()
			unique := fmt.Sprintf("%d.%d", os.Getpid(), time.Now().UnixNano())
			prefix := "stocktest:noscript:" + unique + ":"
			r, err := NewRedis(RedisConfig{Addr: addr, Prefix: prefix, Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			c := redis.NewClient(&redis.Options{Addr: addr})
			t.Cleanup(func() {
				_ = r.Close()
				keys, _ := c.Keys(context.Background(), prefix+"*").Result()
				if len(keys) > 0 {
					c.Unlink(context.Background(), keys...)
				}
				c.Close()
			})
			// Set before the first call, which the batcher receives over its
			// queue: the channel orders this write before its reads.
			r.scripts = newRedisScripts("\n-- noscript test " + unique + " " + mode)
			if ok, err := c.ScriptExists(ctx, r.scripts.provision.sha).Result(); err != nil || ok[0] {
				t.Fatalf("salted script already loaded (%v, %v)", ok, err)
			}
			key := lottery.StockKey{Activity: 1}
			if err := r.Provision(ctx, key, 3, 0); err != nil {
				t.Fatalf("Provision = %v", err)
			}
			before := r.Stats().RoundTrips
			if _, err := r.Reserve(ctx, key); err != nil {
				t.Fatalf("Reserve = %v", err)
			}
			x, err := r.Reserve(ctx, key)
			if err != nil {
				t.Fatalf("second Reserve = %v", err)
			}
			if mode == ModeLua && r.Stats().RoundTrips-before != 3 {
				t.Errorf("two reservations took %d round trips, want 3 (NOSCRIPT, EVAL, EVALSHA)", r.Stats().RoundTrips-before)
			}
			if err := r.Release(ctx, x); err != nil {
				t.Fatalf("Release = %v", err)
			}
			if left, err := r.Left(ctx, key); err != nil || left != 2 {
				t.Fatalf("Left = %d, %v; want 2", left, err)
			}
		})
	}
}
