package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// SuiteConfig describes `lottery benchsuite`: the bare handler and the draw
// endpoint measured with the same generator in one run.
type SuiteConfig struct {
	// Bin is the lottery binary to start as the server.
	Bin string
	// ServerCPU is the core the server runs on (taskset); the generator
	// should itself run on another (the Makefile starts it under taskset).
	ServerCPU string
	// Requests per measured run of the bare handler and the flash sale;
	// AllWinRequests for the all-win scenario; Concurrency connections.
	Requests, AllWinRequests, Concurrency int
	// EdgeConfig is YAML appended to the edge's config (e.g. other shards).
	EdgeConfig string
	Log        io.Writer
}

// Scenario is one measured run.
type Scenario struct {
	Name    string
	Result  Result
	Ratio   float64 // RPS / bare RPS
	Verify  *Report
	Comment string
}

const suiteToken = "benchsuite-admin-token-0123456789"

// RunSuite measures the bare handler, then the edge in the flash-sale and
// all-win scenarios, each after a warm-up.
func RunSuite(ctx context.Context, cfg SuiteConfig) ([]Scenario, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	var out []Scenario
	// 1. The baseline: a bare fasthttp handler on one core (GOMAXPROCS=1).
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	stop, err := startPinned(ctx, cfg, []string{"GOMAXPROCS=1"}, "bare", "--addr", addr)
	if err != nil {
		return nil, err
	}
	base := "http://" + addr
	fmt.Fprintf(cfg.Log, "bare handler on %s (cpu %s)\n", addr, cfg.ServerCPU)
	_, _ = Run(ctx, Config{URL: base, Requests: cfg.Requests / 10, Concurrency: cfg.Concurrency, Users: 1000, ActivityID: 1})
	bare, err := Run(ctx, Config{URL: base, Requests: cfg.Requests, Concurrency: cfg.Concurrency, Users: cfg.Requests, ActivityID: 1})
	stop()
	if err != nil {
		return nil, err
	}
	if bare.Errors > 0 {
		return nil, fmt.Errorf("bare handler: %d errors: %s", bare.Errors, bare.FirstError)
	}
	out = append(out, Scenario{Name: "bare fasthttp handler", Result: bare, Ratio: 1})
	fmt.Fprint(cfg.Log, bare.Format())

	// 2. The edge, everything in process, on the same core.
	dir, err := os.MkdirTemp("", "lottery-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if addr, err = freeAddr(); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(conf, []byte("demo: false\n"+cfg.EdgeConfig), 0o600); err != nil {
		return nil, err
	}
	stop, err = startPinned(ctx, cfg, []string{"LOTTERY_ADMIN_TOKEN=" + suiteToken}, "serve", "--config", conf, "--addr", addr, "--data", filepath.Join(dir, "data"), "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	defer stop()
	base = "http://" + addr
	flashStock := max(cfg.Requests/100, 1)
	// Warm-up activity (all win), then the measured activities.
	if err := deploy(base, 9, 1_000_000, 1_000_000, 2, 1.0); err != nil {
		return nil, err
	}
	_, _ = Run(ctx, Config{URL: base, Requests: cfg.Requests / 20, Concurrency: cfg.Concurrency, Users: cfg.Requests / 20, UserPrefix: "w", ActivityID: 9})
	// Let the warm-up's invoices be delivered so its background work does not
	// run during the measured runs.
	if _, err := Verify(ctx, base, suiteToken, 9, time.Minute); err != nil {
		return nil, err
	}
	if err := deploy(base, 1, int64(flashStock), int64(flashStock), 1, 0.5); err != nil {
		return nil, err
	}
	for _, sc := range []struct {
		name     string
		activity int64
		requests int
		comment  string
	}{
		{"flash sale", 1, cfg.Requests, fmt.Sprintf("stock %d (1%% of requests), single-item 50%%: most draws answer sold_out", flashStock)},
		{"all win", 2, cfg.AllWinRequests, "stock above the requests, total-rate: every draw takes, wins, writes a take and an order, publishes and delivers an invoice"},
	} {
		if sc.activity == 2 {
			if err := deploy(base, 2, int64(2*sc.requests), int64(2*sc.requests), 2, 1.0); err != nil {
				return nil, err
			}
		}
		res, err := Run(ctx, Config{URL: base, Requests: sc.requests, Concurrency: cfg.Concurrency, Users: sc.requests, UserPrefix: "s" + fmt.Sprint(sc.activity) + "-", ActivityID: sc.activity})
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(cfg.Log, "%s:\n%s", sc.name, res.Format())
		rep, err := Verify(ctx, base, suiteToken, sc.activity, 2*time.Minute)
		if err != nil {
			return nil, err
		}
		fmt.Fprint(cfg.Log, rep.Format())
		out = append(out, Scenario{Name: sc.name, Result: res, Ratio: res.RPS / bare.RPS, Verify: &rep, Comment: sc.comment})
	}
	return out, nil
}

// deploy creates activity id (strategy id) with the given stock and award
// count (split over two awards), in mode with the total rate, and starts it.
func deploy(base string, id, stock, awards int64, mode int, rate float64) error {
	now := time.Now().UTC()
	body := fmt.Sprintf(`{"activity":{"activityId":%d,"name":"bench %d","beginTime":%q,"endTime":%q,"stockCount":%d,"takeCount":1,"strategyId":%d},
	"strategy":{"strategyId":%d,"strategyMode":%d,"grantType":1,"awards":[
	 {"awardId":"a","awardType":2,"awardName":"code","awardContent":"gift code","awardCount":%d,"awardRate":%g},
	 {"awardId":"b","awardType":1,"awardName":"card","awardContent":"thanks","awardCount":%d,"awardRate":%g}]}}`,
		id, id, now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339), stock, id, id, mode, (awards+1)/2, rate/2, awards/2, rate/2)
	if err := post(base, "/api/v1/activities", body); err != nil {
		return err
	}
	for _, a := range []string{"submit", "approve", "start"} {
		if err := post(base, fmt.Sprintf("/api/v1/activities/%d/%s", id, a), ""); err != nil {
			return err
		}
	}
	return nil
}

