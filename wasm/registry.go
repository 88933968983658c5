package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/flashlottery/lottery/wasm/builtin"
)

// BuiltinPrefix starts the names of the built-in modules; uploads may not
// use it.
const BuiltinPrefix = "builtin/"

// Version describes one kept version of a module.
type Version struct {
	Name     string
	SHA256   string // hex; the version's identity
	Kind     abi.Kind
	Size     int // bytes as uploaded
	Uploaded time.Time
	Active   bool // serving now
	Builtin  bool // embedded in the binary, not persisted
}

// ID returns name@ followed by the first 12 hex digits of the sha256: what
// DrawResult.Module records with each order.
func (v Version) ID() string { return v.Name + "@" + v.SHA256[:min(12, len(v.SHA256))] }

// MarshalJSON writes the kind as "rule" or "draw" and adds the ID as
// "version".
func (v Version) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name     string    `json:"name"`
		Version  string    `json:"version"`
		SHA256   string    `json:"sha256"`
		Kind     string    `json:"kind"`
		Size     int       `json:"size"`
		Uploaded time.Time `json:"uploaded"`
		Active   bool      `json:"active"`
		Builtin  bool      `json:"builtin,omitempty"`
	}{v.Name, v.ID(), v.SHA256, v.Kind.String(), v.Size, v.Uploaded, v.Active, v.Builtin})
}

// module is a name with its kind, its kept versions and the active one.
type module struct {
	name    string
	kind    abi.Kind
	builtin bool
	active  atomic.Pointer[version]
	history []Version // newest upload first, Active unset; guarded by Host.mu
}

// lookup returns the module registered under name, or nil.
func (h *Host) lookup(name string) *module { return (*h.mods.Load())[name] }

// addModule registers a new module; the caller holds h.admin.
func (h *Host) addModule(m *module) {
	next := maps.Clone(*h.mods.Load())
	next[m.name] = m
	h.mods.Store(&next)
}

// checkName accepts 1 to 128 bytes of letters, digits and . _ - /, not
// starting or ending with a slash, without ".." and not starting with
// BuiltinPrefix.
func checkName(name string) error {
	if name == "" || len(name) > 128 {
		return rejectf("module name must be 1 to 128 bytes")
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-/", c) >= 0) {
			return rejectf("module name %q: only letters, digits and . _ - / are allowed", name)
		}
	}
	if strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "..") || strings.Contains(name, "//") {
		return rejectf("module name %q is not a clean path", name)
	}
	if strings.HasPrefix(name, BuiltinPrefix) {
		return rejectf("module names starting with %q are reserved for built-in modules", BuiltinPrefix)
	}
	return nil
}

// adminReady returns why an administrative change cannot start: the host
// is closed, or ctx has ended. The caller holds h.admin.
func (h *Host) adminReady(ctx context.Context) error {
	if h.closed.Load() {
		return fmt.Errorf("wasm: %w: %w", errClosed, lottery.ErrUnavailable)
	}
	return ctx.Err()
}

// commit makes v, which the store recorded in rec at generation gen, the
// active version of m. The caller holds h.admin.
func (h *Host) commit(m *module, v *version, rec StoredModule, gen int64) {
	h.setHistory(m, rec)
	h.activate(m, v)
	h.clearFailure(m.name)
	h.applied(gen)
}

// Upload validates, instruments and compiles bin as version of the module
// name of the given kind, warms its pool, runs a canary call, records it in
// the store as the module's active version and makes it active here; the
// previous version drains and closes in the background. Hosts sharing the
// store load it at their next Sync. Uploading the active version again
// changes nothing. A module keeps the kind of its first upload. A rejected
// module (a *RejectError wrapping lottery.ErrInvalid, saying why) or a
// storage failure (ErrUnavailable) changes nothing: the old version keeps
// serving, here and on every host.
func (h *Host) Upload(ctx context.Context, name string, kind abi.Kind, bin []byte) (Version, error) {
	if err := checkName(name); err != nil {
		return Version{}, err
	}
	if abi.Exports(kind) == nil {
		return Version{}, rejectf("unknown module kind %v", kind)
	}
	h.admin.Lock()
	defer h.admin.Unlock()
	if err := h.adminReady(ctx); err != nil {
		return Version{}, err
	}
	m := h.lookup(name)
	if m != nil && m.kind != kind {
		return Version{}, rejectf("module %q is a %v module; a %v module needs another name", name, m.kind, kind)
	}
	sum := sha256Hex(bin)
	if m != nil {
		if v := m.active.Load(); v != nil && v.info.SHA256 == sum {
			return h.describe(m, v.info), nil
		}
	}
	info := Version{Name: name, SHA256: sum, Kind: kind, Size: len(bin), Uploaded: time.Now().UTC()}
	v, err := h.load(info, bin)
	if err != nil {
		return Version{}, err
	}
	rec, gen, err := h.store.Update(ctx, name, bin, func(cur *StoredModule) (StoredModule, error) {
		next := StoredModule{Name: name, Kind: kind.String()}
		if cur != nil {
			if cur.Kind != kind.String() {
				return next, rejectf("module %q is a %s module; a %v module needs another name", name, cur.Kind, kind)
			}
			next.Versions = slices.DeleteFunc(slices.Clone(cur.Versions), func(x StoredVersion) bool { return x.SHA256 == sum })
		}
		next.Versions = append([]StoredVersion{{SHA256: sum, Size: len(bin), Uploaded: info.Uploaded}}, next.Versions...)
		next.Versions = prune(next.Versions, sum, h.cfg.KeepVersions)
		next.Active = sum
		return next, nil
	})
	if err != nil {
		v.closeNow()
		return Version{}, storeErr(err)
	}
	if m == nil {
		m = &module{name: name, kind: kind}
		h.addModule(m)
	}
	h.commit(m, v, rec, gen)
	return h.describe(m, info), nil
}

