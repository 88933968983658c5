package wasm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Defaults of HostConfig.
const (
	DefaultMaxModuleBytes = 1 << 20
	DefaultMaxMemoryPages = 16 // 1 MiB
	DefaultFuel           = 10_000_000
	DefaultInitFuel       = 1_000_000_000
	DefaultDeadline       = time.Second
	DefaultKeepVersions   = 5
)

// HostConfig configures a Host. The zero value is valid: every zero field
// takes its default.
type HostConfig struct {
	// DataDir holds wazero's compilation cache and, without a Store, the
	// modules (a FileStore on it). Empty keeps everything in memory
	// (nothing survives Close).
	DataDir string
	// Store is where modules persist (default: a FileStore on DataDir). A
	// store shared by several hosts makes them serve the same versions:
	// each calls Sync (or runs Watch) to follow the others' changes.
	Store ModuleStore
	// RetryEvery is how often Sync retries loading a store version that
	// failed to load while the store does not change (default 10 s).
	RetryEvery time.Duration
	// MaxModuleBytes caps an upload's size (default 1 MiB).
	MaxModuleBytes int
	// MaxMemoryPages caps every instance's linear memory, in 64 KiB pages
	// (default 16, 1 MiB). A module whose memory starts above it is
	// rejected; memory.grow beyond it fails. Go guests need more (a Go
	// wasip1 module needs 48 pages, 3 MiB, to start its runtime; give it 64).
	MaxMemoryPages uint32
	// Fuel is the instruction budget of one call (default 10,000,000, which
	// stops the tightest infinite loop in about 0.4 ms on a current x86 core).
	Fuel int64
	// InitFuel is the budget of an instance's start function and
	// _initialize, run once per instance (default 1,000,000,000).
	InitFuel int64
	// Deadline is the backstop on one call's wall time (default 1 s): a
	// watchdog stops a call running longer at its next function entry or
	// loop head. Wall time also counts the time a goroutine waits for a CPU,
	// so under overload a tight deadline fails calls fuel would have let
	// finish (50 ms did, in a hot-reload test on 2 cores); fuel bounds what
	// a guest executes to about a millisecond, and the deadline only has to
	// catch what fuel does not count. Negative disables it.
	Deadline time.Duration
	// PoolSize is the number of instances per loaded module version
	// (default 2*GOMAXPROCS).
	PoolSize int
	// KeepVersions is how many versions of a module are kept for rollback,
	// the active one included (default 5).
	KeepVersions int
	// Logger receives what no caller can: failed instance replacements,
	// store versions that could not be loaded (at start or by Sync) and the
	// store's failures and recoveries (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock whose time the host gives modules with each input
	// (default time.Now).
	Now func() time.Time
}

