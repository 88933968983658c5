package wasm

import "time"

// watch is the deadline backstop. Fuel is the primary limit; the watchdog
// covers what fuel does not count, such as time spent inside a WASI call.
// It ticks every Deadline/4 and advances an epoch; a call records the epoch
// it started in, and a call still running five ticks later (between
// Deadline and Deadline plus a tick) gets its instance's stop global set
// (see instrument), so it traps at its next function entry or loop head and
// the instance is replaced. A call pays two atomic stores and an
// uncontended mutex for this, instead of the cost of wazero's
// WithCloseOnContextDone (about 1 µs a call and loops about 20 times slower
// in v1.12).
func (h *Host) watch() {
	defer h.wg.Done()
	tick := h.cfg.Deadline / 4
	if tick < time.Millisecond {
		tick = time.Millisecond
	}
	const lateTicks = 5
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		now := h.epoch.Add(1)
		h.liveMu.Lock()
		for v := range h.live {
			v.mu.Lock()
			for inst := range v.live {
				if b := inst.busy.Load(); b != 0 && now-(b-1) >= lateTicks {
					inst.mu.Lock()
					if inst.busy.Load() == b && !inst.stopped {
						inst.stop.Set(stopValue)
						inst.stopped = true
					}
					inst.mu.Unlock()
				}
			}
			v.mu.Unlock()
		}
		h.liveMu.Unlock()
	}
}
