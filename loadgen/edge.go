package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/flashlottery/lottery/rules"
)

const suiteToken = "benchsuite-admin-token-0123456789"

// edge is a `lottery serve` the suite started on the server core, with its
// own config and data directory, and the admin calls the suite makes on it.
type edge struct {
	base string
	dir  string
	stop func()
}

// startEdge writes conf to a fresh directory and starts the edge on it.
func startEdge(ctx context.Context, cfg SuiteConfig, conf string) (*edge, error) {
	dir, err := os.MkdirTemp("", "lottery-bench-")
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	path := filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	stop, err := startPinned(ctx, cfg, []string{"LOTTERY_ADMIN_TOKEN=" + suiteToken}, addr, "serve", "--config", path, "--data", filepath.Join(dir, "data"), "--log-level", "warn")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &edge{base: "http://" + addr, dir: dir, stop: func() { stop(); os.RemoveAll(dir) }}, nil
}

// activity is what deploy creates: an activity and its strategy (same id)
// with two awards sharing awards and rate, drawn by module ("" native).
type activity struct {
	id, stock, awards int64
	mode              int
	rate              float64
	module            string
}

// deploy creates the activity and starts it.
func (e *edge) deploy(a activity) error {
	now := time.Now().UTC()
	module := ""
	if a.module != "" {
		module = fmt.Sprintf(`"drawModule":%q,`, a.module)
	}
	body := fmt.Sprintf(`{"activity":{"activityId":%d,"name":"bench %d","beginTime":%q,"endTime":%q,"stockCount":%d,"takeCount":1,"strategyId":%d},
	"strategy":{"strategyId":%d,"strategyMode":%d,"grantType":1,%s"awards":[
	 {"awardId":"a","awardType":2,"awardName":"code","awardContent":"gift code","awardCount":%d,"awardRate":%g},
	 {"awardId":"b","awardType":1,"awardName":"card","awardContent":"thanks","awardCount":%d,"awardRate":%g}]}}`,
		a.id, a.id, now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339), a.stock, a.id, a.id, a.mode, module, (a.awards+1)/2, a.rate/2, a.awards/2, a.rate/2)
	if _, err := e.call("POST", "/api/v1/activities", []byte(body)); err != nil {
		return err
	}
	for _, act := range []string{"submit", "approve", "start"} {
		if _, err := e.call("POST", fmt.Sprintf("/api/v1/activities/%d/%s", a.id, act), nil); err != nil {
			return err
		}
	}
	return nil
}

// registerTree uploads a rule tree for the engine ("wasm" or "native").
func (e *edge) registerTree(t *rules.Tree, engine string) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	_, err = e.call("POST", "/api/v1/rules/trees?engine="+engine, b)
	return err
}

// upload pushes a module and returns the version the edge answered
// (name@sha12).
func (e *edge) upload(name, kind string, bin []byte) (string, error) {
	b, err := e.call("POST", "/api/v1/modules?name="+url.QueryEscape(name)+"&kind="+kind, bin)
	if err != nil {
		return "", err
	}
	var v struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Version == "" {
		return "", fmt.Errorf("upload %s: answer without a version: %s", name, b)
	}
	return v.Version, nil
}

// activeVersion returns the version of module name that GET /api/v1/modules
// lists as active.
func (e *edge) activeVersion(name string) (string, error) {
	b, err := e.call("GET", "/api/v1/modules", nil)
	if err != nil {
		return "", err
	}
	var list struct {
		Modules []struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			Active  bool   `json:"active"`
		} `json:"modules"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return "", fmt.Errorf("GET /api/v1/modules: %w", err)
	}
	for _, m := range list.Modules {
		if m.Name == name && m.Active {
			return m.Version, nil
		}
	}
	return "", nil
}

// metrics scrapes /metrics.
func (e *edge) metrics() (Metrics, error) {
	b, err := e.call("GET", "/metrics", nil)
	if err != nil {
		return nil, err
	}
	return ParseMetrics(b), nil
}

// verify checks the activities and merges their reports.
func (e *edge) verify(ctx context.Context, ids ...int64) (*Report, error) {
	var reps []Report
	for _, id := range ids {
		rep, err := Verify(ctx, e.base, suiteToken, id, 2*time.Minute)
		if err != nil {
			return nil, err
		}
		reps = append(reps, rep)
	}
	rep := mergeReports(ids, reps)
	return &rep, nil
}

// mergeReports adds up the reports of several activities; violations are
// prefixed with their activity when there is more than one.
func mergeReports(ids []int64, reps []Report) Report {
	if len(reps) == 1 {
		return reps[0]
	}
	out := Report{ByAward: map[string]int64{}, AwardCounts: map[string]int64{}}
	for i, r := range reps {
		out.StockCount += r.StockCount
		out.Accepted += r.Accepted
		out.Prizes += r.Prizes
		out.Delivered += r.Delivered
		out.Waited = max(out.Waited, r.Waited)
		addTo(out.ByAward, r.ByAward)
		addTo(out.AwardCounts, r.AwardCounts)
		for _, v := range r.Violations {
			out.Violations = append(out.Violations, fmt.Sprintf("activity %d: %s", ids[i], v))
		}
	}
	return out
}

// call sends an admin request and returns the body of a 2xx answer.
func (e *edge) call(method, path string, body []byte) ([]byte, error) {
	return adminCall(e.base, suiteToken, method, path, body)
}

// startPinned starts the binary with args and --addr addr on the server
// core and waits until it listens there.
func startPinned(ctx context.Context, cfg SuiteConfig, env []string, addr string, args ...string) (func(), error) {
	args = append(args, "--addr", addr)
	argv := append([]string{"-c", cfg.ServerCPU, cfg.Bin}, args...)
	cmd := exec.CommandContext(ctx, "taskset", argv...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr // read only after the process exited
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
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return stop, nil
		}
		select {
		case <-done:
			return nil, fmt.Errorf("%s %s exited: %s", filepath.Base(cfg.Bin), args[0], strings.TrimSpace(stderr.String()))
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
