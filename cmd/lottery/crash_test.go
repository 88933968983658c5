package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flashlottery/lottery/configs"
	"github.com/flashlottery/lottery/loadgen"
)

// TestCrashDrill kills the edge with SIGKILL in the middle of a load, restarts
// it on the same data directory and checks that nothing was oversold, that
// every committed prize has its order, and that the invoices of orders
// committed before the crash are delivered (the compensation scan re-sends
// them).
func TestCrashDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("crash drill: builds and runs the binary")
	}
	ctx := t.Context()
	tmp := t.TempDir()
	bin := buildLottery(t)
	data := filepath.Join(tmp, "data")

	t0 := time.Now()
	first := startEdge(t, bin, data)
	t.Logf("first start, ready: %s", time.Since(t0).Round(time.Millisecond))

	// The first load, killed under it.
	cfg1 := loadgen.Config{URL: first.url, Requests: 40000, Concurrency: 32, Users: 20000, UserPrefix: "crash1-",
		ActivityID: configs.DemoActivityID, Timeout: 3 * time.Second}
	type runResult struct {
		res loadgen.Result
		err error
	}
	loadDone := make(chan runResult, 1)
	t0 = time.Now()
	go func() { // owned: the test reads loadDone
		res, err := loadgen.Run(ctx, cfg1)
		loadDone <- runResult{res, err}
	}()
	time.Sleep(300 * time.Millisecond)
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	killedAt := time.Since(t0)
	if code := first.wait(t, 10*time.Second); code != -1 {
		t.Errorf("killed edge exit code %d, want -1 (signal)", code)
	}
	r1 := <-loadDone
	if r1.err != nil {
		t.Fatalf("first load: %v", r1.err)
	}
	t.Logf("first load, killed after %s: %d requests in %s, errors %d, by outcome %v, by status %v",
		killedAt.Round(time.Millisecond), r1.res.Requests, r1.res.Duration.Round(time.Millisecond), r1.res.Errors, r1.res.ByOutcome, r1.res.ByStatus)
	if accepted(r1.res) == 0 {
		t.Errorf("no draw was accepted before the kill: the drill tested nothing")
	}
	if r1.res.Errors == 0 {
		t.Errorf("the first load saw no errors: was the edge killed?")
	}

	// Restart on the same data, with a fast compensation scan.
	conf := filepath.Join(tmp, "restart.yaml")
	if err := os.WriteFile(conf, []byte("demo: true\njobs: {compensateEvery: 200ms, staleAfter: 1s}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	second := startEdge(t, bin, data, "--config", conf)
	t.Logf("restart, ready: %s", time.Since(t0).Round(time.Millisecond))

	cfg2 := loadgen.Config{URL: second.url, Requests: 4000, Concurrency: 16, Users: 2000, UserPrefix: "crash2-",
		ActivityID: configs.DemoActivityID, Timeout: 3 * time.Second}
	r2, err := loadgen.Run(ctx, cfg2)
	if err != nil {
		t.Fatalf("second load: %v", err)
	}
	t.Logf("second load: %d requests in %s, errors %d, by outcome %v, by status %v",
		r2.Requests, r2.Duration.Round(time.Millisecond), r2.Errors, r2.ByOutcome, r2.ByStatus)
	if r2.Errors != 0 || r2.ByStatus[http.StatusInternalServerError] != 0 || r2.ByStatus[http.StatusServiceUnavailable] != 0 {
		t.Errorf("second load: errors %d (first %q), by status %v", r2.Errors, r2.FirstError, r2.ByStatus)
	}
	for oc, n := range r2.ByOutcome {
		if oc != "win" && oc != "lose" && oc != "sold_out" && oc != "limit_reached" {
			t.Errorf("second load: %d answers with outcome %q", n, oc)
		}
	}

	t0 = time.Now()
	rep, err := loadgen.Verify(ctx, second.url, drillToken, configs.DemoActivityID, 30*time.Second)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	t.Logf("verify after %s:\n%s", time.Since(t0).Round(time.Millisecond), rep.Format())
	for _, v := range rep.Violations {
		t.Errorf("violation: %s", v)
	}
	for _, line := range strings.Split(second.log.String(), "\n") {
		if strings.Contains(line, "compensation") || strings.Contains(line, "restore") {
			t.Logf("restarted edge: %s", line)
		}
	}
	// Every draw a client saw accepted is a take; a take can exist without its
	// answer only for a request in flight at the kill (at most one per
	// connection of the first load).
	acc := accepted(r1.res) + accepted(r2)
	switch {
	case rep.Accepted > rep.StockCount:
		t.Errorf("oversold: %d takes for stock %d", rep.Accepted, rep.StockCount)
	case rep.Accepted < acc:
		t.Errorf("%d takes stored but clients saw %d accepted draws: accepted draws were lost", rep.Accepted, acc)
	case rep.Accepted-acc > int64(cfg1.Concurrency):
		t.Errorf("%d takes stored, clients saw %d accepted draws: more than the %d requests in flight at the kill",
			rep.Accepted, acc, cfg1.Concurrency)
	}
	t.Logf("takes %d, accepted draws seen by clients %d (first %d, second %d), stock %d",
		rep.Accepted, acc, accepted(r1.res), accepted(r2), rep.StockCount)

	// A graceful stop exits 0.
	t0 = time.Now()
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := second.wait(t, 40*time.Second); code != 0 {
		t.Errorf("edge exit code after SIGTERM: %d, want 0", code)
	}
	t.Logf("graceful stop: %s", time.Since(t0).Round(time.Millisecond))
	if out := second.log.String(); strings.Contains(out, "panic") || strings.Contains(out, "DATA RACE") {
		t.Errorf("edge log shows a panic or a race:\n%s", tail(out, 60))
	}
}
