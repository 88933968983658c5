package wasm

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
)

// TestHotReloadUnderLoad pushes ten versions of a draw module while
// goroutines draw from it without pause: not one call may fail, and each
// version must serve within 100 ms of its Upload returning.
func TestHotReloadUnderLoad(t *testing.T) {
	h := newHost(t, HostConfig{PoolSize: 4})
	const name = "hot/draw"
	if _, err := h.Upload(ctx, name, abi.KindDraw, variant(lottery.ModeTotal, 0)); err != nil {
		t.Fatal(err)
	}
	s := strategy(lottery.ModeTotal, name, 6)

	var (
		mu        sync.Mutex
		firstSeen = map[string]time.Time{}
		calls     atomic.Int64
		failures  atomic.Int64
		firstErr  atomic.Value
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seed := uint64(w) << 32
			for {
				select {
				case <-stop:
					return
				default:
				}
				seed++
				res, err := h.Draw(ctx, drawReq(s, seed))
				calls.Add(1)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				now := time.Now()
				mu.Lock()
				if _, ok := firstSeen[res.Module]; !ok {
					firstSeen[res.Module] = now
				}
				mu.Unlock()
			}
		}()
	}

	returned := map[string]time.Time{}
	for i := 1; i <= 10; i++ {
		time.Sleep(20 * time.Millisecond)
		v, err := h.Upload(ctx, name, abi.KindDraw, variant(lottery.ModeTotal, i))
		if err != nil {
			t.Fatal(err)
		}
		returned[v.ID()] = time.Now()
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()

	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d calls failed; the first: %v", n, calls.Load(), firstErr.Load())
	}
	for id, at := range returned {
		seen, ok := firstSeen[id]
		switch {
		case !ok:
			t.Errorf("%s never served", id)
		case seen.Sub(at) > 100*time.Millisecond:
			t.Errorf("%s first served %v after its Upload returned", id, seen.Sub(at))
		}
	}
	t.Logf("%d calls over 10 reloads, none failed", calls.Load())
}

// TestConcurrency runs draws, decisions, trapping calls, uploads, rollbacks
// and List at once (run it with -race), then closes the host under load.
func TestConcurrency(t *testing.T) {
	h := newHost(t, HostConfig{PoolSize: 3})
	v0, err := h.Upload(ctx, "c/draw", abi.KindDraw, variant(lottery.ModeSingle, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, up := range []struct{ name, file string }{{"c/trap", "trap.wasm"}, {"c/rule", "rule.wasm"}} {
		kind := abi.KindDraw
		if up.file == "rule.wasm" {
			kind = abi.KindRule
		}
		if _, err := h.Upload(ctx, up.name, kind, corpus(t, up.file)); err != nil {
			t.Fatal(err)
		}
	}
	n := 300
	if testing.Short() {
		n = 50
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	run := func(f func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := f(i); err != nil {
					report(err)
					return
				}
			}
		}()
	}
	for g := range 4 {
		run(func(i int) error {
			_, err := h.Draw(ctx, drawReq(strategy(lottery.ModeSingle, "c/draw", 5), uint64(g*n+i)))
			return err
		})
		run(func(i int) error {
			_, err := h.Draw(ctx, drawReq(strategy(lottery.ModeSingle, "c/trap", 2), uint64(i)))
			if i%2 == 1 {
				if !errors.Is(err, ErrDrawUnavailable) {
					return err
				}
				return nil
			}
			return err
		})
		run(func(i int) error {
			attrs := []abi.Attr{abi.IntAttr(abi.KeyUserAge, int64(i))}
			id, ok, err := h.Decide(ctx, "c/rule", abi.RuleInput{Attrs: attrs})
			if err == nil && (!ok || id != 100001) {
				return errors.New("wrong decision")
			}
			return err
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i < DefaultKeepVersions; i++ { // v0 stays kept
			if _, err := h.Upload(ctx, "c/draw", abi.KindDraw, variant(lottery.ModeSingle, i)); err != nil {
				report(err)
			}
			_ = h.List()
			if _, err := h.Rollback(ctx, "c/draw", v0.SHA256); err != nil {
				report(err)
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Close under load: calls either succeed or fail as unavailable.
	stop := make(chan struct{})
	var bad atomic.Value
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := h.Draw(ctx, drawReq(strategy(lottery.ModeSingle, "c/draw", 5), 1))
				if err != nil && !errors.Is(err, lottery.ErrUnavailable) {
					bad.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	time.Sleep(10 * time.Millisecond)
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if err := bad.Load(); err != nil {
		t.Fatal(err)
	}
}
