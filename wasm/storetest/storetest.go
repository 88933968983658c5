// Package storetest is the contract suite of wasm.ModuleStore: every store
// (the FileStore on a directory and in memory, the MySQL store through the
// server's adapter) runs it.
package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/wasm"
)

// Run runs the contract against stores that open returns, a fresh (empty)
// one per subtest.
func Run(t *testing.T, open func(t *testing.T) wasm.ModuleStore) {
	t.Run("Empty", func(t *testing.T) { empty(t, open(t)) })
	t.Run("UpdateAndIndex", func(t *testing.T) { updateAndIndex(t, open(t)) })
	t.Run("FailedUpdateChangesNothing", func(t *testing.T) { failedUpdate(t, open(t)) })
	t.Run("DroppedBytesCollected", func(t *testing.T) { collected(t, open(t)) })
	t.Run("ConcurrentUpdates", func(t *testing.T) { concurrent(t, open(t)) })
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func blob(n int) []byte { return fmt.Appendf(nil, "\x00asm module bytes %d", n) }

func ver(b []byte, at time.Time) wasm.StoredVersion {
	return wasm.StoredVersion{SHA256: sum(b), Size: len(b), Uploaded: at.UTC().Truncate(time.Millisecond)}
}

func empty(t *testing.T, s wasm.ModuleStore) {
	ctx := t.Context()
	gen, err := s.Generation(ctx)
	if err != nil || gen != 0 {
		t.Fatalf("Generation of an empty store: %d, %v", gen, err)
	}
	mods, gen, err := s.Index(ctx)
	if err != nil || len(mods) != 0 || gen != 0 {
		t.Fatalf("Index of an empty store: %v, %d, %v", mods, gen, err)
	}
	if _, err := s.Blob(ctx, sum([]byte("nothing"))); !errors.Is(err, lottery.ErrNotFound) {
		t.Fatalf("Blob of a missing sum: %v, want ErrNotFound", err)
	}
}

func updateAndIndex(t *testing.T, s wasm.ModuleStore) {
	ctx := t.Context()
	b1, b2 := blob(1), blob(2)
	now := time.Now()
	rec, gen1, err := s.Update(ctx, "a/draw", b1, func(cur *wasm.StoredModule) (wasm.StoredModule, error) {
		if cur != nil {
			t.Errorf("a new module's current record: %+v", cur)
		}
		return wasm.StoredModule{Kind: "draw", Active: sum(b1), Versions: []wasm.StoredVersion{ver(b1, now)}}, nil
	})
	if err != nil || rec.Name != "a/draw" || rec.Active != sum(b1) || gen1 < 1 {
		t.Fatalf("first Update: %+v, %d, %v", rec, gen1, err)
	}
	if got, err := s.Blob(ctx, sum(b1)); err != nil || string(got) != string(b1) {
		t.Fatalf("Blob after Update: %q, %v", got, err)
	}
	_, gen2, err := s.Update(ctx, "a/draw", b2, func(cur *wasm.StoredModule) (wasm.StoredModule, error) {
		if cur == nil || cur.Kind != "draw" || cur.Active != sum(b1) || len(cur.Versions) != 1 || !cur.Versions[0].Uploaded.Equal(ver(b1, now).Uploaded) {
			t.Errorf("current record: %+v", cur)
			return wasm.StoredModule{}, errors.New("bad current record")
		}
		next := *cur
		next.Versions = append([]wasm.StoredVersion{ver(b2, now.Add(time.Second))}, cur.Versions...)
		next.Active = sum(b2)
		return next, nil
	})
	if err != nil || gen2 <= gen1 {
		t.Fatalf("second Update: gen %d after %d, %v", gen2, gen1, err)
	}
	if _, _, err := s.Update(ctx, "b", nil, func(*wasm.StoredModule) (wasm.StoredModule, error) {
		return wasm.StoredModule{Kind: "rule"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	gen, err := s.Generation(ctx)
	if err != nil || gen <= gen2 {
		t.Fatalf("Generation after three updates: %d (second %d), %v", gen, gen2, err)
	}
	mods, igen, err := s.Index(ctx)
	if err != nil || igen != gen {
		t.Fatalf("Index: generation %d, want %d, %v", igen, gen, err)
	}
	if len(mods) != 2 || mods[0].Name != "a/draw" || mods[1].Name != "b" {
		t.Fatalf("Index: %+v, want a/draw and b by name", mods)
	}
	a := mods[0]
	if a.Kind != "draw" || a.Active != sum(b2) || len(a.Versions) != 2 || a.Versions[0].SHA256 != sum(b2) || a.Versions[1] != ver(b1, now) {
		t.Fatalf("Index: a/draw is %+v", a)
	}
	if b := mods[1]; b.Kind != "rule" || b.Active != "" || len(b.Versions) != 0 {
		t.Fatalf("Index: b is %+v", b)
	}
}

func failedUpdate(t *testing.T, s wasm.ModuleStore) {
	ctx := t.Context()
	b1 := blob(1)
	_, gen, err := s.Update(ctx, "m", b1, func(*wasm.StoredModule) (wasm.StoredModule, error) {
		return wasm.StoredModule{Kind: "draw", Active: sum(b1), Versions: []wasm.StoredVersion{ver(b1, time.Now())}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	refuse := fmt.Errorf("%w: refused", lottery.ErrInvalid)
	b2 := blob(2)
	if _, _, err := s.Update(ctx, "m", b2, func(*wasm.StoredModule) (wasm.StoredModule, error) {
		return wasm.StoredModule{}, refuse
	}); !errors.Is(err, lottery.ErrInvalid) {
		t.Fatalf("Update whose fn fails: %v, want its error", err)
	}
	if g, err := s.Generation(ctx); err != nil || g != gen {
		t.Fatalf("generation after a failed update: %d, want %d (%v)", g, gen, err)
	}
	mods, _, err := s.Index(ctx)
	if err != nil || len(mods) != 1 || mods[0].Active != sum(b1) {
		t.Fatalf("Index after a failed update: %+v, %v", mods, err)
	}
}

func collected(t *testing.T, s wasm.ModuleStore) {
	ctx := t.Context()
	shared, only := blob(1), blob(2)
	now := time.Now()
	for _, name := range []string{"x", "y"} {
		if _, _, err := s.Update(ctx, name, shared, func(*wasm.StoredModule) (wasm.StoredModule, error) {
			return wasm.StoredModule{Kind: "draw", Active: sum(shared), Versions: []wasm.StoredVersion{ver(shared, now)}}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Update(ctx, "x", only, func(cur *wasm.StoredModule) (wasm.StoredModule, error) {
		next := *cur
		next.Versions = append([]wasm.StoredVersion{ver(only, now)}, cur.Versions...)
		next.Active = sum(only)
		return next, nil
	}); err != nil {
		t.Fatal(err)
	}
	// x drops both versions' predecessor: shared stays (y keeps it).
	if _, _, err := s.Update(ctx, "x", nil, func(cur *wasm.StoredModule) (wasm.StoredModule, error) {
		next := *cur
		next.Versions = next.Versions[:1]
		return next, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Blob(ctx, sum(shared)); err != nil {
		t.Fatalf("bytes another module keeps: %v", err)
	}
	// x is rolled onto shared's place again and drops only.
	if _, _, err := s.Update(ctx, "x", shared, func(*wasm.StoredModule) (wasm.StoredModule, error) {
		return wasm.StoredModule{Kind: "draw", Active: sum(shared), Versions: []wasm.StoredVersion{ver(shared, now)}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Blob(ctx, sum(only)); !errors.Is(err, lottery.ErrNotFound) {
		t.Fatalf("bytes no module keeps: %v, want ErrNotFound", err)
	}
}

func concurrent(t *testing.T, s wasm.ModuleStore) {
	ctx := t.Context()
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			b := blob(100 + i)
			if _, _, err := s.Update(ctx, "c", b, func(cur *wasm.StoredModule) (wasm.StoredModule, error) {
				next := wasm.StoredModule{Kind: "draw"}
				if cur != nil {
					next = *cur
				}
				next.Versions = append([]wasm.StoredVersion{ver(b, time.Now())}, next.Versions...)
				next.Active = sum(b)
				return next, nil
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	mods, gen, err := s.Index(ctx)
	if err != nil || len(mods) != 1 {
		t.Fatalf("Index: %+v, %v", mods, err)
	}
	if len(mods[0].Versions) != n || gen != n {
		t.Fatalf("after %d concurrent updates: %d versions, generation %d: an update was lost", n, len(mods[0].Versions), gen)
	}
	var sums []string
	for _, v := range mods[0].Versions {
		sums = append(sums, v.SHA256)
	}
	if mods[0].Active != sums[0] || len(slices.Compact(slices.Sorted(slices.Values(sums)))) != n {
		t.Fatalf("versions %v, active %s", sums, mods[0].Active)
	}
}
