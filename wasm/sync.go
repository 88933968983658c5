package wasm

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flashlottery/lottery/sdk/abi"
)

// DefaultRetryEvery is HostConfig.RetryEvery's default.
const DefaultRetryEvery = 10 * time.Second

// LoadFailure is a module whose active version in the store this host
// could not load: it keeps serving the version it had (Serving, "" for
// none) until the store names another version or a retry succeeds.
type LoadFailure struct {
	Module  string    `json:"module"`
	SHA256  string    `json:"sha256"`  // the store's active version
	Serving string    `json:"serving"` // what this host serves instead (name@sha12), "" for nothing
	Err     string    `json:"error"`
	Since   time.Time `json:"since"` // the first failed attempt
}

// SyncStats describe the host's view of its module store.
type SyncStats struct {
	// Generation is the store generation the host has applied.
	Generation int64
	// LoadFailures counts attempts to load a store's active version that
	// failed (each retry counts).
	LoadFailures uint64
	// StoreErrors counts Sync calls the store failed.
	StoreErrors uint64
	// Failing is the number of modules in Failures.
	Failing int
	// StoreErr is the last store error, nil once a Sync succeeds again;
	// StoreErrSince is when the store started failing.
	StoreErr      error
	StoreErrSince time.Time
}

// Sync brings the host in line with its store: if the store's generation
// moved since the host last applied it (or a failed load is due for a
// retry), it reads the index and, for each module whose active version is
// not the one serving here, fetches the bytes and loads them through the
// checks, warm-up and canary of an upload before swapping them in. A
// version that does not load (its bytes are missing or corrupt, or it is
// over this host's limits) leaves the previous one serving and is reported
// by Failures and Stats until it loads or the store names another. Sync
// returns the store's error (also kept in Stats); load failures are not
// errors of Sync. It costs one Generation call when nothing changed.
func (h *Host) Sync(ctx context.Context) error {
	gen, err := h.store.Generation(ctx)
	if err != nil {
		h.storeFailed(err)
		return fmt.Errorf("wasm: module store: %w", err)
	}
	h.admin.Lock()
	defer h.admin.Unlock()
	if h.closed.Load() {
		return nil
	}
	if gen == h.gen.Load() && !h.retryDue() {
		h.storeOK()
		return nil
	}
	recs, gen, err := h.store.Index(ctx)
	if err != nil {
		h.storeFailed(err)
		return fmt.Errorf("wasm: module store: %w", err)
	}
	h.storeOK()
	h.applyIndex(ctx, recs)
	h.gen.Store(gen)
	return nil
}

// Watch calls Sync every period until ctx ends; store errors are logged
// once when they start and once when they end.
func (h *Host) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_ = h.Sync(ctx) // kept in Stats and logged by storeFailed
	}
}

// applied records that the host now has generation gen, when it follows
// the one it had (an upload or rollback of its own, with nothing else in
// between); otherwise the next Sync reads the index. The caller holds
// h.admin.
func (h *Host) applied(gen int64) {
	h.gen.CompareAndSwap(gen-1, gen)
}

// applyIndex registers the store's modules and loads each active version
// that is not serving here. The caller holds h.admin.
func (h *Host) applyIndex(ctx context.Context, recs []StoredModule) {
	now := h.cfg.Now()
	for _, rec := range recs {
		kind, err := abi.ParseKind(rec.Kind)
		if err == nil {
			err = checkName(rec.Name)
		}
		m := h.lookup(rec.Name)
		if err == nil && m != nil && m.kind != kind {
			err = rejectf("module %q is a %v module here and a %s module in the store", rec.Name, m.kind, rec.Kind)
		}
		if err != nil {
			h.failed(rec.Name, rec.Active, nil, err, now)
			continue
		}
		if m == nil {
			m = &module{name: rec.Name, kind: kind}
			h.addModule(m)
		}
		h.setHistory(m, rec)
		cur := m.active.Load()
		if rec.Active == "" || cur != nil && cur.info.SHA256 == rec.Active {
			h.clearFailure(rec.Name)
			continue
		}
		i := slices.IndexFunc(rec.Versions, func(x StoredVersion) bool { return x.SHA256 == rec.Active })
		info := Version{Name: rec.Name, SHA256: rec.Active, Kind: kind}
		if i >= 0 {
			info.Size, info.Uploaded = rec.Versions[i].Size, rec.Versions[i].Uploaded
		}
		bin, err := h.store.Blob(ctx, rec.Active)
		var v *version
		if err == nil {
			v, err = h.load(info, bin)
		}
		if err != nil {
			h.failed(rec.Name, rec.Active, cur, err, now)
			continue
		}
		h.activate(m, v)
		h.clearFailure(rec.Name)
		h.log.Info("wasm: module version loaded from the store", "module", info.ID(), "kind", kind.String())
	}
}

// failed records that the store's active version sum of module name did
// not load; the first failure of a version is logged.
func (h *Host) failed(name, sum string, serving *version, err error, now time.Time) {
	h.loadFailures.Add(1)
	f := LoadFailure{Module: name, SHA256: sum, Err: err.Error(), Since: now}
	if serving != nil {
		f.Serving = serving.id
	}
	h.failMu.Lock()
	old, ok := h.failures[name]
	if ok && old.SHA256 == sum {
		f.Since = old.Since
	}
	h.failures[name] = f
	h.lastTry = now
	h.failMu.Unlock()
	if !ok || old.SHA256 != sum {
		h.log.Error("wasm: a module version in the store did not load; the previous version keeps serving",
			"module", name, "sha256", sum, "serving", f.Serving, "err", err)
	}
}

func (h *Host) clearFailure(name string) {
	h.failMu.Lock()
	_, ok := h.failures[name]
	delete(h.failures, name)
	h.failMu.Unlock()
	if ok {
		h.log.Info("wasm: module serves the store's active version again", "module", name)
	}
}

// retryDue reports whether failed loads are waiting for a retry.
func (h *Host) retryDue() bool {
	h.failMu.Lock()
	defer h.failMu.Unlock()
	return len(h.failures) > 0 && h.cfg.Now().Sub(h.lastTry) >= h.cfg.RetryEvery
}

func (h *Host) storeFailed(err error) {
	h.storeErrors.Add(1)
	h.failMu.Lock()
	first := h.storeErr == nil
	if first {
		h.storeErrSince = h.cfg.Now()
	}
	h.storeErr = err
	h.failMu.Unlock()
	if first {
		h.log.Warn("wasm: the module store does not answer; modules keep their versions", "err", err)
	}
}

func (h *Host) storeOK() {
	h.failMu.Lock()
	was := h.storeErr
	h.storeErr = nil
	h.failMu.Unlock()
	if was != nil {
		h.log.Info("wasm: the module store answers again")
	}
}

// Failures returns the modules whose store version this host could not
// load, by name.
func (h *Host) Failures() []LoadFailure {
	h.failMu.Lock()
	defer h.failMu.Unlock()
	out := make([]LoadFailure, 0, len(h.failures))
	for _, f := range h.failures {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b LoadFailure) int { return strings.Compare(a.Module, b.Module) })
	return out
}

// Stats returns the host's view of its store.
func (h *Host) Stats() SyncStats {
	h.failMu.Lock()
	defer h.failMu.Unlock()
	return SyncStats{
		Generation:    h.gen.Load(),
		LoadFailures:  h.loadFailures.Load(),
		StoreErrors:   h.storeErrors.Load(),
		Failing:       len(h.failures),
		StoreErr:      h.storeErr,
		StoreErrSince: h.storeErrSince,
	}
}
