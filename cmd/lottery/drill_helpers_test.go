package main

// Helpers shared by the drills (crash_test.go, cluster_test.go): child
// processes (edges, the broker, private Redis and MariaDB servers), a draw
// client that records every answer, admin calls, and direct reads of the
// orders databases.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/valyala/fasthttp"

	"github.com/flashlottery/lottery/loadgen"
	"github.com/flashlottery/lottery/orders"
)

// drillToken is the admin token of the drills' edges (LOTTERY_ADMIN_TOKEN).
const drillToken = "crash-drill-admin-token-0123456789"

// proc is one child process of a drill. The cleanup registered by
// startProc kills it if it still runs and, when the test failed, logs the
// tail of its output.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{} // closed when the process has exited and been waited for
	err  error         // Wait's error, once done
}

// syncBuffer is a bytes.Buffer safe for the process's writer and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startProc starts bin with args and env added to the test's environment.
func startProc(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, log: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	dieWithParent(p.cmd)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { // owned: ends when the process exits, which the cleanup ensures
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("log of %s:\n%s", name, tail(p.log.String(), 40))
		}
	})
	return p
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL unless the process has exited, and waits for it.
func (p *proc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// stop sends sig and waits up to timeout for the process to exit (then kills it).
func (p *proc) stop(t *testing.T, sig syscall.Signal, timeout time.Duration) {
	t.Helper()
	if p.exited() {
		return
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Errorf("%s still running %s after %v: killed", p.name, timeout, sig)
		p.kill()
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s still running after %s", p.name, timeout)
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		t.Fatalf("wait %s: %v", p.name, p.err)
	}
	return p.cmd.ProcessState.ExitCode()
}

// edge is one `lottery serve` process.
type edge struct {
	*proc
	url, addr string
	// bin, dir and args start it again (restart).
	bin, dir string
	args     []string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// startEdge runs `bin serve --addr <free> --data dir [args...]` and waits
// until /readyz answers 200.
func startEdge(t *testing.T, bin, dir string, args ...string) *edge {
	t.Helper()
	e := spawnEdge(t, bin, freeAddr(t), dir, args...)
	e.waitReady(t, 60*time.Second)
	return e
}

// spawnEdge starts `bin serve --addr addr --data dir [args...]` with the
// drills' admin token and does not wait for it.
func spawnEdge(t *testing.T, bin, addr, dir string, args ...string) *edge {
	t.Helper()
	p := startProc(t, "edge "+addr, []string{"LOTTERY_ADMIN_TOKEN=" + drillToken}, bin,
		append([]string{"serve", "--addr", addr, "--data", dir}, args...)...)
	return &edge{proc: p, url: "http://" + addr, addr: addr, bin: bin, dir: dir, args: args}
}

// restart starts the edge again on its address, data dir and arguments
// (after it exited) and waits until it is ready.
func (e *edge) restart(t *testing.T) *edge {
	t.Helper()
	if !e.exited() {
		t.Fatalf("restart of edge %s: it still runs", e.url)
	}
	n := spawnEdge(t, e.bin, e.addr, e.dir, e.args...)
	n.waitReady(t, 60*time.Second)
	return n
}

// waitReady waits until the edge's /readyz answers 200.
func (e *edge) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-e.done:
			t.Fatalf("edge %s exited before it was ready: %v\n%s", e.url, e.err, tail(e.log.String(), 60))
		default:
		}
		resp, err := client.Get(e.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge %s not ready after %s: %v\n%s", e.url, timeout, err, tail(e.log.String(), 60))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

func accepted(r loadgen.Result) int64 {
	return int64(r.ByOutcome["win"] + r.ByOutcome["lose"])
}

// buildLottery builds the binary into the test's temporary directory.
func buildLottery(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lottery")
	t0 := time.Now()
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("build: %s", time.Since(t0).Round(time.Millisecond))
	return bin
}

// needBinaries skips the test when a server binary is missing.
func needBinaries(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s is not installed: this drill runs private Redis and MariaDB servers (`make services` installs them)", n)
		}
	}
}

