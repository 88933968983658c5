package wasm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// version is one loaded module version: its compiled code and a fixed pool
// of instances.
//
// The pool is a buffered channel of exactly size tokens. A token is an idle
// instance, or nil for an empty slot that its receiver must fill. A call
// takes a token and gives it back; a trapped instance is closed and its
// token travels with the goroutine that instantiates its replacement, so
// the pool never shrinks. Retiring a version takes all size tokens (which
// waits for in-flight calls and replacements), closes them and then closes
// the channel, which sends a caller still waiting on it back to the
// module's new active version.
type version struct {
	h        *Host
	info     Version
	id       string // name@sha12, recorded with each draw
	entry    string // abi.ExportDraw or abi.ExportDecide
	compiled wazero.CompiledModule
	tokens   chan *instance
	size     int

	mu   sync.Mutex
	live map[*instance]struct{} // for the watchdog

	replaced atomic.Int64 // instances discarded after a failed call
}

// instance is one module instance with its function handles cached: an
// ExportedFunction lookup costs microseconds and kilobytes, a call through
// a cached handle tens of nanoseconds.
type instance struct {
	v     *version
	mod   api.Module
	entry api.Function
	fuel  api.MutableGlobal
	stop  api.MutableGlobal
	mem   api.Memory
	ptr   uint32 // input buffer
	cap   uint32
	stack [2]uint64
	draw  abi.DrawInput // reused: Awards has room for abi.MaxAwards

	// mu orders the caller's and the watchdog's writes of the globals.
	mu sync.Mutex
	// stopped is set by the watchdog with the stop global; guarded by mu.
	stopped bool
	// busy is the watchdog epoch at the start of the running call plus one,
	// or 0 while the instance is idle.
	busy atomic.Int64
}

// stopValue is what the watchdog stores into a late call's stop global: the
// largest i64, which no fuel value reaches.
const stopValue uint64 = 1<<63 - 1

func newVersion(h *Host, info Version, compiled wazero.CompiledModule) *version {
	v := &version{
		h:        h,
		info:     info,
		id:       info.ID(),
		entry:    abi.ExportDraw,
		compiled: compiled,
		tokens:   make(chan *instance, h.cfg.PoolSize),
		size:     h.cfg.PoolSize,
		live:     make(map[*instance]struct{}),
	}
	if info.Kind == abi.KindRule {
		v.entry = abi.ExportDecide
	}
	return v
}

// instantiate creates an instance, runs its start function and _initialize
// under InitFuel, and checks the ABI version and the input buffer.
func (v *version) instantiate() (*instance, error) {
	h := v.h
	mod, err := h.rt.InstantiateModule(h.bg, v.compiled, h.modCfg)
	if err != nil {
		return nil, fmt.Errorf("instantiating (the start function has a budget of %d): %s", h.cfg.InitFuel, firstLine(err))
	}
	inst := &instance{
		v:     v,
		mod:   mod,
		entry: mod.ExportedFunction(v.entry),
		mem:   mod.ExportedMemory(abi.ExportMemory),
	}
	inst.draw.Awards = make([]abi.Award, 0, abi.MaxAwards)
	g, ok := mod.ExportedGlobal(FuelExport).(api.MutableGlobal)
	stop, ok2 := mod.ExportedGlobal(StopExport).(api.MutableGlobal)
	if !ok || !ok2 || inst.entry == nil || inst.mem == nil {
		_ = mod.Close(h.bg)
		return nil, errors.New("instrumented module lost an export") // a bug, not the module's fault
	}
	inst.fuel, inst.stop = g, stop
	var ver, ptr, size uint64
	if init := mod.ExportedFunction(startFunction); init != nil {
		if err = inst.call(init, h.cfg.InitFuel); err != nil {
			err = fmt.Errorf("%s: %w", startFunction, err)
		}
	}
	if err == nil {
		ver, err = inst.callNoArgs(abi.ExportVersion)
	}
	if err == nil && int32(ver) != abi.Version {
		err = fmt.Errorf("module implements ABI version %d; this host implements version %d", int32(ver), abi.Version)
	}
	if err == nil {
		ptr, err = inst.callNoArgs(abi.ExportInputPtr)
	}
	if err == nil {
		size, err = inst.callNoArgs(abi.ExportInputCap)
	}
	if err == nil {
		inst.ptr, inst.cap = uint32(ptr), uint32(size)
		switch memSize := uint64(inst.mem.Size()); {
		case inst.cap < abi.MaxInputSize:
			err = fmt.Errorf("%s is %d bytes, below the ABI's %d", abi.ExportInputCap, inst.cap, abi.MaxInputSize)
		case uint64(inst.ptr)+uint64(inst.cap) > memSize:
			err = fmt.Errorf("the input buffer [%d, %d) lies outside the %d-byte memory", inst.ptr, uint64(inst.ptr)+uint64(inst.cap), memSize)
		}
	}
	if err != nil {
		_ = mod.Close(h.bg)
		return nil, err
	}
	v.mu.Lock()
	v.live[inst] = struct{}{}
	v.mu.Unlock()
	return inst, nil
}

