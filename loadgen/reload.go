package loadgen

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/wasmgen"
	"github.com/flashlottery/lottery/wasm/builtin"
)

// reloadPushes is how many new versions the hot-reload scenario pushes.
const reloadPushes = 10

// ReloadReport is what the hot-reload scenario measured: a long Wasm rule
// draw during which a new version of the draw module is pushed over HTTP
// ten times.
type ReloadReport struct {
	Module   string
	Initial  string // the version serving when the load started
	Requests int
	// Failed counts draws without a 200 answer (transport errors included).
	Failed int
	Pushes []Push
}

// Push is one upload of the hot-reload scenario. Durations after the
// upload's answer are -1 when the event never happened.
type Push struct {
	N       int
	Version string // name@sha12, from the upload's answer
	// Took is the upload from request to answer (validate, instrument,
	// compile, warm, canary, swap).
	Took time.Duration
	// Answered is when the answer came, from the start of the load.
	Answered time.Duration
	// Listed is from the answer until GET /api/v1/modules listed the
	// version active.
	Listed time.Duration
	// Served is from the answer until the first draw answer naming the
	// version arrived; 0 when one arrived before the upload's own answer
	// (the swap precedes the answer).
	Served time.Duration
	// Stale counts answers naming an older version to draws sent after
	// the upload's answer.
	Stale int
	Err   string
}

// Stale sums Push.Stale.
func (r *ReloadReport) Stale() int {
	n := 0
	for _, p := range r.Pushes {
		n += p.Stale
	}
	return n
}

// SlowestServed is the longest Push.Served, or -1 if a version never served.
func (r *ReloadReport) SlowestServed() time.Duration {
	var m time.Duration
	for _, p := range r.Pushes {
		if p.Served < 0 {
			return -1
		}
		m = max(m, p.Served)
	}
	return m
}

// moduleBuild returns the built-in single-mode draw module with a custom
// section naming build n: the same code under another sha256, which is
// what makes an upload a new version. Execution never reads custom sections.
func moduleBuild(n int) []byte {
	bin := builtin.Module(lottery.ModeSingle)
	return wasmgen.AppendCustomSection(bin, "lottery-bench-build", []byte("build "+strconv.Itoa(n)))
}

// hotReload draws through a compiled tree and an uploaded draw module
// (bench/draw, built-in code) for cfg.ReloadDuration, without pause, while
// another goroutine pushes ten new builds of the module over HTTP, evenly
// spread; after each it polls GET /api/v1/modules until the build is
// listed active. The trace of every draw answer then tells when each build
// first served and whether any draw sent after an upload's answer was
// answered by an older build.
func hotReload(name string) scenario {
	return scenario{name: name, run: func(ctx context.Context, cfg SuiteConfig, e *edge, s *Suite) ([]Scenario, error) {
		const module = "bench/draw"
		ids := [4]int64{301, 302, 303, 304}
		initial, err := e.upload(module, "draw", moduleBuild(0))
		if err != nil {
			return nil, err
		}
		// Enough stock and users that no draw runs out: every answer is a
		// win or a lose, and anything else is a failure.
		bound := int(cfg.ReloadDuration.Seconds()*40_000) + 1000
		for _, id := range ids {
			if err := e.deploy(activity{id: id, stock: int64(bound), awards: int64(bound), mode: 1, rate: 0.1, module: module}); err != nil {
				return nil, err
			}
		}
		tree := "bench-reload"
		if err := e.registerTree(benchTree(tree, ids), "wasm"); err != nil {
			return nil, err
		}

		every := cfg.ReloadDuration / (reloadPushes + 2)
		type pushed struct {
			Push
			at time.Time
		}
		pushes := make(chan []pushed, 1)
		start := time.Now()
		go func() { // owned: the scenario reads its result below
			var out []pushed
			defer func() { pushes <- out }()
			for i := 1; i <= reloadPushes; i++ {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(start.Add(time.Duration(i) * every))):
				}
				t0 := time.Now()
				v, err := e.upload(module, "draw", moduleBuild(i))
				p := pushed{Push: Push{N: i, Version: v, Took: time.Since(t0), Listed: -1}, at: time.Now()}
				if err != nil {
					p.Err = err.Error()
				}
				for err == nil && time.Since(p.at) < time.Second {
					if active, err := e.activeVersion(module); err == nil && active == v {
						p.Listed = time.Since(p.at)
						break
					}
					time.Sleep(time.Millisecond)
				}
				out = append(out, p)
			}
		}()
		res, err := Run(ctx, Config{URL: e.base, Path: "/api/v1/draw/rule", Requests: bound, Concurrency: cfg.Concurrency, Users: bound,
			UserPrefix: "hot-", Body: ruleBody(tree), Duration: cfg.ReloadDuration, Trace: true})
		done := <-pushes
		if err != nil {
			return nil, err
		}
		rep := &ReloadReport{Module: module, Initial: initial, Requests: res.Requests, Failed: res.Failed()}
		for _, p := range done {
			p.Answered = p.at.Sub(res.Started)
			rep.Pushes = append(rep.Pushes, p.Push)
		}
		analyseReload(res.Trace, initial, rep.Pushes)
		s.Reload = rep
		vrep, err := e.verify(ctx, ids[:]...)
		if err != nil {
			return nil, err
		}
		sc := Scenario{Name: name, Result: res, Verify: vrep,
			Comment: fmt.Sprintf("Wasm rule draw (compiled tree, uploaded draw module %s, single-item 10%%) for %s without pause while %d new builds of the module are pushed over HTTP (table below)", module, cfg.ReloadDuration, reloadPushes)}
		sc.Notes = append(sc.Notes, fmt.Sprintf("%d failed draws of %d, %d answers from an older build after an upload's answer, slowest build first served %s after its upload's answer",
			rep.Failed, rep.Requests, rep.Stale(), fmtServed(rep.SlowestServed())))
		if len(done) < reloadPushes {
			return []Scenario{sc}, fmt.Errorf("hot reload: only %d of %d pushes happened", len(done), reloadPushes)
		}
		return []Scenario{sc}, nil
	}}
}

// analyseReload sets each push's Served and Stale from the trace. initial is
// the version serving before the first push; versions are ordered by push.
func analyseReload(trace []Sample, initial string, pushes []Push) {
	order := map[string]int{initial: 0}
	for i, p := range pushes {
		if p.Version != "" {
			order[p.Version] = i + 1
		}
	}
	for i := range pushes {
		p := &pushes[i]
		p.Served, p.Stale = -1, 0
		if p.Version == "" {
			continue
		}
		first := time.Duration(-1)
		for _, s := range trace {
			if s.Module == p.Version && (first < 0 || s.End < first) {
				first = s.End
			}
			if s.Start > p.Answered {
				if k, ok := order[s.Module]; ok && k < i+1 {
					p.Stale++
				}
			}
		}
		if first >= 0 {
			p.Served = max(first-p.Answered, 0)
		}
	}
}

func fmtServed(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(10 * time.Microsecond).String()
}
