package main

// The drills of the production backends: edges as processes (the built
// binary) on private Redis, MariaDB and broker servers started by the test
// on free loopback ports with their data under t.TempDir(); the shared
// servers of scripts/services.sh are never touched.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flashlottery/lottery/loadgen"
	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/wasm/builtin"
)

// clusterAwards are the awards of the cluster drills' activity: 600 prizes
// for a stock of 1,000 in mode 2 (total rate), so awards run out during the
// sale and the rest of the draws lose.
var clusterAwards = []award{{"gold", 100, 0.2}, {"silver", 200, 0.3}, {"card", 300, 0.3}}

const (
	clusterStock    = 1000
	clusterRequests = 6000 // over the three edges, one fresh user each
	clusterClients  = 200
)

// startCluster starts three edges (nodes 1..3, each its own data dir) on
// the backends in the stock mode, all at once, and waits until each is ready.
func startCluster(t *testing.T, b *backends, mode string) []*edge {
	t.Helper()
	t0 := time.Now()
	edges := make([]*edge, 3)
	for i := range edges {
		conf := b.edgeConfig(t, edgeOpts{node: i + 1, mode: mode, extra: "jobs: {compensateEvery: 500ms, staleAfter: 2s, reconcileEvery: 500ms}\n"})
		edges[i] = spawnEdge(t, b.bin, freeAddr(t), filepath.Join(t.TempDir(), fmt.Sprintf("edge%d", i+1)), "--config", conf)
	}
	for _, e := range edges {
		e.waitReady(t, 60*time.Second)
	}
	t.Logf("three edges (%s mode) ready in %s: %s %s %s", mode, time.Since(t0).Round(time.Millisecond), edges[0].url, edges[1].url, edges[2].url)
	return edges
}

// waitGroupSpread draws wins on a warm-up activity over the edges until
// every edge's distributor has granted a prize: the consumer group then
// has all three members, each with partitions. A fresh group takes a few
// seconds (members join at their next heartbeat); a drill that kills an
// edge before that kills it in the middle of a JoinGroup (see the report of
// TestClusterKillDrill).
// It returns each edge's grant counter once the warm-up is delivered.
func waitGroupSpread(t *testing.T, edges []*edge, warmID int64) []float64 {
	t.Helper()
	t0 := time.Now()
	deployAndStart(t, edges[0].url, warmID, 1000000, 2, allWinAwards)
	round := 0
	var grants []float64
	ok := waitFor(45*time.Second, func() bool {
		for i := range 12 {
			e := edges[i%len(edges)]
			if st, m := drawOnce(t, e.url, fmt.Sprintf("warm-%d-%d", round, i), warmID); st != http.StatusOK {
				t.Fatalf("warm-up draw on %s: %d %v", e.url, st, m)
			}
		}
		round++
		time.Sleep(300 * time.Millisecond)
		grants = grants[:0]
		for _, e := range edges {
			grants = append(grants, metric(t, e.url, "lottery_invoices_delivered_total"))
		}
		return !slices.Contains(grants, 0)
	})
	if !ok {
		t.Errorf("the consumer group did not spread over the %d edges in 45s: prizes granted per edge %v", len(edges), grants)
	} else {
		t.Logf("consumer group spread over the %d edges after %s (grants per edge %v)", len(edges), time.Since(t0).Round(time.Millisecond), grants)
	}
	if rep, err := loadgen.Verify(t.Context(), edges[0].url, drillToken, warmID, 30*time.Second); err != nil || len(rep.Violations) > 0 {
		t.Fatalf("warm-up activity: %v %v", err, rep.Violations)
	}
	grants = grants[:0]
	for _, e := range edges {
		grants = append(grants, metric(t, e.url, "lottery_invoices_delivered_total"))
	}
	return grants
}

// failedDraws returns the edge's logged 5xx draw failures (the first few).
func failedDraws(e *edge, n int) []string {
	var out []string
	for _, line := range strings.Split(e.log.String(), "\n") {
		if strings.Contains(line, `msg="request failed"`) && len(out) < n {
			out = append(out, line)
		}
	}
	return out
}

// deployAcrossCluster deploys the activity (its strategy drawing through
// module) through edges[0] and checks the others serve it at once:
// edges[1] never saw it and must draw right after the start; edges[2]
// cached it before the start (a draw answered not_active) and must draw
// within the catalog TTL (orders.catalogTTL, 500ms): within 1s.
func deployAcrossCluster(t *testing.T, edges []*edge, id int64, module string) {
	t.Helper()
	deployActivityWith(t, edges[0].url, id, clusterStock, 2, clusterAwards, module)
	if st, m := drawOnce(t, edges[2].url, "probe-early", id); st != http.StatusConflict || m["outcome"] != "not_active" {
		t.Errorf("draw on edge 3 before the start: %d %v, want 409 not_active", st, m)
	}
	moveActivity(t, edges[0].url, id, "submit", "approve", "start")
	started := time.Now()
	if st, m := drawOnce(t, edges[1].url, "probe-1", id); st != http.StatusOK {
		t.Errorf("draw on edge 2 right after the start on edge 1: %d %v, want 200 (the activity and its Redis stock are shared)", st, m)
	}
	var last string
	ok := waitFor(5*time.Second, func() bool {
		st, m := drawOnce(t, edges[2].url, fmt.Sprintf("probe-2-%d", time.Now().UnixNano()), id)
		last = fmt.Sprintf("%d %v", st, m)
		if st != http.StatusOK && !(st == http.StatusConflict && m["outcome"] == "not_active") {
			t.Errorf("draw on edge 3 after the start: %s", last)
		}
		return st == http.StatusOK
	})
	took := time.Since(started)
	t.Logf("edge 3 (cached the activity before the start) draws %s after the start", took.Round(time.Millisecond))
	if !ok || took > time.Second {
		t.Errorf("edge 3 drew only %s after the start (last answer %s): the catalog TTL is 500ms", took.Round(time.Millisecond), last)
	}
}