func (c HostConfig) withDefaults() (HostConfig, error) {
	var errs []error
	if c.MaxModuleBytes < 0 || c.Fuel < 0 || c.InitFuel < 0 || c.PoolSize < 0 || c.KeepVersions < 0 {
		errs = append(errs, errors.New("wasm: HostConfig sizes, budgets and counts must not be negative"))
	}
	if c.MaxMemoryPages > 65536 {
		errs = append(errs, fmt.Errorf("wasm: MaxMemoryPages %d above the 65536 pages of a 32-bit memory", c.MaxMemoryPages))
	}
	if c.Fuel > 1<<60 || c.InitFuel > 1<<60 {
		errs = append(errs, errors.New("wasm: Fuel and InitFuel must be at most 2^60"))
	}
	if c.MaxModuleBytes == 0 {
		c.MaxModuleBytes = DefaultMaxModuleBytes
	}
	if c.MaxMemoryPages == 0 {
		c.MaxMemoryPages = DefaultMaxMemoryPages
	}
	if c.Fuel == 0 {
		c.Fuel = DefaultFuel
	}
	if c.InitFuel == 0 {
		c.InitFuel = DefaultInitFuel
	}
	if c.Deadline == 0 {
		c.Deadline = DefaultDeadline
	}
	if c.PoolSize == 0 {
		c.PoolSize = 2 * runtime.GOMAXPROCS(0)
	}
	if c.KeepVersions == 0 {
		c.KeepVersions = DefaultKeepVersions
	}
	if c.RetryEvery <= 0 {
		c.RetryEvery = DefaultRetryEvery
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, errors.Join(errs...)
}

// Host runs rule and draw modules: one wazero runtime, a registry of modules
// with their versions, a fixed pool of instances per loaded version, and the
// limits every call runs under. It is safe for concurrent use; Draw and
// Decide never wait for Upload, Rollback or each other beyond an idle
// instance.
type Host struct {
	cfg    HostConfig
	log    *slog.Logger
	rt     wazero.Runtime
	cache  wazero.CompilationCache
	modCfg wazero.ModuleConfig
	limits limits
	store  ModuleStore
	native lottery.NativeDrawer
	bg     context.Context // wazero calls never see a caller's context values

	admin sync.Mutex // serialises Upload, Rollback, Sync and Close
	mu    sync.Mutex // guards every module's history
	mods  atomic.Pointer[map[string]*module]
	gen   atomic.Int64 // the store generation applied; written under admin

	// failMu guards what Sync reports: the failures by module name, the
	// time of the last failed load, and the store's error.
	failMu        sync.Mutex
	failures      map[string]LoadFailure
	lastTry       time.Time
	storeErr      error
	storeErrSince time.Time
	loadFailures  atomic.Uint64
	storeErrors   atomic.Uint64

	epoch  atomic.Int64 // watchdog ticks
	liveMu sync.Mutex
	live   map[*version]struct{} // loaded and draining versions, for the watchdog

	closed atomic.Bool
	stop   chan struct{}
	wg     sync.WaitGroup // the watchdog and draining versions
}

var _ lottery.Drawer = (*Host)(nil)

// NewHost starts a host: the runtime with its compilation cache (under
// DataDir), the WASI host functions, the built-in draw modules, and the
// active version of every module in the store. A stored module that does
// not load (a corrupt file, a lowered limit) is logged, reported by
// Failures and left without an active version; a store that cannot be read
// (a corrupt index, a database down) is an error.
func NewHost(cfg HostConfig) (*Host, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	st := cfg.Store
	if st == nil {
		if st, err = NewFileStore(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	ctx := context.Background()
	recs, gen, err := st.Index(ctx)
	if err != nil {
		return nil, fmt.Errorf("wasm: reading the module store: %w", err)
	}
	var cache wazero.CompilationCache
	if cfg.DataDir != "" {
		if cache, err = wazero.NewCompilationCacheWithDir(filepath.Join(cfg.DataDir, "cache")); err != nil {
			return nil, fmt.Errorf("wasm: compilation cache: %w", err)
		}
	} else {
		cache = wazero.NewCompilationCache()
	}
	rc := wazero.NewRuntimeConfigCompiler().
		WithCoreFeatures(api.CoreFeaturesV2).
		WithMemoryLimitPages(cfg.MaxMemoryPages).
		WithCompilationCache(cache).
		WithCloseOnContextDone(false)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		_ = cache.Close(ctx)
		return nil, fmt.Errorf("wasm: WASI: %w", err)
	}
	h := &Host{
		cfg:   cfg,
		log:   cfg.Logger,
		rt:    rt,
		cache: cache,
		// No file system, sockets, arguments or environment; stdin empty,
		// stdout and stderr discarded; wazero's deterministic clocks (a
		// fixed epoch advancing 1 ms per reading), a no-op sleep and a
		// fixed-seed random source. Modules get time and randomness from
		// their input.
		// The host calls _initialize itself, under InitFuel.
		modCfg: wazero.NewModuleConfig().WithName("").WithStartFunctions(),
		limits: limits{
			maxBytes: cfg.MaxModuleBytes,
			maxPages: cfg.MaxMemoryPages,
			wasi:     wasiFunctions(rt.Module(wasiModule)),
		},
		store:    st,
		bg:       ctx,
		live:     make(map[*version]struct{}),
		failures: make(map[string]LoadFailure),
		stop:     make(chan struct{}),
	}
	h.mods.Store(&map[string]*module{})
	if err := h.registerBuiltins(); err != nil {
		_ = h.Close(ctx)
		return nil, err
	}
	h.applyIndex(ctx, recs)
	h.gen.Store(gen)
	if cfg.Deadline > 0 {
		h.wg.Add(1)
		go h.watch()
	}
	return h, nil
}

// Close stops the host: new calls fail with ErrUnavailable, in-flight calls
// finish (the deadline bounds them), then every instance, the runtime and
// the compilation cache are closed. Modules stay persisted. If ctx ends
// first, Close returns its error and leaves the runtime open.
func (h *Host) Close(ctx context.Context) error {
	h.admin.Lock()
	defer h.admin.Unlock()
	if h.closed.Swap(true) {
		return nil
	}
	close(h.stop)
	for _, m := range *h.mods.Load() {
		if v := m.active.Swap(nil); v != nil {
			h.retire(v)
		}
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("wasm: closing the host: %w", ctx.Err())
	}
	return errors.Join(h.rt.Close(h.bg), h.cache.Close(h.bg))
}