// Rollback makes a kept version of the module active again, here and (at
// their next Sync) on every host sharing the store: sha is its full sha256
// or a prefix of at least 8 hex digits. Its bytes are reloaded and go
// through the same checks, warm-up and canary as an upload (the compilation
// cache makes this fast) before the store records the change.
func (h *Host) Rollback(ctx context.Context, name, sha string) (Version, error) {
	h.admin.Lock()
	defer h.admin.Unlock()
	if err := h.adminReady(ctx); err != nil {
		return Version{}, err
	}
	m := h.lookup(name)
	if m == nil {
		return Version{}, fmt.Errorf("wasm: no module named %q: %w", name, lottery.ErrNotFound)
	}
	if m.builtin {
		return Version{}, rejectf("built-in module %q has a single version", name)
	}
	h.mu.Lock()
	var match []Version
	if len(sha) >= 8 {
		prefix := strings.ToLower(sha)
		for _, x := range m.history {
			if strings.HasPrefix(x.SHA256, prefix) {
				match = append(match, x)
			}
		}
	}
	h.mu.Unlock()
	switch {
	case len(match) == 0:
		return Version{}, fmt.Errorf("wasm: module %q keeps no version %q: %w", name, sha, lottery.ErrNotFound)
	case len(match) > 1:
		return Version{}, rejectf("version prefix %q of module %q is ambiguous", sha, name)
	}
	info := match[0]
	if v := m.active.Load(); v != nil && v.info.SHA256 == info.SHA256 {
		return h.describe(m, info), nil
	}
	bin, err := h.store.Blob(ctx, info.SHA256)
	if err != nil {
		return Version{}, storeErr(err)
	}
	v, err := h.load(info, bin)
	if err != nil {
		return Version{}, err
	}
	rec, gen, err := h.store.Update(ctx, name, nil, func(cur *StoredModule) (StoredModule, error) {
		if cur == nil || !slices.ContainsFunc(cur.Versions, func(x StoredVersion) bool { return x.SHA256 == info.SHA256 }) {
			return StoredModule{}, fmt.Errorf("wasm: module %q keeps no version %s any more: %w", name, info.ID(), lottery.ErrNotFound)
		}
		next := cloneModule(*cur)
		next.Active = info.SHA256
		return next, nil
	})
	if err != nil {
		v.closeNow()
		return Version{}, storeErr(err)
	}
	h.commit(m, v, rec, gen)
	return h.describe(m, info), nil
}

// storeErr passes a refusal (ErrInvalid, ErrNotFound) or a context error
// through and makes any other store failure ErrUnavailable.
func storeErr(err error) error {
	if errors.Is(err, lottery.ErrInvalid) || errors.Is(err, lottery.ErrNotFound) || errors.Is(err, lottery.ErrUnavailable) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", err, lottery.ErrUnavailable)
}

// List returns every kept version of every module, by name and then newest
// upload first; Active marks the ones serving.
func (h *Host) List() []Version {
	mods := *h.mods.Load()
	names := slices.Sorted(maps.Keys(mods))
	var out []Version
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, name := range names {
		m := mods[name]
		for _, x := range m.history {
			out = append(out, h.describe(m, x))
		}
	}
	return out
}

// Active returns the version of the module name that serves now.
func (h *Host) Active(name string) (Version, bool) {
	m := h.lookup(name)
	if m == nil {
		return Version{}, false
	}
	v := m.active.Load()
	if v == nil {
		return Version{}, false
	}
	return h.describe(m, v.info), true
}