// drillModule is the name of the draw module the cluster drill pushes.
const drillModule = "drill/draw"

// drillModuleVersion returns the built-in total-mode draw module with a
// custom section that makes its bytes, and so its version, differ by n.
func drillModuleVersion(n int) []byte {
	content := append([]byte{5}, "drill"...) // the section's name
	content = fmt.Append(content, n)
	b := slices.Clone(builtin.Module(lottery.ModeTotal))
	b = append(b, 0, byte(len(content))) // a custom section; its size fits one LEB128 byte
	return append(b, content...)
}

// pushModule uploads bin as drillModule through edges[from] and waits until
// every edge lists it as active (the version a draw through the module runs
// from then on). It returns the version's sha256 and how long after the
// upload answered the last edge served it (measured when the answer that
// showed it arrived, so an upper bound).
func pushModule(t *testing.T, edges []*edge, from int, bin []byte) (string, time.Duration, error) {
	t0 := time.Now()
	st, body := adminDoErr(edges[from].url, "POST", "/api/v1/modules?name="+drillModule+"&kind=draw", bin)
	if st != http.StatusCreated {
		return "", 0, fmt.Errorf("upload on edge %d: %d %s", from+1, st, body)
	}
	var v struct {
		SHA256 string `json:"sha256"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", 0, fmt.Errorf("upload answer %s: %v", body, err)
	}
	answered := time.Now()
	seen := make([]time.Duration, len(edges))
	var wg sync.WaitGroup
	for i, e := range edges {
		wg.Go(func() {
			for time.Since(answered) < 10*time.Second {
				if activeModule(e.url) == v.SHA256 {
					seen[i] = time.Since(answered)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			seen[i] = -1
		})
	}
	wg.Wait()
	t.Logf("module %s@%s pushed through edge %d (upload answered in %s): active on the edges after %v",
		drillModule, v.SHA256[:12], from+1, answered.Sub(t0).Round(time.Millisecond), roundAll(seen))
	if slices.Contains(seen, -1) {
		return v.SHA256, 0, fmt.Errorf("module %s not active on every edge 10s after its upload: %v", v.SHA256[:12], seen)
	}
	return v.SHA256, slices.Max(seen), nil
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// activeModule returns the sha256 of drillModule's active version on the
// edge ("" when none or on an error).
func activeModule(url string) string {
	st, body := adminDoErr(url, "GET", "/api/v1/modules", nil)
	if st != http.StatusOK {
		return ""
	}
	var list struct {
		Modules []struct {
			Name   string `json:"name"`
			SHA256 string `json:"sha256"`
			Active bool   `json:"active"`
		} `json:"modules"`
	}
	_ = json.Unmarshal(body, &list)
	for _, m := range list.Modules {
		if m.Name == drillModule && m.Active {
			return m.SHA256
		}
	}
	return ""
}

// adminDoErr is adminDo for goroutines: errors come back as status 0.
func adminDoErr(url, method, path string, body []byte) (int, []byte) {
	req, err := http.NewRequest(method, url+path, bytes.NewReader(body))
	if err != nil {
		return 0, []byte(err.Error())
	}
	req.Header.Set("Authorization", "Bearer "+drillToken)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// clusterLoad runs three loadgen.Run in parallel, one per edge, with
// distinct user prefixes: clusterClients connections and clusterRequests
// draws in all.
func clusterLoad(t *testing.T, edges []*edge, id int64, prefix string) []loadgen.Result {
	t.Helper()
	res := make([]loadgen.Result, len(edges))
	errs := make([]error, len(edges))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, e := range edges {
		conc := clusterClients / len(edges)
		if i < clusterClients%len(edges) {
			conc++
		}
		n := clusterRequests / len(edges)
		cfg := loadgen.Config{URL: e.url, Requests: n, Concurrency: conc, Users: n, UserPrefix: fmt.Sprintf("%s%d-", prefix, i+1), ActivityID: id, Timeout: 10 * time.Second}
		wg.Go(func() { res[i], errs[i] = loadgen.Run(t.Context(), cfg) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("load on edge %d: %v", i+1, err)
		}
		r := res[i]
		t.Logf("edge %d: %d requests (%d connections) in %s, %.0f req/s, p50 %s p99 %s, errors %d, by status %v, by outcome %v",
			i+1, r.Requests, r.Concurrency, r.Duration.Round(time.Millisecond), r.RPS, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Errors, r.ByStatus, r.ByOutcome)
	}
	t.Logf("cluster load: %d requests from %d clients in %s", clusterRequests, clusterClients, time.Since(t0).Round(time.Millisecond))
	return res
}

// TestClusterDrill runs three edges on one Redis, one MariaDB and one
// broker, deploys an activity of stock 1,000 through one edge and has 200
// clients draw 6,000 times over the three: in the Lua mode exactly 1,000
// draws are accepted (at most 1,000 in the lock mode), no award goes beyond
// its count, and every prize has one order and one delivered invoice. The
// activity draws through a module uploaded to edge 1 before the sale; a new
// version pushed to edge 2 in the middle of the load must serve on all
// three within one second (modules live in MariaDB; edges poll its
// generation), and no draw may fail across the swap.
func TestClusterDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster drill: builds the binary and runs private Redis, MariaDB and broker servers")
	}
	b := startBackends(t)
	for i, mode := range []string{"lua", "lock"} {
		t.Run(mode, func(t *testing.T) {
			id := int64(2001 + i)
			t0 := time.Now()
			edges := startCluster(t, b, mode)
			warmGrants := waitGroupSpread(t, edges, int64(9001+i))
			if _, took, err := pushModule(t, edges, 0, drillModuleVersion(2*i)); err != nil {
				t.Fatal(err)
			} else if took > time.Second {
				t.Errorf("a module uploaded to edge 1 served on every edge only after %s, want within 1s", took)
			}
			deployAcrossCluster(t, edges, id, drillModule)
			probes := auditOf(t, edges[0].url, id).Audit.Takes // the probes' draws

			// Push a new version through edge 2 while the load runs.
			type push struct {
				sha  string
				took time.Duration
				err  error
				at   time.Time
			}
			pushed := make(chan push, 1)
			go func() { // owned: read below
				time.Sleep(300 * time.Millisecond)
				at := time.Now()
				sha, took, err := pushModule(t, edges, 1, drillModuleVersion(2*i+1))
				pushed <- push{sha, took, err, at}
			}()
			loadStart := time.Now()
			res := clusterLoad(t, edges, id, "c"+mode)
			loadEnd := time.Now()
			p := <-pushed
			switch {
			case p.err != nil:
				t.Error(p.err)
			case p.took > time.Second:
				t.Errorf("a module pushed to edge 2 during the load served on every edge only after %s, want within 1s", p.took)
			default:
				t.Logf("module pushed %s into a load of %s; on every edge within %s", p.at.Sub(loadStart).Round(time.Millisecond),
					loadEnd.Sub(loadStart).Round(time.Millisecond), p.took.Round(time.Millisecond))
			}

			var acc, wins int64
			for i, r := range res {
				acc += accepted(r)
				wins += int64(r.ByOutcome["win"])
				if r.Errors != 0 || r.ByStatus[http.StatusInternalServerError] != 0 || r.ByStatus[http.StatusServiceUnavailable] != 0 || r.ByStatus[http.StatusNotFound] != 0 {
					t.Errorf("edge %d: errors %d (first %q), by status %v; the edge logged:\n%s", i+1, r.Errors, r.FirstError, r.ByStatus,
						strings.Join(failedDraws(edges[i], 3), "\n"))
				}
				for oc, n := range r.ByOutcome {
					if oc != "win" && oc != "lose" && oc != "sold_out" {
						t.Errorf("edge %d: %d answers with outcome %q", i+1, n, oc)
					}
				}
			}
			if t.Failed() { // a draw failed: did Redis run something slow?
				if out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(portOf(t, b.redis.addr)), "slowlog", "get", "5").CombinedOutput(); err == nil {
					t.Logf("redis SLOWLOG GET 5 (commands over 10ms):\n%s", out)
				}
			}
			rep := verifyClean(t, edges[0].url, id, 60*time.Second)
			switch {
			case mode == "lua" && rep.Accepted != clusterStock:
				t.Errorf("lua mode: %d draws accepted, want exactly %d", rep.Accepted, clusterStock)
			case rep.Accepted > clusterStock:
				t.Errorf("%s mode: oversold: %d draws accepted for stock %d", mode, rep.Accepted, clusterStock)
			}
			if rep.Accepted != acc+probes { // the probes' draws are the only takes beside the load's
				t.Errorf("the store holds %d takes, the clients saw %d accepted draws and the probes %d", rep.Accepted, acc, probes)
			}
			var delivered, dups float64
			var perEdge []float64
			for i, e := range edges {
				n := metric(t, e.url, "lottery_invoices_delivered_total") - warmGrants[i]
				perEdge = append(perEdge, n)
				delivered += n
				dups += metric(t, e.url, "lottery_invoices_duplicate_total")
			}
			t.Logf("prizes granted per edge (the consumer group shares the partitions): %v", perEdge)
			if int64(delivered) != rep.Prizes {
				t.Errorf("the distributors granted %v prizes, the store has %d orders: each invoice must be delivered once", delivered, rep.Prizes)
			}
			t.Logf("%s mode: accepted %d (clients %d + probes), prizes %d (clients saw %d wins), granted %v, duplicate deliveries %v, total %s",
				mode, rep.Accepted, acc, rep.Prizes, wins, delivered, dups, time.Since(t0).Round(time.Millisecond))

			if p.err == nil {
				// Draws on every edge run the pushed version (an all-win probe
				// activity through the module, after the grant count above).
				probeID := int64(9501 + i)
				deployActivityWith(t, edges[2].url, probeID, 1000, 2, allWinAwards, drillModule)
				moveActivity(t, edges[2].url, probeID, "submit", "approve", "start")
				for j, e := range edges {
					if st, m := drawOnce(t, e.url, fmt.Sprintf("mod-%d", j), probeID); st != http.StatusOK || m["module"] != drillModule+"@"+p.sha[:12] {
						t.Errorf("draw through %s on edge %d: %d %v, want version %s", drillModule, j+1, st, m, p.sha[:12])
					}
				}
			}

			t1 := time.Now()
			for i, e := range edges {
				e.stop(t, syscall.SIGTERM, 40*time.Second)
				if code := e.cmd.ProcessState.ExitCode(); code != 0 {
					t.Errorf("edge %d exit code after SIGTERM: %d, want 0", i+1, code)
				}
			}
			t.Logf("graceful stop of the three edges: %s", time.Since(t1).Round(time.Millisecond))
		})
	}
}

// TestClusterKillDrill kills one edge of three with SIGKILL in the middle of
// a load, restarts it on its port and data dir, sells the rest and checks:
// no order a client saw is lost, nothing is oversold, the stock port agrees
// with the store (stock reconciles: Verify compares Redis with the takes and
// orders) and every prize is delivered (grant_state moves once, by a
// compare-and-set). The consumer group is spread over the three edges
// before the kill, so the victim dies as a settled member.
func TestClusterKillDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster kill drill: builds the binary and runs private Redis, MariaDB and broker servers")
	}
	b := startBackends(t)
	edges := startCluster(t, b, "lua")
	warmGrants := waitGroupSpread(t, edges, 9101)
	const id = 2101
	deployAndStart(t, edges[0].url, id, clusterStock, 2, clusterAwards)
	probe := b.db.probe(t)
	urls := []string{edges[0].url, edges[1].url, edges[2].url}

	t0 := time.Now()
	load := startDrawLoad(urls, id, 60, "k1-", 0)
	load.waitAccepted(t, 200)
	victim := edges[1]
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	killedAt := time.Now()
	if code := victim.wait(t, 10*time.Second); code != -1 {
		t.Errorf("killed edge exit code %d, want -1 (signal)", code)
	}
	t.Logf("edge 2 killed after %s with %d draws accepted", killedAt.Sub(t0).Round(time.Millisecond), load.accepted.Load())
	time.Sleep(500 * time.Millisecond) // the other two keep drawing

	t1 := time.Now()
	edges[1] = victim.restart(t)
	t.Logf("edge 2 restarted on %s, ready in %s", victim.addr, time.Since(t1).Round(time.Millisecond))
	// Sell the rest: the load goes on over the three edges until sold out.
	if !waitFor(60*time.Second, func() bool {
		n := load.count(http.StatusConflict)
		time.Sleep(300 * time.Millisecond)
		return load.count(http.StatusConflict) > n+100 // only sold_out answers now
	}) {
		t.Errorf("the activity did not sell out within 60s of the restart")
	}
	recs := load.stop()
	sum := summarize(recs)
	t.Logf("load: %s, total %s", sum, time.Since(t0).Round(time.Millisecond))
	afterKill := summarize(between(recs, killedAt, t1))
	t.Logf("while edge 2 was down: %s", afterKill)

	var wins []string
	var acc int64
	for _, r := range recs {
		switch {
		case r.status == http.StatusOK:
			acc++
			if r.outcome == "win" {
				wins = append(wins, r.orderID)
			}
		case r.status == 0 || r.status == http.StatusConflict && r.outcome == "sold_out":
		default:
			t.Errorf("draw answered %d %s %s %s", r.status, r.outcome, r.code, r.message)
		}
	}

	// Units the killed edge held in flight are given back by the
	// reconciliation once they have stood still for two draw timeouts.
	waitReconciled(t, edges[0].url, id, 30*time.Second)
	rep := verifyClean(t, edges[0].url, id, 60*time.Second)
	if rep.Accepted > clusterStock {
		t.Errorf("oversold: %d draws accepted for stock %d", rep.Accepted, clusterStock)
	}
	// Every draw a client saw accepted is a take; takes without an answer
	// are requests in flight on the killed edge (at most its 20 clients).
	if rep.Accepted < acc || rep.Accepted > acc+20 {
		t.Errorf("%d takes stored, clients saw %d accepted draws (at most 20 in flight on the killed edge)", rep.Accepted, acc)
	}
	stored := probe.ordersWithWins(t, t.Context(), id, wins)
	var delivered float64
	for i, e := range edges {
		delivered += metric(t, e.url, "lottery_invoices_delivered_total")
		if i != 1 {
			delivered -= warmGrants[i]
		}
	}
	// The killed edge's counter died with it.
	t.Logf("accepted %d (clients %d), prizes %d (clients saw %d wins), orders in the store %d, granted by the survivors and the restarted edge %v",
		rep.Accepted, acc, rep.Prizes, len(wins), len(stored), delivered)
}

// allWinAwards make every accepted draw a win (mode 2, rates summing to 1)
// with far more stock than a drill sells.
var allWinAwards = []award{{"code", 500000, 0.5}, {"coupon", 500000, 0.5}}

// TestBrokerDownDrill stops the broker during a load on one edge: draws keep
// succeeding and their orders wait at mq_state 0 or 2; the broker comes back
// on its port and data dir, and with a short compensation period every
// invoice is delivered exactly once.
func TestBrokerDownDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("broker drill: builds the binary and runs private Redis, MariaDB and broker servers")
	}
	b := startBackends(t)
	conf := b.edgeConfig(t, edgeOpts{node: 1, kafkaTimeout: "2s", extra: "jobs: {compensateEvery: 200ms, staleAfter: 1s}\n"})
	e := startEdge(t, b.bin, filepath.Join(t.TempDir(), "edge"), "--config", conf)
	const id = 2201
	deployAndStart(t, e.url, id, 1000000, 2, allWinAwards)
	probe := b.db.probe(t)

	t0 := time.Now()
	load := startDrawLoad([]string{e.url}, id, 16, "bk-", 0)
	load.waitAccepted(t, 300)
	b.broker.stop(t, syscall.SIGTERM, 30*time.Second)
	down := time.Now()
	t.Logf("broker stopped (SIGTERM) after %s of load, %d draws accepted", down.Sub(t0).Round(time.Millisecond), load.accepted.Load())
	time.Sleep(3 * time.Second)

	// Before the broker returns: the orders of the draws made while it was
	// down cannot have been acknowledged, and those whose publish failed
	// (kafka.timeout 2s) are recorded as failed, mq_state 2.
	snapshot := time.Now()
	failedBefore := metric(t, e.url, "lottery_outbox_failed_total")
	time.Sleep(250 * time.Millisecond) // a failure counted is recorded right after
	stored, err := probe.orders(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	sentAtUp := metric(t, e.url, "lottery_outbox_sent_total")
	b.broker = startBroker(t, b.bin, b.brokerAddr, b.brokerDir)
	up := time.Now()
	t.Logf("broker restarted on %s in %s after %s down", b.brokerAddr, up.Sub(snapshot).Round(time.Millisecond), up.Sub(down).Round(time.Millisecond))
	time.Sleep(time.Second)
	recs := load.stop()
	t.Logf("load: %s, total %s", summarize(recs), time.Since(t0).Round(time.Millisecond))
	firstAck := waitFor(60*time.Second, func() bool { return metric(t, e.url, "lottery_outbox_sent_total") > sentAtUp })
	t.Logf("first invoice acknowledged %s after the broker returned (ok %v)", time.Since(up).Round(time.Millisecond), firstAck)
	var during []drawRec
	for _, r := range between(recs, down, snapshot) {
		if r.start.Add(r.lat).Before(snapshot) { // answered before the snapshot was read
			during = append(during, r)
		}
	}
	t.Logf("answered while the broker was down: %s", summarize(during))

	byMQ := map[int]int{}
	missing := 0
	for _, r := range during {
		if r.outcome != "win" {
			continue
		}
		o, ok := stored[r.orderID]
		if !ok {
			missing++
			continue
		}
		byMQ[o.mq]++
	}
	t.Logf("orders of those draws by mq_state before the broker returned: %v; failed publishes by then %v", byMQ, failedBefore)
	if missing > 0 {
		t.Errorf("%d orders answered while the broker was down are not in the store", missing)
	}
	if byMQ[1] > 0 {
		t.Errorf("%d orders made while the broker was down are at mq_state 1 (sent) before it returned", byMQ[1])
	}
	if byMQ[0]+byMQ[2] == 0 {
		t.Errorf("no order was made while the broker was down: the drill tested nothing")
	}
	allMQ := map[int]int{}
	for _, o := range stored {
		allMQ[o.mq]++
	}
	t.Logf("all orders by mq_state before the broker returned: %v", allMQ)
	// A failed publish is recorded as mq_state 2 (README: on failure 2); the
	// database is up the whole time, so recording it must not fail.
	for _, line := range strings.Split(e.log.String(), "\n") {
		if strings.Contains(line, "record mq_state") && strings.Contains(line, "deadline exceeded") {
			t.Errorf("with the database up, the outbox failed to record mq_state after a failed publish (%v failed by the broker's return, %d orders at mq_state 2): %s",
				failedBefore, allMQ[2], line)
			break
		}
	}
	var wins []string
	for _, r := range recs {
		if r.status != http.StatusOK || (r.outcome != "win" && r.outcome != "lose") {
			t.Errorf("draw answered %d %q %s %s %s", r.status, r.outcome, r.code, r.message, r.err)
			continue
		}
		if r.outcome == "win" {
			wins = append(wins, r.orderID)
		}
	}

	rep := verifyClean(t, e.url, id, 60*time.Second)
	if rep.Prizes != int64(len(wins)) {
		t.Errorf("the store holds %d orders, the clients saw %d wins", rep.Prizes, len(wins))
	}
	delivered := metric(t, e.url, "lottery_invoices_delivered_total")
	dups := metric(t, e.url, "lottery_invoices_duplicate_total")
	if int64(delivered) != rep.Prizes {
		t.Errorf("the distributor granted %v prizes for %d orders: each invoice must be delivered once", delivered, rep.Prizes)
	}
	// The outbox settles too: every order ends at mq_state 1.
	var final map[string]orderRow
	settled := waitFor(30*time.Second, func() bool {
		final, err = probe.orders(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range final {
			if o.mq != 1 {
				return false
			}
		}
		return true
	})
	finalMQ := map[int]int{}
	for _, o := range final {
		finalMQ[o.mq]++
	}
	if !settled {
		t.Errorf("orders by mq_state 30s after the delivery: %v, want all at 1", finalMQ)
	}
	t.Logf("prizes %d, granted %v, duplicate deliveries %v, orders by mq_state %v, compensated %v, failed publishes %v",
		rep.Prizes, delivered, dups, finalMQ, metric(t, e.url, "lottery_outbox_compensated_total"), metric(t, e.url, "lottery_outbox_failed_total"))
}

// faultAwards are the awards of the fault drills' activity (stock
// faultStock): 60% of the draws win while awards last.
var faultAwards = []award{{"code", 700, 0.3}, {"coupon", 700, 0.3}}

const faultStock = 2000

// sellOut keeps the load going until the activity answers only sold_out
// (no draw accepted for 500ms while sold_out answers come in) or timeout.
func sellOut(load *drawLoad, timeout time.Duration) bool {
	return waitFor(timeout, func() bool {
		acc, so := load.accepted.Load(), load.count(http.StatusConflict)
		time.Sleep(500 * time.Millisecond)
		return load.accepted.Load() == acc && load.count(http.StatusConflict) > so
	})
}

// TestRedisDownDrill kills Redis during a load on one edge: draws fail
// within 100ms with 503 and write nothing; Redis comes back empty on its
// port (no persistence), the edge must serve again, and after the sale
// nothing is oversold.
func TestRedisDownDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("redis drill: builds the binary and runs private Redis, MariaDB and broker servers")
	}
	b := startBackends(t)
	// Production's Redis timeout (50ms): the drill holds the edge to its
	// promise of failing within 100ms.
	conf := b.edgeConfig(t, edgeOpts{node: 1, redisTimeout: "50ms", extra: "jobs: {compensateEvery: 200ms, staleAfter: 1s, reconcileEvery: 500ms}\n"})
	e := startEdge(t, b.bin, filepath.Join(t.TempDir(), "edge"), "--config", conf)
	const id = 2301
	deployAndStart(t, e.url, id, faultStock, 2, faultAwards)
	probe := b.db.probe(t)
	ctx := t.Context()

	t0 := time.Now()
	load := startDrawLoad([]string{e.url}, id, 8, "rd-", 0)
	load.waitAccepted(t, 300)
	b.redis.p.kill()
	down := time.Now()
	t.Logf("redis killed (SIGKILL) after %s of load, %d draws accepted", down.Sub(t0).Round(time.Millisecond), load.accepted.Load())

	// Draws in flight at the kill settle; from then on nothing is written.
	time.Sleep(300 * time.Millisecond)
	takesA, err := probe.takes(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	ordersA, err := probe.orders(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	takesB, err := probe.takes(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	ordersB, err := probe.orders(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	restartAt := time.Now()
	b.redis.start(t)
	up := time.Now()
	t.Logf("redis restarted (empty) on %s in %s after %s down; takes %d -> %d, orders %d -> %d while it was down",
		b.redis.addr, up.Sub(restartAt).Round(time.Millisecond), up.Sub(down).Round(time.Millisecond), takesA, takesB, len(ordersA), len(ordersB))
	if takesB != takesA || len(ordersB) != len(ordersA) {
		t.Errorf("draws wrote while redis was down: takes %d -> %d, orders %d -> %d", takesA, takesB, len(ordersA), len(ordersB))
	}

	// The edge must serve again once redis is back: restore the stock keys
	// redis lost from the database, or answer 503 until it has.
	time.Sleep(5 * time.Second)
	recs := load.stop()
	t.Logf("first load: %s", summarize(recs))
	var during, inFlight []drawRec
	for _, r := range between(recs, t0, restartAt) {
		switch {
		case r.start.Before(down) && r.start.Add(r.lat).After(down):
			inFlight = append(inFlight, r)
		case !r.start.Before(down) && r.start.Add(r.lat).Before(restartAt):
			during = append(during, r)
		}
	}
	sd := summarize(during)
	t.Logf("in flight at the kill: %s", summarize(inFlight))
	t.Logf("while redis was down: %s", sd)
	if sd.n < 100 {
		t.Errorf("only %d draws while redis was down: the drill tested too little", sd.n)
	}
	if sd.byStatus[http.StatusServiceUnavailable] != sd.n {
		t.Errorf("draws while redis was down: by status %v, want every one 503", sd.byStatus)
	}
	if sd.p99 > 100*time.Millisecond {
		t.Errorf("draws while redis was down failed in p99 %s (max %s), want within 100ms", sd.p99, sd.max)
	}
	after := between(recs, up, time.Now())
	sa := summarize(after)
	t.Logf("in the 5s after redis returned: %s", sa)
	firstOK := -1
	for i, r := range after {
		if r.status == http.StatusOK {
			firstOK = i
			break
		}
	}
	if firstOK < 0 {
		sample := ""
		if len(after) > 0 {
			r := after[len(after)-1]
			sample = fmt.Sprintf("%d %s: %s", r.status, r.code, r.message)
		}
		t.Errorf("no draw accepted within 5s after redis returned (empty): %d draws, by status %v, by outcome %v; last answer %s",
			sa.n, sa.byStatus, sa.byOutcome, sample)
	} else {
		t.Logf("first draw accepted %s after redis returned", after[firstOK].start.Add(after[firstOK].lat).Sub(up).Round(time.Millisecond))
	}
	for _, r := range after {
		if r.status != http.StatusOK && r.status != http.StatusServiceUnavailable && !(r.status == http.StatusConflict && r.outcome == "sold_out") {
			t.Errorf("after redis returned a draw answered %d %s: %s (want 200, 409 sold_out, or 503 until the stock is restored)", r.status, r.code, r.message)
			break
		}
	}
	// The reconciliation job (every 500ms here) copies what the stock port
	// says is left into the database's stock_surplus_count.
	_, body := adminDo(t, e.url, "GET", fmt.Sprintf("/api/v1/activities/%d", id), "")
	var view struct {
		Activity struct {
			StockSurplus int64 `json:"stockSurplusCount"`
		} `json:"activity"`
	}
	if err := json.Unmarshal(body, &view); err != nil {
		t.Fatalf("activity %d: %v: %s", id, err, body)
	}
	// The load went on after redis returned (it may have sold out since), so
	// compare with the takes now.
	takesNow, err := probe.takes(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if want := faultStock - takesNow; view.Activity.StockSurplus != want {
		t.Errorf("5s after redis returned, the database's stock_surplus_count is %d; %d units are left (stock %d, %d takes)",
			view.Activity.StockSurplus, want, faultStock, takesNow)
	}
	if firstOK < 0 {
		// A restart provisions the stock from the database.
		t1 := time.Now()
		e.stop(t, syscall.SIGTERM, 40*time.Second)
		e = e.restart(t)
		t.Logf("edge restarted to re-provision the stock in %s", time.Since(t1).Round(time.Millisecond))
	}

	// Sell the rest.
	t2 := time.Now()
	load2 := startDrawLoad([]string{e.url}, id, 8, "rd2-", 0)
	if !sellOut(load2, 60*time.Second) {
		t.Errorf("the activity did not sell out within 60s")
	}
	recs2 := load2.stop()
	t.Logf("second load, to the sell-out: %s in %s", summarize(recs2), time.Since(t2).Round(time.Millisecond))
	var acc int64
	for _, r := range append(recs, recs2...) {
		if r.status == http.StatusOK {
			acc++
		}
	}
	rep := verifyClean(t, e.url, id, 30*time.Second)
	if rep.Accepted > faultStock || rep.Accepted < acc {
		t.Errorf("%d takes stored for stock %d, clients saw %d accepted draws", rep.Accepted, faultStock, acc)
	}
	t.Logf("takes %d of stock %d (clients saw %d accepted), prizes %d, total %s", rep.Accepted, faultStock, acc, rep.Prizes, time.Since(t0).Round(time.Millisecond))
}

// TestMariaDBDownDrill kills MariaDB during a load on one edge: draws fail
// with 503 and the stock they reserved is released (Redis holds what the
// database says once it is back); MariaDB restarts on its port and data,
// the edge serves again, and after the sale nothing is oversold and no
// order a client saw is lost.
func TestMariaDBDownDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("mariadb drill: builds the binary and runs private Redis, MariaDB and broker servers")
	}
	b := startBackends(t)
	conf := b.edgeConfig(t, edgeOpts{node: 1, extra: "jobs: {compensateEvery: 200ms, staleAfter: 1s, reconcileEvery: 500ms}\n"})
	e := startEdge(t, b.bin, filepath.Join(t.TempDir(), "edge"), "--config", conf)
	const id = 2401
	deployAndStart(t, e.url, id, faultStock, 2, faultAwards)
	probe := b.db.probe(t)
	ctx := t.Context()
	usedKey := fmt.Sprintf("drill:{%d}", id) // the activity's counter (stock/doc.go), field u = used
	used := func() int64 {
		t.Helper()
		v, err := redisHGet(b.redis.addr, usedKey, "u")
		if err != nil {
			t.Fatalf("redis HGET %s u: %v", usedKey, err)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("redis HGET %s u = %q: %v", usedKey, v, err)
		}
		return n
	}

	t0 := time.Now()
	const clients = 8
	load := startDrawLoad([]string{e.url}, id, clients, "md-", 0)
	load.waitAccepted(t, 300)
	b.db.p.kill()
	down := time.Now()
	t.Logf("mariadb killed (SIGKILL) after %s of load, %d draws accepted", down.Sub(t0).Round(time.Millisecond), load.accepted.Load())
	time.Sleep(500 * time.Millisecond)
	usedA := used()
	time.Sleep(2 * time.Second) // past the catalog TTL: the activity must be read again
	usedB := used()
	restartAt := time.Now()
	b.db.start(t)
	up := time.Now()
	t.Logf("mariadb restarted on %s in %s after %s down; redis used %d -> %d while it was down",
		b.db.addr, up.Sub(restartAt).Round(time.Millisecond), up.Sub(down).Round(time.Millisecond), usedA, usedB)
	// A draw reserves its unit before the store refuses it and gives it
	// back after, so each sample may count the draws in flight (at most one
	// unit per client); a unit held by a failed draw would make the count
	// climb with the thousands of draws that fail meanwhile.
	if d := usedB - usedA; d > clients || d < -clients {
		t.Errorf("redis used count moved %d -> %d while mariadb was down (more than the %d draws in flight): failing draws hold stock", usedA, usedB, clients)
	}
	accAtUp := load.accepted.Load()
	recovered := waitFor(20*time.Second, func() bool { return load.accepted.Load() > accAtUp })
	t.Logf("first draw accepted %s after mariadb returned (ok %v)", time.Since(up).Round(time.Millisecond), recovered)
	if !recovered {
		t.Errorf("no draw accepted within 20s after mariadb returned")
	}
	recs := load.stop()
	t.Logf("first load: %s", summarize(recs))
	var during []drawRec
	for _, r := range between(recs, down, restartAt) {
		if r.start.Add(r.lat).Before(restartAt) {
			during = append(during, r)
		}
	}
	sd := summarize(during)
	t.Logf("while mariadb was down: %s", sd)
	if sd.n < 50 {
		t.Errorf("only %d draws while mariadb was down: the drill tested too little", sd.n)
	}
	if sd.byStatus[http.StatusServiceUnavailable] != sd.n {
		t.Errorf("draws while mariadb was down: by status %v, by outcome %v, want every one 503", sd.byStatus, sd.byOutcome)
	}
	t.Logf("after mariadb returned: %s", summarize(between(recs, up, time.Now())))

	// Quiet: the stock port comes to hold what the database says. The draws
	// that failed gave their units back at once; a batch whose COMMIT went
	// unanswered when mariadb died may have committed, so its draws kept
	// their units, and the reconciliation gives back those of a batch that
	// did not once the difference has stood for two draw timeouts. Redis
	// never counts fewer than the database: that would sell a unit twice.
	var (
		takes, u int64
		under    bool
		perr     error
	)
	quiet := time.Now()
	settled := waitFor(15*time.Second, func() bool {
		if takes, perr = probe.takes(ctx, id); perr != nil {
			return false
		}
		u = used()
		under = under || u < takes
		return u == takes
	})
	if perr != nil {
		t.Fatal(perr)
	}
	if under {
		t.Errorf("after mariadb returned, redis counted fewer units than the database's takes: a unit could be sold twice")
	}
	if !settled {
		t.Errorf("after mariadb returned, redis says %d used, the database has %d takes 15s later: reserved stock was not released", u, takes)
	}
	t.Logf("stock port and database agree on %d units %s after the first load", takes, time.Since(quiet).Round(time.Millisecond))

	t2 := time.Now()
	load2 := startDrawLoad([]string{e.url}, id, 8, "md2-", 0)
	if !sellOut(load2, 60*time.Second) {
		t.Errorf("the activity did not sell out within 60s")
	}
	recs2 := load2.stop()
	t.Logf("second load, to the sell-out: %s in %s", summarize(recs2), time.Since(t2).Round(time.Millisecond))

	var acc, inFlight int64
	var wins []string
	for _, r := range append(recs, recs2...) {
		switch {
		case r.status == http.StatusOK:
			acc++
			if r.outcome == "win" {
				wins = append(wins, r.orderID)
			}
		case r.status == http.StatusServiceUnavailable:
			if r.start.Before(down) {
				inFlight++
			}
		case r.status == http.StatusConflict && r.outcome == "sold_out":
		default:
			t.Errorf("draw answered %d %s %s: %s", r.status, r.outcome, r.code, r.message)
		}
	}
	rep := verifyClean(t, e.url, id, 30*time.Second)
	// A take without a client answer is a draw that failed after its take
	// committed (its user may draw again to use it): at most the 8 in flight.
	if rep.Accepted > faultStock || rep.Accepted < acc || rep.Accepted > acc+8 {
		t.Errorf("%d takes stored for stock %d, clients saw %d accepted draws", rep.Accepted, faultStock, acc)
	}
	probe.ordersWithWins(t, ctx, id, wins)
	t.Logf("takes %d of stock %d (clients saw %d accepted, %d failed in flight at the kill), prizes %d (clients saw %d wins), total %s",
		rep.Accepted, faultStock, acc, inFlight, rep.Prizes, len(wins), time.Since(t0).Round(time.Millisecond))
}
