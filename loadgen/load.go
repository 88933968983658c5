package loadgen

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Config describes one load run.
type Config struct {
	// URL is the target's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// Path is the endpoint (default /api/v1/draw).
	Path string
	// Requests is the total number of requests; Concurrency the connections.
	Requests, Concurrency int
	// Users is the number of distinct user ids the requests cycle through.
	Users int
	// UserPrefix makes user ids unique per run (default "u").
	UserPrefix string
	ActivityID int64
	// Progress, when set, receives a progress bar (a terminal's stderr).
	Progress io.Writer
	// Timeout bounds each request (default 5s).
	Timeout time.Duration
	// Body builds the body of the request for user id user, the i-th of the
	// Users (default: a draw of ActivityID). Bodies are built before the
	// clock starts.
	Body func(user string, i int) []byte
	// Duration, when positive, stops sending new requests after it; Requests
	// then only bounds the run.
	Duration time.Duration
	// Trace records every request's start, end and the draw module version
	// of its answer in Result.Trace (for the hot-reload scenario).
	Trace bool
}

// Result is what a run measured.
type Result struct {
	Requests    int            `json:"requests"`
	Concurrency int            `json:"concurrency"`
	Errors      int            `json:"errors"`
	Duration    time.Duration  `json:"durationNs"`
	RPS         float64        `json:"rps"`
	P50         time.Duration  `json:"p50Ns"`
	P90         time.Duration  `json:"p90Ns"`
	P99         time.Duration  `json:"p99Ns"`
	ByStatus    map[int]int    `json:"byStatus"`
	ByOutcome   map[string]int `json:"byOutcome"`
	FirstError  string         `json:"firstError,omitempty"`
	// Started is when the run started; Trace times are relative to it.
	Started time.Time `json:"-"`
	// Trace is every request in the order sent, when Config.Trace is set.
	Trace []Sample `json:"-"`

	lat []int64 // sorted latencies, for merging rounds
}

// Sample is one traced request: when it started and ended, relative to the
// start of the run, and the draw module version its answer names ("" for
// an answer without one, or a failed request).
type Sample struct {
	Start, End time.Duration
	Module     string
}

// Failed counts the requests that did not get a 200 answer.
func (r Result) Failed() int { return r.Requests - r.ByStatus[200] }

func (c *Config) defaults() error {
	if c.Path == "" {
		c.Path = "/api/v1/draw"
	}
	if c.UserPrefix == "" {
		c.UserPrefix = "u"
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Requests <= 0 || c.Concurrency <= 0 || c.Users <= 0 || (c.ActivityID <= 0 && c.Body == nil) {
		return errors.New("loadgen: requests, concurrency, users and activity (or a body) must be positive")
	}
	if c.Body == nil {
		id := strconv.FormatInt(c.ActivityID, 10)
		c.Body = func(user string, _ int) []byte {
			return []byte(`{"userId":"` + user + `","activityId":` + id + `}`)
		}
	}
	if c.Concurrency > c.Requests {
		c.Concurrency = c.Requests
	}
	return nil
}

// Run drives the load and returns what it measured.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return Result{}, fmt.Errorf("loadgen: bad url %q", cfg.URL)
	}
	client := &fasthttp.HostClient{Addr: u.Host, MaxConns: cfg.Concurrency, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout, MaxIdleConnDuration: time.Minute}
	// Pre-build one body per user.
	bodies := make([][]byte, cfg.Users)
	for i := range bodies {
		bodies[i] = cfg.Body(cfg.UserPrefix+strconv.Itoa(i), i)
	}
	uri := "http://" + u.Host + cfg.Path
	// lat[i] is the latency of request i, or -1 if it was never sent (the
	// run's Duration passed).
	lat := make([]int64, cfg.Requests)
	var trace []Sample
	if cfg.Trace {
		trace = make([]Sample, cfg.Requests)
	}
	tallies := make([]tally, cfg.Concurrency)
	var next, done atomic.Int64
	stopBar := progress(cfg.Progress, cfg.Requests, &done)
	start := time.Now()
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		wg.Go(func() {
			t := &tallies[w]
			t.status, t.outcome, t.modules = map[int]int{}, map[string]int{}, map[string]string{}
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(uri)
			req.Header.SetMethod(fasthttp.MethodPost)
			req.Header.SetContentType("application/json")
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(cfg.Requests) {
					return
				}
				req.SetBodyRaw(bodies[i%int64(cfg.Users)])
				t0 := time.Now()
				if !deadline.IsZero() && t0.After(deadline) {
					lat[i] = -1
					return
				}
				err := client.DoTimeout(req, resp, cfg.Timeout)
				t1 := time.Now()
				lat[i] = int64(t1.Sub(t0))
				if trace != nil {
					trace[i] = Sample{Start: t0.Sub(start), End: t1.Sub(start)}
					if err == nil {
						trace[i].Module = t.intern(moduleOf(resp.Body()))
					}
				}
				done.Add(1)
				if err != nil {
					t.errs++
					if t.first == "" {
						t.first = err.Error()
					}
					continue
				}
				t.status[resp.StatusCode()]++
				t.outcome[outcomeOf(resp.Body())]++
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopBar()
	res := Result{Requests: int(done.Load()), Concurrency: cfg.Concurrency, Duration: elapsed, ByStatus: map[int]int{}, ByOutcome: map[string]int{}, Started: start}
	for _, t := range tallies {
		res.Errors += t.errs
		if res.FirstError == "" {
			res.FirstError = t.first
		}
		addTo(res.ByStatus, t.status)
		addTo(res.ByOutcome, t.outcome)
	}
	// Keep the requests that were sent, in the order they were taken.
	sent := lat[:0]
	for i, l := range lat[:min(int(next.Load()), cfg.Requests)] {
		if l < 0 {
			continue
		}
		if trace != nil {
			res.Trace = append(res.Trace, trace[i])
		}
		sent = append(sent, l)
	}
	slices.Sort(sent)
	res.lat = sent
	res.RPS = float64(res.Requests) / elapsed.Seconds()
	res.P50, res.P90, res.P99 = pct(sent, 50), pct(sent, 90), pct(sent, 99)
	return res, ctx.Err()
}

// tally is what one connection of a run counted.
type tally struct {
	status  map[int]int
	outcome map[string]int
	modules map[string]string // module versions seen, interned for the trace
	errs    int
	first   string
}

// intern returns b as a string, allocating once per distinct value.
func (t *tally) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := t.modules[string(b)]; ok {
		return s
	}
	s := string(b)
	t.modules[s] = s
	return s
}

