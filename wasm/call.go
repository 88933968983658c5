package wasm

import (
	"context"
	"errors"
	"fmt"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
)

// Draw implements lottery.Drawer. It runs the draw module named by
// req.Strategy.Module, or lottery.NativeDrawer when the name is empty, with
// the host's time and req.Seed. The result's Module is the module's
// name@sha12. A module that is missing, traps (the instance is replaced),
// runs out of fuel or time, or returns an error code gives a *CallError
// wrapping ErrDrawUnavailable; a request the ABI cannot carry (more than
// abi.MaxAwards awards, rates out of range) gives lottery.ErrInvalid.
func (h *Host) Draw(ctx context.Context, req lottery.DrawRequest) (lottery.DrawResult, error) {
	none := lottery.DrawResult{Index: abi.NoAward}
	s := req.Strategy
	if s == nil {
		return none, fmt.Errorf("wasm: draw request without a strategy: %w", lottery.ErrInvalid)
	}
	if s.Module == "" {
		return h.native.Draw(ctx, req)
	}
	if len(req.InStock) != len(s.Details) || len(s.Details) > abi.MaxAwards {
		return none, fmt.Errorf("wasm: draw request with %d awards and %d stock flags (at most %d awards): %w",
			len(s.Details), len(req.InStock), abi.MaxAwards, lottery.ErrInvalid)
	}
	m, err := h.module(s.Module, abi.KindDraw)
	if err != nil {
		return none, err
	}
	v, inst, err := h.acquire(ctx, m)
	if err != nil {
		return none, callError(abi.KindDraw, m.name, v, err)
	}
	in := &inst.draw
	at := req.Time
	if at.IsZero() {
		at = h.cfg.Now()
	}
	in.Mode, in.Seed, in.TimeMs = abi.Mode(s.Mode), req.Seed, at.UnixMilli()
	in.Awards = in.Awards[:0]
	for i := range s.Details {
		rate := s.Details[i].Rate
		if rate < 0 || rate > abi.RateScale {
			v.release(inst)
			return none, fmt.Errorf("wasm: award %d has rate %d: %w", i, rate, lottery.ErrInvalid)
		}
		in.Awards = append(in.Awards, abi.Award{Rate: uint32(rate), InStock: req.InStock[i]})
	}
	r, err := h.drawOn(inst)
	if err := v.finish(inst, err); err != nil {
		return none, err
	}
	idx, err := abi.DrawResult(int32(r), len(s.Details))
	if err != nil {
		return none, callError(abi.KindDraw, m.name, v, err)
	}
	return lottery.DrawResult{Index: idx, Module: v.id}, nil
}

// Decide runs the rule module name over in and returns the activity it
// picks, or matched false. A zero in.TimeMs is set to the host's time. A
// module failure gives a *CallError wrapping ErrRuleUnavailable; an input
// the ABI rejects gives lottery.ErrInvalid.
func (h *Host) Decide(ctx context.Context, name string, in abi.RuleInput) (activityID int64, matched bool, err error) {
	m, err := h.module(name, abi.KindRule)
	if err != nil {
		return 0, false, err
	}
	if in.TimeMs == 0 {
		in.TimeMs = h.cfg.Now().UnixMilli()
	}
	v, inst, err := h.acquire(ctx, m)
	if err != nil {
		return 0, false, callError(abi.KindRule, m.name, v, err)
	}
	r, err := h.decideOn(inst, &in)
	if err := v.finish(inst, err); err != nil {
		return 0, false, err
	}
	id, ok, err := abi.DecideResult(int64(r))
	if err != nil {
		return 0, false, callError(abi.KindRule, m.name, v, err)
	}
	return id, ok, nil
}

// module returns the registered module name of the given kind.
func (h *Host) module(name string, kind abi.Kind) (*module, error) {
	m := h.lookup(name)
	switch {
	case h.closed.Load():
		return nil, &CallError{Kind: kind, Module: name, Err: errClosed}
	case m == nil:
		return nil, &CallError{Kind: kind, Module: name, Err: errors.New("no such module")}
	case m.kind != kind:
		return nil, &CallError{Kind: kind, Module: name, Err: fmt.Errorf("it is a %v module", m.kind)}
	}
	return m, nil
}

func callError(kind abi.Kind, name string, v *version, err error) error {
	e := &CallError{Kind: kind, Module: name, Err: err}
	if v != nil {
		e.Version = v.info.SHA256[:12]
	}
	return e
}

// finish ends a call on inst that returned err: the instance goes back to
// the pool, unless the call failed (an error other than a rejected input,
// lottery.ErrInvalid), which discards it. It returns err as Draw and Decide
// report it: a rejected input as it is, a failure as a *CallError.
func (v *version) finish(inst *instance, err error) error {
	if err != nil && !errors.Is(err, lottery.ErrInvalid) {
		v.discard(inst)
		return callError(v.info.Kind, v.info.Name, v, err)
	}
	v.release(inst)
	return err
}

// drawOn encodes inst.draw straight into the instance's input buffer and
// calls draw. An input the ABI rejects is a lottery.ErrInvalid error and
// leaves the instance usable; any other error means it must be discarded.
func (h *Host) drawOn(inst *instance) (uint64, error) {
	b, err := inst.draw.AppendBinary(inst.input())
	if err != nil {
		return 0, fmt.Errorf("wasm: draw input: %w: %w", err, lottery.ErrInvalid)
	}
	return inst.callEntry(len(b), h.cfg.Fuel)
}

// decideOn is drawOn for rule modules.
func (h *Host) decideOn(inst *instance, in *abi.RuleInput) (uint64, error) {
	b, err := in.AppendBinary(inst.input())
	if err != nil {
		return 0, fmt.Errorf("wasm: rule input: %w: %w", err, lottery.ErrInvalid)
	}
	return inst.callEntry(len(b), h.cfg.Fuel)
}

// input returns the instance's input buffer, empty, with its capacity.
func (inst *instance) input() []byte {
	buf, _ := inst.mem.Read(inst.ptr, inst.cap)
	return buf[:0:len(buf)]
}

// callEntry calls the entry point on the n input bytes at the start of the
// input buffer and returns its result.
func (inst *instance) callEntry(n int, budget int64) (uint64, error) {
	inst.stack[0], inst.stack[1] = uint64(inst.ptr), uint64(n)
	if err := inst.call(inst.entry, budget); err != nil {
		return 0, err
	}
	return inst.stack[0], nil
}