func (h *Host) describe(m *module, x Version) Version {
	x.Builtin = m.builtin
	if v := m.active.Load(); v != nil && v.info.SHA256 == x.SHA256 {
		x.Active = true
	}
	return x
}

// activate swaps v in as m's active version and retires the previous one.
func (h *Host) activate(m *module, v *version) {
	h.liveMu.Lock()
	h.live[v] = struct{}{}
	h.liveMu.Unlock()
	if old := m.active.Swap(v); old != nil {
		h.retire(old)
	}
}

// load turns bytes into a warmed, canary-tested version that is not yet
// active. Every failure is a *RejectError.
func (h *Host) load(info Version, bin []byte) (*version, error) {
	mod, err := h.limits.decode(info.Kind, bin)
	if err != nil {
		return nil, err
	}
	if err := instrument(mod, h.cfg.InitFuel); err != nil {
		return nil, rejectf("cannot meter the module: %v", err)
	}
	metered, err := encode(mod)
	if err != nil {
		return nil, rejectf("cannot meter the module: %v", err)
	}
	compiled, err := h.rt.CompileModule(h.bg, metered)
	if err != nil {
		return nil, rejectf("invalid module: %s", firstLine(err))
	}
	v := newVersion(h, info, compiled)
	if err := v.fill(); err != nil {
		v.closeNow()
		return nil, rejectf("%v", err)
	}
	if err := h.canary(v); err != nil {
		v.closeNow()
		return nil, rejectf("canary call failed: %v", err)
	}
	return v, nil
}

// canary calls a fresh instance with fixed inputs: a draw module draws over
// two awards in each mode with seed 0, a rule module decides over no
// attributes. Error codes are fine (a module may support one mode only); a
// trap or a result outside the ABI is not.
func (h *Host) canary(v *version) error {
	inst := <-v.tokens
	defer func() { v.tokens <- inst }()
	broken := func() {
		v.closeInstance(inst)
		inst = nil
	}
	if v.info.Kind == abi.KindRule {
		var in abi.RuleInput
		r, err := h.decideOn(inst, &in)
		if err != nil {
			broken()
			return fmt.Errorf("decide over no attributes: %w", err)
		}
		if _, _, err := abi.DecideResult(int64(r)); err != nil && abi.CodeOf(err) == 0 {
			return fmt.Errorf("decide over no attributes: %w", err)
		}
		return nil
	}
	for _, mode := range []abi.Mode{abi.ModeSingle, abi.ModeTotal} {
		in := &inst.draw
		in.Mode, in.Seed, in.TimeMs = mode, 0, 0
		in.Awards = append(in.Awards[:0], abi.Award{Rate: 100_000, InStock: true}, abi.Award{Rate: 200_000, InStock: true})
		r, err := h.drawOn(inst)
		if err != nil {
			broken()
			return fmt.Errorf("draw in mode %d: %w", mode, err)
		}
		if _, err := abi.DrawResult(int32(r), 2); errors.Is(err, abi.ErrBadResult) {
			return fmt.Errorf("draw in mode %d: %w", mode, err)
		}
	}
	return nil
}

// prune drops the oldest versions beyond keep, never the active one.
func prune(vs []StoredVersion, active string, keep int) []StoredVersion {
	for len(vs) > keep {
		i := len(vs) - 1
		if vs[i].SHA256 == active {
			i--
		}
		vs = slices.Delete(vs, i, i+1)
	}
	return vs
}

// setHistory replaces m's kept versions with the record's.
func (h *Host) setHistory(m *module, rec StoredModule) {
	hist := make([]Version, 0, len(rec.Versions))
	for _, sv := range rec.Versions {
		hist = append(hist, Version{Name: m.name, SHA256: sv.SHA256, Kind: m.kind, Size: sv.Size, Uploaded: sv.Uploaded})
	}
	h.mu.Lock()
	m.history = hist
	h.mu.Unlock()
}

// registerBuiltins loads the built-in draw modules of wasm/builtin.
func (h *Host) registerBuiltins() error {
	for _, mode := range []lottery.Mode{lottery.ModeSingle, lottery.ModeTotal} {
		name, bin := builtin.Name(mode), builtin.Module(mode)
		if name == "" || bin == nil {
			continue
		}
		info := Version{Name: name, SHA256: sha256Hex(bin), Kind: abi.KindDraw, Size: len(bin)}
		v, err := h.load(info, bin)
		if err != nil {
			return fmt.Errorf("wasm: built-in module %s: %w", name, err)
		}
		m := &module{name: name, kind: abi.KindDraw, builtin: true, history: []Version{info}}
		h.addModule(m)
		h.activate(m, v)
	}
	return nil
}