// Merge combines the results of runs measured one after the other (the
// rounds of a paired scenario) as if they were one run: counts add up,
// req/s is over the summed durations, percentiles over every latency.
func Merge(rs ...Result) Result {
	out := Result{ByStatus: map[int]int{}, ByOutcome: map[string]int{}}
	for _, r := range rs {
		out.Requests += r.Requests
		out.Concurrency = max(out.Concurrency, r.Concurrency)
		out.Errors += r.Errors
		out.Duration += r.Duration
		if out.FirstError == "" {
			out.FirstError = r.FirstError
		}
		addTo(out.ByStatus, r.ByStatus)
		addTo(out.ByOutcome, r.ByOutcome)
		out.lat = append(out.lat, r.lat...)
	}
	slices.Sort(out.lat)
	if out.Duration > 0 {
		out.RPS = float64(out.Requests) / out.Duration.Seconds()
	}
	out.P50, out.P90, out.P99 = pct(out.lat, 50), pct(out.lat, 90), pct(out.lat, 99)
	return out
}

var outcomeKey = []byte(`"outcome":"`)

// outcomeOf finds the draw outcome in an answer without decoding it.
func outcomeOf(body []byte) string {
	if v := stringField(body, outcomeKey); v != nil {
		return string(v)
	}
	return "none"
}

var moduleKey = []byte(`"module":"`)

// moduleOf finds the draw module version (name@sha12) in an answer without
// decoding it; nil when there is none.
func moduleOf(body []byte) []byte { return stringField(body, moduleKey) }

// stringField returns the value of the string field that key (`"name":"`)
// starts, or nil.
func stringField(body, key []byte) []byte {
	i := bytes.Index(body, key)
	if i < 0 {
		return nil
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil
	}
	return rest[:j]
}

func pct(sorted []int64, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	return time.Duration(sorted[i])
}

// progress draws a bar on w every 200 ms until the returned stop is called.
func progress(w io.Writer, total int, done *atomic.Int64) func() {
	if w == nil {
		return func() {}
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	draw := func() {
		d := int(done.Load())
		const width = 30
		fill := d * width / max(total, 1)
		rate := float64(d) / max(time.Since(start).Seconds(), 1e-9)
		fmt.Fprintf(w, "\r[%s%s] %3d%% %d/%d %.0f req/s ", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), d*100/max(total, 1), d, total, rate)
	}
	go func() { // owned: stop waits for it
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				draw()
				fmt.Fprintln(w)
				return
			case <-t.C:
				draw()
			}
		}
	}()
	return func() { close(stop); <-finished }
}

// Format renders a result for a terminal.
func (r Result) Format() string {
	var b strings.Builder
	fmt.Fprintf(&b, "requests %d in %s: %.0f req/s, errors %d\n", r.Requests, r.Duration.Round(time.Millisecond), r.RPS, r.Errors)
	fmt.Fprintf(&b, "latency p50 %s  p90 %s  p99 %s\n", r.P50.Round(time.Microsecond), r.P90.Round(time.Microsecond), r.P99.Round(time.Microsecond))
	fmt.Fprintf(&b, "by status:")
	for _, k := range sortedKeys(r.ByStatus) {
		fmt.Fprintf(&b, " %d=%d", k, r.ByStatus[k])
	}
	fmt.Fprintf(&b, "\nby outcome:")
	for _, k := range sortedKeys(r.ByOutcome) {
		fmt.Fprintf(&b, " %s=%d", k, r.ByOutcome[k])
	}
	b.WriteString("\n")
	if r.FirstError != "" {
		fmt.Fprintf(&b, "first error: %s\n", r.FirstError)
	}
	return b.String()
}

// sortedKeys returns the keys of m in ascending order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}

// addTo adds the counts of src to dst.
func addTo[K comparable, V int | int64](dst, src map[K]V) {
	for k, v := range src {
		dst[k] += v
	}
}
