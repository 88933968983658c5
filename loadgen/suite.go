package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// SuiteConfig describes `lottery benchsuite`: the bare handler and the draw
// endpoint of several edge profiles, measured with the same generator in
// one run.
type SuiteConfig struct {
	// Bin is the lottery binary to start as the server.
	Bin string
	// ServerCPU is the core the server runs on (taskset); the generator
	// should itself run on another (the Makefile starts it under taskset).
	ServerCPU string
	// Requests per measured run of the bare handler and the flash sales;
	// AllWinRequests for the all-win scenarios; Concurrency connections.
	Requests, AllWinRequests, Concurrency int
	// Rounds is how many times each paired scenario alternates its two
	// variants (native and Wasm), each going first in every other round;
	// default 10.
	Rounds int
	// ReloadDuration is how long the hot-reload scenario draws; its ten
	// pushes are spread over it (default 20s).
	ReloadDuration time.Duration
	// EdgeConfig is YAML appended to every edge's config (e.g. other
	// shards). It must not set what a profile sets (stock for the Redis
	// profiles, orders for the MariaDB one): choose profiles with Profiles.
	EdgeConfig string
	// Profiles names the edge profiles to run (default all): embedded,
	// embedded-1x1, redis, mariadb, mariadb-1x1, modules.
	Profiles []string
	// Getenv reads the services' addresses (default os.Getenv).
	Getenv func(string) string
	Log    io.Writer
}

func (c *SuiteConfig) defaults() error {
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	if c.Rounds <= 0 {
		c.Rounds = 10
	}
	if c.ReloadDuration <= 0 {
		c.ReloadDuration = 20 * time.Second
	}
	if c.Requests <= 0 || c.AllWinRequests <= 0 || c.Concurrency <= 0 {
		return errors.New("benchsuite: requests, all-win requests and concurrency must be positive")
	}
	for _, p := range c.Profiles {
		if !slices.Contains(profileNames, p) {
			return fmt.Errorf("benchsuite: unknown profile %q (have %s)", p, strings.Join(profileNames, ", "))
		}
	}
	return nil
}

// Scenario is one row of the report: a measured run, or one that did not
// run and why.
type Scenario struct {
	Name    string
	Result  Result
	Ratio   float64 // RPS / bare RPS
	Verify  *Report
	Comment string
	// Notes are measured facts beside the table (Redis round trips per draw).
	Notes []string
	// Skipped says why the scenario did not run (a service not configured,
	// or a failure), when it did not.
	Skipped string
	// RoundRatios are, for the second variant of a paired scenario, its
	// req/s over the first variant's in each round: the two ran back to
	// back, so a burst of other work on the machine shifts few of them.
	RoundRatios []float64
}

// Target is a goal the suite checks, with what it measured.
type Target struct {
	What, Measured string
	Met            bool
	// Skipped says why it could not be checked.
	Skipped string
}

// ProfileRun is an edge profile as the suite ran it.
type ProfileRun struct {
	Name, Desc string
	Skipped    string
}

// Suite is what one run of the suite measured.
type Suite struct {
	Started            time.Time
	LoadStart, LoadEnd string // /proc/loadavg
	Concurrency        int
	Warmup             int
	Profiles           []ProfileRun
	Scenarios          []Scenario
	Targets            []Target
	Reload             *ReloadReport
	// Leftovers lists what the run could not clean up on the services.
	Leftovers []string
	// Failed lists the profiles that failed while running.
	Failed []string
}

