package wasm

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/flashlottery/lottery/sdk/wasmgen"
)

// TestClusterSync runs two hosts on one store, each following it with
// Watch as an edge does: an upload and a rollback on one serve on the other
// within a second (measured), and a version one host cannot load (over its
// size cap) leaves that host serving the previous version and reporting it
// until the store names a version it can load.
func TestClusterSync(t *testing.T) {
	st, err := NewFileStore("")
	if err != nil {
		t.Fatal(err)
	}
	a := newHost(t, HostConfig{Store: st, DataDir: t.TempDir()})
	small := len(variant(lottery.ModeTotal, 1)) + 64
	b := newHost(t, HostConfig{Store: st, DataDir: t.TempDir(), MaxModuleBytes: small, RetryEvery: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	for _, h := range []*Host{a, b} {
		go func() { h.Watch(ctx, 200*time.Millisecond); done <- struct{}{} }() // stopped below
	}
	defer func() { cancel(); <-done; <-done }()

	const name = "shared/draw"
	s := strategy(lottery.ModeTotal, name, 3)
	serves := func(h *Host, want Version) func() bool {
		return func() bool {
			res, err := h.Draw(context.Background(), drawReq(s, 7))
			return err == nil && res.Module == want.ID()
		}
	}
	v1, err := a.Upload(context.Background(), name, abi.KindDraw, variant(lottery.ModeTotal, 1))
	if err != nil {
		t.Fatal(err)
	}
	took := within(t, time.Second, serves(b, v1))
	t.Logf("an upload on host a serves on host b after %s", took)
	v2, err := b.Upload(context.Background(), name, abi.KindDraw, variant(lottery.ModeTotal, 2))
	if err != nil {
		t.Fatal(err)
	}
	took = within(t, time.Second, serves(a, v2))
	t.Logf("an upload on host b serves on host a after %s", took)
	if _, err := a.Rollback(context.Background(), name, v1.SHA256[:8]); err != nil {
		t.Fatal(err)
	}
	took = within(t, time.Second, serves(b, v1))
	t.Logf("a rollback on host a serves on host b after %s", took)
	if got := len(b.List()); got != 4 { // two built-ins, v1 and v2
		t.Fatalf("host b lists %d versions: %+v", got, b.List())
	}

	// Too big for b: a uploads it, b keeps v1 and says so.
	big := wasmgen.AppendCustomSection(variant(lottery.ModeTotal, 3), "pad", make([]byte, 128))
	v3, err := a.Upload(context.Background(), name, abi.KindDraw, big)
	if err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, func() bool { return len(b.Failures()) == 1 })
	f := b.Failures()[0]
	if f.Module != name || f.SHA256 != v3.SHA256 || f.Serving != v1.ID() || !strings.Contains(f.Err, "above the cap") {
		t.Fatalf("host b reports %+v", f)
	}
	if !serves(b, v1)() || !serves(a, v3)() {
		t.Fatal("host b must keep serving v1 while host a serves v3")
	}
	if st := b.Stats(); st.Failing != 1 || st.LoadFailures == 0 || st.StoreErr != nil {
		t.Fatalf("host b stats: %+v", st)
	}
	n := b.Stats().LoadFailures
	time.Sleep(300 * time.Millisecond)
	if b.Stats().LoadFailures <= n {
		t.Fatalf("host b did not retry the failed version (RetryEvery 50ms): %d failures", b.Stats().LoadFailures)
	}
	if len(a.Failures()) != 0 {
		t.Fatalf("host a reports %+v", a.Failures())
	}
	// Rolling back to a version b can load clears its failure.
	if _, err := a.Rollback(context.Background(), name, v2.SHA256); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, func() bool { return serves(b, v2)() && len(b.Failures()) == 0 })
}

// TestSyncStoreDown: a store that stops answering fails Sync, is reported
// by Stats, and leaves every module serving.
func TestSyncStoreDown(t *testing.T) {
	st, err := NewFileStore("")
	if err != nil {
		t.Fatal(err)
	}
	fs := &flakyStore{FileStore: st}
	h := newHost(t, HostConfig{Store: fs, DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	v, err := h.Upload(ctx, "d", abi.KindDraw, variant(lottery.ModeSingle, 1))
	if err != nil {
		t.Fatal(err)
	}
	fs.down = true
	if err := h.Sync(ctx); err == nil {
		t.Fatal("Sync on a store down succeeded")
	}
	if s := h.Stats(); s.StoreErr == nil || s.StoreErrors != 1 {
		t.Fatalf("stats: %+v", s)
	}
	if _, err := h.Upload(ctx, "d", abi.KindDraw, variant(lottery.ModeSingle, 2)); !errors.Is(err, lottery.ErrUnavailable) {
		t.Fatalf("upload on a store down: %v, want ErrUnavailable", err)
	}
	if res, err := h.Draw(ctx, drawReq(strategy(lottery.ModeSingle, "d", 2), 1)); err != nil || res.Module != v.ID() {
		t.Fatalf("draw with the store down: %+v, %v", res, err)
	}
	fs.down = false
	if err := h.Sync(ctx); err != nil || h.Stats().StoreErr != nil {
		t.Fatalf("Sync after the store returned: %v, %+v", err, h.Stats())
	}
}

type flakyStore struct {
	*FileStore
	down bool
}

var errDown = errors.New("store down")

func (f *flakyStore) Generation(ctx context.Context) (int64, error) {
	if f.down {
		return 0, errDown
	}
	return f.FileStore.Generation(ctx)
}

func (f *flakyStore) Update(ctx context.Context, name string, blob []byte, fn func(*StoredModule) (StoredModule, error)) (StoredModule, int64, error) {
	if f.down {
		return StoredModule{}, 0, errDown
	}
	return f.FileStore.Update(ctx, name, blob, fn)
}

// within polls cond until it holds and returns how long that took, failing
// the test after limit.
func within(t *testing.T, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	t0 := time.Now()
	for !cond() {
		if time.Since(t0) > limit {
			t.Fatalf("not within %s", limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(t0)
}