// waitTCP waits until something accepts connections on addr.
func waitTCP(t *testing.T, p *proc, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if p.exited() {
			t.Fatalf("%s exited before it listened on %s: %v\n%s", p.name, addr, p.err, tail(p.log.String(), 40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s after %s: %v", p.name, addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// redisServer is a private redis-server on a loopback port, without
// persistence: a restart loses every key.
type redisServer struct {
	addr, dir string
	p         *proc
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	needBinaries(t, "redis-server")
	r := &redisServer{addr: freeAddr(t), dir: t.TempDir()}
	r.start(t)
	return r
}

// start starts (or restarts) the server on its port and waits for PONG.
func (r *redisServer) start(t *testing.T) {
	t.Helper()
	r.p = startProc(t, "redis "+r.addr, nil, "redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(portOf(t, r.addr)),
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--protected-mode", "no")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := redisPing(r.addr); err == nil {
			return
		} else if r.p.exited() || time.Now().After(deadline) {
			t.Fatalf("redis on %s not answering: %v\n%s", r.addr, err, tail(r.p.log.String(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// mariaDB is a private mariadbd with its data directory under the test's
// temporary directory; root logs in over TCP with an empty password.
type mariaDB struct {
	addr, dir string
	p         *proc
}

func startMariaDB(t *testing.T) *mariaDB {
	t.Helper()
	needBinaries(t, "mariadb-install-db", "mariadbd")
	m := &mariaDB{addr: freeAddr(t), dir: t.TempDir()}
	t0 := time.Now()
	install := exec.Command("mariadb-install-db", "--no-defaults", "--user=root", "--datadir="+filepath.Join(m.dir, "data"),
		"--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, tail(string(out), 30))
	}
	m.start(t)
	t.Logf("private MariaDB on %s: installed and ready in %s", m.addr, time.Since(t0).Round(time.Millisecond))
	return m
}

// start starts (or restarts) mariadbd on its port and data and waits until
// it answers a query.
func (m *mariaDB) start(t *testing.T) {
	t.Helper()
	m.p = startProc(t, "mariadb "+m.addr, nil, "mariadbd", "--no-defaults", "--user=root",
		"--datadir="+filepath.Join(m.dir, "data"), "--port="+strconv.Itoa(portOf(t, m.addr)), "--bind-address=127.0.0.1",
		"--socket="+filepath.Join(m.dir, "my.sock"), "--pid-file="+filepath.Join(m.dir, "my.pid"), "--skip-log-bin",
		"--skip-name-resolve", "--innodb-flush-log-at-trx-commit=2", "--innodb-buffer-pool-size=64M",
		"--max-connections=1000", "--performance-schema=OFF", "--log-warnings=1")
	db := m.open(t, "")
	defer db.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return
		}
		if m.p.exited() || time.Now().After(deadline) {
			t.Fatalf("mariadb on %s not answering: %v\n%s", m.addr, err, tail(m.p.log.String(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (m *mariaDB) config(db string) *mysql.Config {
	c := mysql.NewConfig()
	c.User, c.Net, c.Addr, c.DBName = "root", "tcp", m.addr, db
	c.Timeout, c.ReadTimeout, c.WriteTimeout = time.Second, 5*time.Second, 5*time.Second
	return c
}

// dsn is root's DSN for database db (empty: none).
func (m *mariaDB) dsn(db string) string { return m.config(db).FormatDSN() }

// open opens a pool on database db that does not log (the drills kill the
// server under it).
func (m *mariaDB) open(t *testing.T, db string) *sql.DB {
	t.Helper()
	c := m.config(db)
	c.Logger = &mysql.NopLogger{}
	conn, err := mysql.NewConnector(c)
	if err != nil {
		t.Fatal(err)
	}
	return sql.OpenDB(conn)
}

// shardDBs are the names of the drills' shard databases (the seed's 2).
var shardDBs = []string{orders.ShardDatabase(0), orders.ShardDatabase(1)}

// startBroker runs `bin broker` on addr with its data in dir.
func startBroker(t *testing.T, bin, addr, dir string) *proc {
	t.Helper()
	p := startProc(t, "broker "+addr, nil, bin, "broker", "--addr", addr, "--data", dir)
	waitTCP(t, p, addr, 30*time.Second)
	return p
}

// backends are a drill's private servers.
type backends struct {
	bin        string
	redis      *redisServer
	db         *mariaDB
	brokerAddr string
	brokerDir  string
	broker     *proc
}

// startBackends builds the binary and starts a private Redis, MariaDB and
// broker (the binary builds while MariaDB installs).
func startBackends(t *testing.T) *backends {
	t.Helper()
	needBinaries(t, "redis-server", "mariadb-install-db", "mariadbd")
	t0 := time.Now()
	b := &backends{}
	bin := filepath.Join(t.TempDir(), "lottery")
	built := make(chan error, 1)
	go func() { // owned: read below
		out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
		if err != nil {
			err = fmt.Errorf("go build: %v\n%s", err, out)
		}
		built <- err
	}()
	b.redis = startRedis(t)
	b.db = startMariaDB(t)
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	b.bin = bin
	b.brokerAddr, b.brokerDir = freeAddr(t), filepath.Join(t.TempDir(), "broker")
	b.broker = startBroker(t, b.bin, b.brokerAddr, b.brokerDir)
	t.Logf("backends (build, redis %s, mariadb %s, broker %s) ready in %s", b.redis.addr, b.db.addr, b.brokerAddr, time.Since(t0).Round(time.Millisecond))
	return b
}

// edgeOpts are what differ between the drills' edges.
type edgeOpts struct {
	node int
	// mode is stock.redis.mode (lua or lock); redisTimeout stock.redis.timeout
	// (default 1s); kafkaTimeout kafka.timeout (default 5s).
	mode, redisTimeout, kafkaTimeout string
	// extra is YAML appended as is (top-level keys not written here: jobs, http...).
	extra string
}

// edgeConfig writes the YAML of an edge on the backends: redis stock, mysql
// orders over the seed's 2 x 4 in two databases, the private broker with the
// distributor in process, no demo; and returns its path.
func (b *backends) edgeConfig(t *testing.T, o edgeOpts) string {
	t.Helper()
	if o.mode == "" {
		o.mode = "lua"
	}
	if o.redisTimeout == "" {
		// Far above production's 50ms: on a loaded 2-core machine (load
		// averages of 10 were seen while these drills ran) a stall longer
		// than the Redis timeout fails a draw with 503 and leaves its unit
		// counted (undersold by design, stock/doc.go), which only the Redis
		// drill is about.
		o.redisTimeout = "1s"
	}
	if o.kafkaTimeout == "" {
		o.kafkaTimeout = "5s"
	}
	var s strings.Builder
	fmt.Fprintf(&s, "node: %d\ndemo: false\n", o.node)
	fmt.Fprintf(&s, "stock:\n  backend: redis\n  redis:\n    addr: %s\n    prefix: \"drill:\"\n    mode: %s\n    shards: 1\n    timeout: %s\n", b.redis.addr, o.mode, o.redisTimeout)
	fmt.Fprintf(&s, "orders:\n  backend: mysql\n  dbCount: 2\n  tbCount: 4\n  mysql:\n    base: %s\n    shards:\n", b.db.dsn("lottery"))
	for _, db := range shardDBs {
		fmt.Fprintf(&s, "      - %s\n", b.db.dsn(db))
	}
	fmt.Fprintf(&s, "kafka:\n  brokers: [%s]\n  consume: true\n  timeout: %s\n", b.brokerAddr, o.kafkaTimeout)
	s.WriteString(o.extra)
	p := filepath.Join(t.TempDir(), fmt.Sprintf("edge%d.yaml", o.node))
	if err := os.WriteFile(p, []byte(s.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// award is one award of a drill's strategy.
type award struct {
	id    string
	count int64
	rate  float64
}

// deployActivity deploys activity id (strategy id) with the stock, one draw
// per user and the awards in mode; it stays in edit.
func deployActivity(t *testing.T, url string, id, stock int64, mode int, awards []award) {
	t.Helper()
	deployActivityWith(t, url, id, stock, mode, awards, "")
}

// deployActivityWith is deployActivity with the strategy's draw module
// ("" for the built-in one of the mode).
func deployActivityWith(t *testing.T, url string, id, stock int64, mode int, awards []award, module string) {
	t.Helper()
	now := time.Now().UTC()
	var aw []string
	for i, a := range awards {
		aw = append(aw, fmt.Sprintf(`{"awardId":%q,"awardType":%d,"awardName":"award %s","awardContent":"content %s","awardCount":%d,"awardRate":%g}`,
			a.id, 1+i%4, a.id, a.id, a.count, a.rate))
	}
	body := fmt.Sprintf(`{"activity":{"activityId":%d,"name":"drill %d","beginTime":%q,"endTime":%q,"stockCount":%d,"takeCount":1,"strategyId":%d},
		"strategy":{"strategyId":%d,"strategyMode":%d,"grantType":1,"drawModule":%q,"awards":[%s]}}`,
		id, id, now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339), stock, id, id, mode, module, strings.Join(aw, ","))
	if st, b := adminDo(t, url, "POST", "/api/v1/activities", body); st != http.StatusCreated {
		t.Fatalf("deploy activity %d: %d %s", id, st, b)
	}
}

// moveActivity applies the state actions in turn.
func moveActivity(t *testing.T, url string, id int64, actions ...string) {
	t.Helper()
	for _, a := range actions {
		if st, b := adminDo(t, url, "POST", fmt.Sprintf("/api/v1/activities/%d/%s", id, a), ""); st != http.StatusOK {
			t.Fatalf("activity %d %s: %d %s", id, a, st, b)
		}
	}
}

// deployAndStart deploys the activity and moves it to running.
func deployAndStart(t *testing.T, url string, id, stock int64, mode int, awards []award) {
	t.Helper()
	deployActivity(t, url, id, stock, mode, awards)
	moveActivity(t, url, id, "submit", "approve", "start")
}

// drawOnce sends one draw and returns the status and the decoded answer.
func drawOnce(t *testing.T, url, user string, id int64) (int, map[string]any) {
	t.Helper()
	body := fmt.Sprintf(`{"userId":%q,"activityId":%d}`, user, id)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Post(url+"/api/v1/draw", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("draw on %s: %v", url, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// adminDo calls an admin endpoint with the drills' token.
func adminDo(t *testing.T, url, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+drillToken)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// auditOf reads the activity's audit (the parts the drills look at).
type auditView struct {
	StockLeft int64 `json:"stockLeft"`
	Audit     struct {
		Takes, Orders int64
		ByMQState     map[string]int64
		ByGrantState  map[string]int64
	} `json:"audit"`
}

func auditOf(t *testing.T, url string, id int64) auditView {
	t.Helper()
	st, b := adminDo(t, url, "GET", fmt.Sprintf("/api/v1/activities/%d/audit", id), "")
	if st != http.StatusOK {
		t.Fatalf("audit of %d: %d %s", id, st, b)
	}
	var a auditView
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("audit of %d: %v", id, err)
	}
	return a
}

// metric reads one unlabelled counter or gauge from the edge's /metrics.
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not found on %s", name, url)
	return 0
}

// verifyClean runs loadgen.Verify and reports every violation.
func verifyClean(t *testing.T, url string, id int64, wait time.Duration) loadgen.Report {
	t.Helper()
	t0 := time.Now()
	rep, err := loadgen.Verify(t.Context(), url, drillToken, id, wait)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	t.Logf("verify after %s:\n%s", time.Since(t0).Round(time.Millisecond), rep.Format())
	for _, v := range rep.Violations {
		t.Errorf("violation: %s", v)
	}
	return rep
}

// waitReconciled polls the activity's verification until it shows no
// violation (deliveries done, stock port in line with the store), up to wait.
func waitReconciled(t *testing.T, url string, id int64, wait time.Duration) {
	t.Helper()
	t0 := time.Now()
	for time.Since(t0) < wait {
		rep, err := loadgen.Verify(t.Context(), url, drillToken, id, time.Second)
		if err == nil && len(rep.Violations) == 0 {
			t.Logf("reconciled after %s", time.Since(t0).Round(time.Millisecond))
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// orderRow is an order as the shard databases hold it.
type orderRow struct {
	mq, grant int
	award     string
}

// dbProbe reads the shard databases directly (the admin audit needs the
// stock port too, which a Redis drill takes away).
type dbProbe struct{ dbs []*sql.DB }

func (m *mariaDB) probe(t *testing.T) *dbProbe {
	t.Helper()
	p := &dbProbe{}
	for _, name := range shardDBs {
		db := m.open(t, name)
		db.SetMaxOpenConns(2)
		t.Cleanup(func() { db.Close() })
		p.dbs = append(p.dbs, db)
	}
	return p
}

// takes counts the activity's takes over every shard database.
func (p *dbProbe) takes(ctx context.Context, id int64) (int64, error) {
	var n int64
	for _, db := range p.dbs {
		var c int64
		q := "SELECT COUNT(*) FROM " + orders.TableTake + " WHERE activity_id = ?"
		if err := db.QueryRowContext(ctx, q, id).Scan(&c); err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

// orders reads the activity's orders over every shard table, by order id.
func (p *dbProbe) orders(ctx context.Context, id int64) (map[string]orderRow, error) {
	out := map[string]orderRow{}
	for _, db := range p.dbs {
		for tb := range 4 {
			q := "SELECT order_id, mq_state, grant_state, award_id FROM " + orders.ShardTable(orders.TableExport, tb) + " WHERE activity_id = ?"
			rows, err := db.QueryContext(ctx, q, id)
			if err != nil {
				return nil, err
			}
			for rows.Next() {
				var oid int64
				var r orderRow
				if err := rows.Scan(&oid, &r.mq, &r.grant, &r.award); err != nil {
					rows.Close()
					return nil, err
				}
				out[strconv.FormatInt(oid, 10)] = r
			}
			if err := rows.Close(); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// ordersWithWins reads the activity's orders and fails the test for each
// win a client saw (by order id) that is not among them.
func (p *dbProbe) ordersWithWins(t *testing.T, ctx context.Context, id int64, wins []string) map[string]orderRow {
	t.Helper()
	stored, err := p.orders(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, o := range wins {
		if _, ok := stored[o]; !ok {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of the %d orders clients saw are not in the store", lost, len(wins))
	}
	return stored
}

// drawRec is one draw as a drill client saw it.
type drawRec struct {
	start   time.Time
	lat     time.Duration
	status  int // 0: transport error
	outcome string
	code    string
	message string
	orderID string
	err     string
}

// drawLoad is a closed-loop draw client: workers send draws of fresh users
// (prefix + counter) to one of the urls in turn, one at a time each,
// recording every answer, until stopped.
type drawLoad struct {
	recs     [][]drawRec
	accepted atomic.Int64 // win or lose answers
	sent     atomic.Int64
	status   sync.Map // int -> *atomic.Int64
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func startDrawLoad(urls []string, activity int64, workers int, prefix string, pause time.Duration) *drawLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &drawLoad{recs: make([][]drawRec, workers), cancel: cancel}
	var next atomic.Int64
	for w := range workers {
		url := urls[w%len(urls)]
		l.wg.Go(func() {
			client := &fasthttp.Client{ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxConnsPerHost: 4}
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(url + "/api/v1/draw")
			req.Header.SetMethod(fasthttp.MethodPost)
			req.Header.SetContentType("application/json")
			for ctx.Err() == nil {
				user := prefix + strconv.FormatInt(next.Add(1), 10)
				req.SetBodyString(`{"userId":"` + user + `","activityId":` + strconv.FormatInt(activity, 10) + `}`)
				r := drawRec{start: time.Now()}
				err := client.DoTimeout(req, resp, 10*time.Second)
				r.lat = time.Since(r.start)
				l.sent.Add(1)
				if err != nil {
					r.err = err.Error()
					time.Sleep(10 * time.Millisecond) // the edge is down: do not spin
				} else {
					r.status = resp.StatusCode()
					var body struct {
						Outcome string `json:"outcome"`
						Code    string `json:"code"`
						OrderID string `json:"orderId"`
						Message string `json:"message"`
					}
					_ = json.Unmarshal(resp.Body(), &body)
					r.outcome, r.code, r.orderID, r.message = body.Outcome, body.Code, body.OrderID, body.Message
					if r.status == http.StatusOK {
						l.accepted.Add(1)
					}
				}
				v, _ := l.status.LoadOrStore(r.status, new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
				l.recs[w] = append(l.recs[w], r)
				if pause > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(pause):
					}
				}
			}
		})
	}
	return l
}

// stop ends the load and returns every record, in start order.
func (l *drawLoad) stop() []drawRec {
	l.cancel()
	l.wg.Wait()
	var all []drawRec
	for _, r := range l.recs {
		all = append(all, r...)
	}
	slices.SortFunc(all, func(a, b drawRec) int { return a.start.Compare(b.start) })
	return all
}

// count returns how many answers had the status so far.
// waitAccepted waits up to 30s for the load to have n draws accepted and
// stops the test if it has not.
func (l *drawLoad) waitAccepted(t *testing.T, n int64) {
	t.Helper()
	if !waitFor(30*time.Second, func() bool { return l.accepted.Load() >= n }) {
		t.Fatalf("no load: %d draws accepted in 30s", l.accepted.Load())
	}
}

func (l *drawLoad) count(status int) int64 {
	if v, ok := l.status.Load(status); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// recSummary sums records: counts by status and outcome, latency percentiles.
type recSummary struct {
	n              int
	byStatus       map[int]int
	byOutcome      map[string]int
	p50, p99, max  time.Duration
	firstErr       string
	firstErrStatus int
}

func summarize(recs []drawRec) recSummary {
	s := recSummary{n: len(recs), byStatus: map[int]int{}, byOutcome: map[string]int{}}
	lat := make([]time.Duration, 0, len(recs))
	for _, r := range recs {
		s.byStatus[r.status]++
		if r.outcome != "" {
			s.byOutcome[r.outcome]++
		} else if r.code != "" {
			s.byOutcome["code:"+r.code]++
		}
		if s.firstErr == "" && r.err != "" {
			s.firstErr = r.err
		}
		lat = append(lat, r.lat)
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		s.p50 = lat[(len(lat)-1)*50/100]
		s.p99 = lat[(len(lat)-1)*99/100]
		s.max = lat[len(lat)-1]
	}
	return s
}

func (s recSummary) String() string {
	return fmt.Sprintf("%d draws, by status %v, by outcome %v, latency p50 %s p99 %s max %s",
		s.n, s.byStatus, s.byOutcome, s.p50.Round(time.Microsecond), s.p99.Round(time.Microsecond), s.max.Round(time.Microsecond))
}

// between returns the records that started in [from, to).
func between(recs []drawRec, from, to time.Time) []drawRec {
	var out []drawRec
	for _, r := range recs {
		if !r.start.Before(from) && r.start.Before(to) {
			out = append(out, r)
		}
	}
	return out
}

// redisHGet reads one hash field with a plain RESP call ("" when missing).
func redisHGet(addr, key, field string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	cmd := fmt.Sprintf("*3\r\n$4\r\nHGET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(key), key, len(field), field)
	if _, err := c.Write([]byte(cmd)); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasPrefix(line, "$") {
		return "", fmt.Errorf("HGET %s %s answered %q", key, field, line)
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 {
		return "", err
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