func post(base, path, body string) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(base + path)
	req.Header.SetMethod("POST")
	req.Header.Set("Authorization", "Bearer "+suiteToken)
	req.SetBodyString(body)
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	if resp.StatusCode() >= 300 {
		return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode(), resp.Body())
	}
	return nil
}

// startPinned starts the binary on the server core and waits until it answers.
func startPinned(ctx context.Context, cfg SuiteConfig, env []string, args ...string) (func(), error) {
	argv := append([]string{"-c", cfg.ServerCPU, cfg.Bin}, args...)
	cmd := exec.CommandContext(ctx, "taskset", argv...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %v: %w", args, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }() // owned: stop waits for it
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	var addr string
	for i, a := range args {
		if a == "--addr" {
			addr = args[i+1]
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return stop, nil
		}
		select {
		case <-done:
			return nil, fmt.Errorf("%v exited: %s", args, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("%v did not listen on %s: %s", args, addr, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// WriteMarkdown writes the suite's results as BENCHMARKS.md content.
func WriteMarkdown(w io.Writer, command string, sc []Scenario) error {
	if len(sc) == 0 {
		return errors.New("no scenarios")
	}
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	fmt.Fprintf(w, "## Draw endpoint against a bare fasthttp handler\n\n")
	fmt.Fprintf(w, "Measured %s on %d cores (%s), %s. Command: `%s`.\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), cores(), cpu, runtime.Version(), command)
	fmt.Fprintf(w, "The server (bare handler with GOMAXPROCS=1, or the edge with everything it runs in process) is pinned to one core with taskset, the load generator (this binary, requests pre-built) to the other; %d connections.\n\n", sc[0].Result.Concurrency)
	fmt.Fprintf(w, "| scenario | requests | req/s | ratio to bare | p50 | p90 | p99 | outcomes | verified |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range sc {
		v := "-"
		if s.Verify != nil {
			v = "OK"
			if len(s.Verify.Violations) > 0 {
				v = "VIOLATION: " + strings.Join(s.Verify.Violations, "; ")
			}
		}
		var oc []string
		for _, k := range sortedKeys(s.Result.ByOutcome) {
			oc = append(oc, fmt.Sprintf("%s %d", k, s.Result.ByOutcome[k]))
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %.2f | %s | %s | %s | %s | %s |\n", s.Name, s.Result.Requests, s.Result.RPS, s.Ratio,
			s.Result.P50.Round(time.Microsecond), s.Result.P90.Round(time.Microsecond), s.Result.P99.Round(time.Microsecond), strings.Join(oc, ", "), v)
	}
	fmt.Fprintln(w)
	for _, s := range sc {
		if s.Comment != "" {
			fmt.Fprintf(w, "- %s: %s.\n", s.Name, s.Comment)
		}
	}
	return nil
}

// ReplaceSection writes body into path between the markers
// <!-- begin NAME --> and <!-- end NAME -->, appending them if absent, so
// the suite refreshes its own numbers and leaves the rest of the file alone.
func ReplaceSection(path, name, body string) error {
	begin, end := "<!-- begin "+name+" -->\n", "<!-- end "+name+" -->\n"
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s := string(old)
	section := begin + body + end
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i >= 0 && j > i {
		s = s[:i] + section + s[j+len(end):]
	} else {
		if s != "" && !strings.HasSuffix(s, "\n\n") {
			s += "\n"
		}
		s += section
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// cores counts the machine's processors (runtime.NumCPU sees only the
// cores this process is pinned to).
func cores() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.NumCPU()
	}
	return strings.Count(string(b), "\nprocessor") + 1
}