func (inst *instance) callNoArgs(name string) (uint64, error) {
	fn := inst.mod.ExportedFunction(name)
	if fn == nil {
		return 0, fmt.Errorf("missing export %q", name)
	}
	if err := inst.call(fn, inst.v.h.cfg.Fuel); err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return inst.stack[0], nil
}

// call runs fn with inst.stack under a fuel budget and returns the reason
// of a failure: a trap, running out of fuel or time, or an exit. After a
// failure the instance must be discarded.
func (inst *instance) call(fn api.Function, budget int64) error {
	h := inst.v.h
	inst.mu.Lock()
	if inst.stopped { // the watchdog fired as the previous call ended
		inst.stop.Set(0)
		inst.stopped = false
	}
	inst.fuel.Set(uint64(budget))
	inst.busy.Store(h.epoch.Load() + 1)
	inst.mu.Unlock()
	err := fn.CallWithStack(h.bg, inst.stack[:])
	inst.busy.Store(0)
	if err == nil {
		return nil
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("module exited with code %d", exit.ExitCode())
	}
	inst.mu.Lock()
	left, stopped := int64(inst.fuel.Get()), inst.stopped
	inst.mu.Unlock()
	switch {
	case stopped:
		return fmt.Errorf("%w of %v", errDeadline, h.cfg.Deadline)
	case left < 0:
		return fmt.Errorf("%w (a budget of %d)", errFuel, budget)
	}
	return errors.New(firstLine(err))
}

// acquire takes an instance of the active version of m, waiting for one if
// all are busy.
func (h *Host) acquire(ctx context.Context, m *module) (*version, *instance, error) {
	for {
		v := m.active.Load()
		if v == nil {
			if h.closed.Load() {
				return nil, nil, errClosed
			}
			return nil, nil, errors.New("no version is loaded")
		}
		var inst *instance
		var ok bool
		select {
		case inst, ok = <-v.tokens:
		default:
			select {
			case inst, ok = <-v.tokens:
			case <-ctx.Done():
				return v, nil, fmt.Errorf("waiting for an instance: %w", ctx.Err())
			}
		}
		if !ok {
			continue // retired under us: the module has a new active version
		}
		if inst == nil {
			var err error
			if inst, err = v.instantiate(); err != nil {
				v.tokens <- nil
				return v, nil, fmt.Errorf("replacing an instance: %w", err)
			}
		}
		return v, inst, nil
	}
}

// release gives an instance back to its pool.
func (v *version) release(inst *instance) { v.tokens <- inst }

// discard closes a failed instance and replaces it in the background; the
// replacement goroutine holds the instance's token until it gives it back,
// so retiring the version waits for it.
func (v *version) discard(inst *instance) {
	v.replaced.Add(1)
	v.closeInstance(inst)
	go func() {
		fresh, err := v.instantiate()
		if err != nil {
			v.h.log.Warn("wasm: replacing a module instance failed; the next call retries",
				"module", v.id, "err", err)
			fresh = nil
		}
		v.tokens <- fresh
	}()
}

// closeInstance closes inst and takes it off the watchdog's list.
func (v *version) closeInstance(inst *instance) {
	v.mu.Lock()
	delete(v.live, inst)
	v.mu.Unlock()
	_ = inst.mod.Close(v.h.bg)
}

// fill warms the pool.
func (v *version) fill() error {
	for range v.size {
		inst, err := v.instantiate()
		if err != nil {
			return err
		}
		v.tokens <- inst
	}
	return nil
}

// drain takes every token, waiting for in-flight calls and replacements,
// closes the instances and the channel, and releases the compiled code.
func (v *version) drain() {
	for range v.size {
		if inst := <-v.tokens; inst != nil {
			v.closeInstance(inst)
		}
	}
	close(v.tokens)
	_ = v.compiled.Close(v.h.bg)
}

// closeNow closes a version that never served: all its tokens are in hand.
func (v *version) closeNow() {
	for len(v.tokens) < v.size {
		v.tokens <- nil
	}
	v.drain()
}

// retire drains and closes a version that is no longer active, in the
// background; Close waits for it.
func (h *Host) retire(v *version) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		v.drain()
		h.liveMu.Lock()
		delete(h.live, v)
		h.liveMu.Unlock()
	}()
}