// RunSuite measures the bare handler, then starts each edge profile in turn
// on the same core, warms it up and measures its scenarios, then the bare
// handler once more (how much the machine drifted during the run), and
// checks the targets. A profile whose services are not configured is
// skipped and says so; a profile that fails is reported and the others
// still run (the caller decides what a failure means).
func RunSuite(ctx context.Context, cfg SuiteConfig) (*Suite, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Suite{Started: time.Now().UTC(), LoadStart: loadavg(), Concurrency: cfg.Concurrency, Warmup: cfg.Requests / 20}
	bare, err := measureBare(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.Scenarios = append(s.Scenarios, Scenario{Name: "bare fasthttp handler", Result: bare, Ratio: 1})

	run := newRunID()
	for _, p := range profiles(cfg, run) {
		if len(cfg.Profiles) > 0 && !slices.Contains(cfg.Profiles, p.name) {
			continue
		}
		pr := ProfileRun{Name: p.label, Desc: p.desc, Skipped: p.skip}
		if p.skip == "" {
			rows, leftovers, err := runProfile(ctx, cfg, s, p)
			s.Scenarios = append(s.Scenarios, rows...)
			s.Leftovers = append(s.Leftovers, leftovers...)
			if err != nil {
				if ctx.Err() != nil {
					return nil, err
				}
				fmt.Fprintf(cfg.Log, "profile %s FAILED: %v\n", p.label, err)
				s.Failed = append(s.Failed, fmt.Sprintf("%s: %v", p.label, err))
				pr.Skipped = "failed: " + err.Error()
			}
		} else {
			fmt.Fprintf(cfg.Log, "profile %s skipped: %s\n", p.label, p.skip)
		}
		for _, sc := range p.scenarios { // rows for what did not run
			if !slices.ContainsFunc(s.Scenarios, func(x Scenario) bool { return strings.HasPrefix(x.Name, sc.name) }) {
				s.Scenarios = append(s.Scenarios, Scenario{Name: sc.name, Skipped: pr.Skipped})
			}
		}
		s.Profiles = append(s.Profiles, pr)
	}

	again, err := measureBare(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.Scenarios = append(s.Scenarios, Scenario{Name: "bare fasthttp handler, again at the end", Result: again, Comment: "the same baseline after every profile: how much the machine drifted during the run"})
	for i := range s.Scenarios {
		if s.Scenarios[i].Skipped == "" {
			s.Scenarios[i].Ratio = s.Scenarios[i].Result.RPS / bare.RPS
		}
	}
	s.Targets = checkTargets(s)
	s.LoadEnd = loadavg()
	return s, nil
}

// measureBare starts the bare handler on the server core (GOMAXPROCS=1),
// warms it up and measures it.
func measureBare(ctx context.Context, cfg SuiteConfig) (Result, error) {
	addr, err := freeAddr()
	if err != nil {
		return Result{}, err
	}
	stop, err := startPinned(ctx, cfg, []string{"GOMAXPROCS=1"}, addr, "bare")
	if err != nil {
		return Result{}, err
	}
	defer stop()
	base := "http://" + addr
	fmt.Fprintf(cfg.Log, "bare handler on %s (cpu %s)\n", addr, cfg.ServerCPU)
	_, _ = Run(ctx, Config{URL: base, Requests: cfg.Requests / 10, Concurrency: cfg.Concurrency, Users: 1000, ActivityID: 1})
	bare, err := Run(ctx, Config{URL: base, Requests: cfg.Requests, Concurrency: cfg.Concurrency, Users: cfg.Requests, ActivityID: 1})
	if err != nil {
		return Result{}, err
	}
	if bare.Errors > 0 {
		return Result{}, fmt.Errorf("bare handler: %d errors: %s", bare.Errors, bare.FirstError)
	}
	fmt.Fprint(cfg.Log, bare.Format())
	return bare, nil
}

// runProfile starts the profile's edge, warms it up with all-win draws
// (their invoices delivered before anything is measured), runs its
// scenarios, and cleans up after it.
func runProfile(ctx context.Context, cfg SuiteConfig, s *Suite, p profile) (rows []Scenario, leftovers []string, err error) {
	defer func() {
		for _, c := range p.cleanup {
			if note := c(context.WithoutCancel(ctx)); note != "" {
				leftovers = append(leftovers, note)
			}
		}
	}()
	fmt.Fprintf(cfg.Log, "\n== profile %s: %s\n", p.label, p.desc)
	e, err := startEdge(ctx, cfg, "demo: false\n"+p.config+cfg.EdgeConfig)
	if err != nil {
		return nil, leftovers, err
	}
	defer e.stop()
	const warmID = 9
	if err := e.deploy(activity{id: warmID, stock: 1_000_000, awards: 1_000_000, mode: 2, rate: 1}); err != nil {
		return nil, leftovers, err
	}
	_, _ = Run(ctx, Config{URL: e.base, Requests: s.Warmup, Concurrency: cfg.Concurrency, Users: s.Warmup, UserPrefix: "w", ActivityID: warmID})
	// Let the warm-up's invoices be delivered so its background work does
	// not run during the measured runs.
	if _, err := e.verify(ctx, warmID); err != nil {
		return nil, leftovers, err
	}
	for _, sc := range p.scenarios {
		out, err := sc.run(ctx, cfg, e, s)
		for i := range out {
			fmt.Fprintf(cfg.Log, "%s:\n%s", out[i].Name, out[i].Result.Format())
			if out[i].Verify != nil {
				fmt.Fprint(cfg.Log, out[i].Verify.Format())
			}
			for _, n := range out[i].Notes {
				fmt.Fprintf(cfg.Log, "note: %s\n", n)
			}
		}
		rows = append(rows, out...)
		if err != nil {
			return rows, leftovers, fmt.Errorf("%s: %w", sc.name, err)
		}
	}
	return rows, leftovers, nil
}

// newRunID names this run's Redis keys and MariaDB databases, so runs
// never share state on the services.
func newRunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return time.Now().UTC().Format("20060102t150405") + "_" + hex.EncodeToString(b)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
