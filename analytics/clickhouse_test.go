package analytics

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/flashlottery/lottery/lottery"
)

// clickhouseEnv names the variable that holds the address (host:port, native
// protocol) of a ClickHouse server the tests may create databases on.
const clickhouseEnv = "LOTTERY_TEST_CLICKHOUSE"

// clickhouseAddr returns the test server's address, or skips tb.
func clickhouseAddr(tb testing.TB) string {
	tb.Helper()
	addr := os.Getenv(clickhouseEnv)
	if addr == "" {
		tb.Skipf("%s is not set: no ClickHouse server to test against (scripts/services.sh starts one; CI sets it)", clickhouseEnv)
	}
	return addr
}

// testDatabase returns a database name no other test or run uses.
func testDatabase() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("lottery_test_%d_%s", time.Now().Unix(), hex.EncodeToString(b[:]))
}

// newTestClickHouse opens a ClickHouse store on a fresh, migrated database
// at addr, dropped when the test ends.
func newTestClickHouse(tb testing.TB, addr string, cfg ClickHouseConfig) *ClickHouse {
	tb.Helper()
	cfg.Addr = addr
	if cfg.Database == "" {
		cfg.Database = testDatabase()
	}
	ctx := context.Background()
	c, err := OpenClickHouse(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// Drop through a connection of our own: the test may have
		// closed c or cut it off.
		// Dropping ten million events' parts takes a while on a busy disk.
		admin, err := OpenClickHouse(ctx, ClickHouseConfig{Addr: os.Getenv(clickhouseEnv), Database: cfg.Database, QueryTimeout: 5 * time.Minute})
		if err == nil {
			err = admin.conn.Exec(ctx, admin.sql("DROP DATABASE IF EXISTS {db}"))
			_ = admin.Close()
		}
		if err != nil {
			tb.Errorf("dropping test database %s: %v", cfg.Database, err)
		}
		_ = c.Close()
	})
	if err := c.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	return c
}

// openTestClickHouse returns a migrated store on a fresh database, or nil
// when no server is configured.
func openTestClickHouse(t *testing.T) *ClickHouse {
	addr := os.Getenv(clickhouseEnv)
	if addr == "" {
		return nil
	}
	return newTestClickHouse(t, addr, ClickHouseConfig{})
}

func TestClickHouseMigrate(t *testing.T) {
	c := newTestClickHouse(t, clickhouseAddr(t), ClickHouseConfig{})
	ctx := context.Background()
	for range 2 { // already migrated once: again is a no-op
		if err := c.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Migrations cut short before they were recorded are applied again
	// (ADD COLUMN of a column that is there included).
	if err := c.conn.Exec(ctx, c.sql("DROP TABLE {db}.schema_migrations")); err != nil {
		t.Fatal(err)
	}
	if err := c.Migrate(ctx); err != nil {
		t.Fatalf("migrating again after losing the record: %v", err)
	}
	var versions, maxVersion uint64
	err := c.each(ctx, "test", "SELECT count(), toUInt64(max(version)) FROM {db}.schema_migrations", func(r driver.Rows) error {
		return r.Scan(&versions, &maxVersion)
	})
	if err != nil || versions != SchemaVersion || maxVersion != SchemaVersion {
		t.Fatalf("schema_migrations: %d rows, max version %d, err %v; want one row per version up to %d", versions, maxVersion, err, SchemaVersion)
	}
	var tables []string
	err = c.each(ctx, "test", "SELECT name FROM system.tables WHERE database = '"+c.cfg.Database+"' ORDER BY name", func(r driver.Rows) error {
		var name string
		err := r.Scan(&name)
		tables = append(tables, name)
		return err
	})
	want := []string{
		"draw_counts", "draw_counts_hourly", "draw_counts_hourly_mv", "draw_counts_minutely", "draw_counts_minutely_mv", "draw_counts_mv", "draw_events",
		"draw_latency", "draw_latency_hourly", "draw_latency_hourly_mv", "draw_latency_mv", "schema_migrations",
	}
	if err != nil || !reflect.DeepEqual(tables, want) {
		t.Fatalf("tables = %v, err %v; want %v", tables, err, want)
	}
}

func TestClickHouseConfig(t *testing.T) {
	for _, cfg := range []ClickHouseConfig{
		{},
		{Addr: "127.0.0.1:9000", Database: "bad-name"},
		{Addr: "127.0.0.1:9000", Database: "x`; DROP DATABASE system; --"},
	} {
		if _, err := OpenClickHouse(context.Background(), cfg); !errors.Is(err, lottery.ErrInvalid) {
			t.Fatalf("OpenClickHouse(%+v) = %v, want ErrInvalid", cfg, err)
		}
	}
	c := ClickHouseConfig{Addr: "x"}.withDefaults()
	if c.Database != DefaultClickHouseDatabase || c.Username != DefaultClickHouseUsername || c.DialTimeout != DefaultDialTimeout || c.QueryTimeout != DefaultQueryTimeout {
		t.Fatalf("defaults = %+v", c)
	}
}

// TestClickHouseMatchesEmbedded is the contract: the same random events in
// both stores, every named query answers the same (counts exactly, latency
// within each store's precision of the exact value).
func TestClickHouseMatchesEmbedded(t *testing.T) {
	c := newTestClickHouse(t, clickhouseAddr(t), ClickHouseConfig{})
	r := mrand.New(mrand.NewPCG(31, 32))
	const span = 10 * time.Minute
	events := drawEvents(r, 30000, span)
	// Edges a DateTime and a UInt32 latency clamp; both stores must agree
	// on what they keep.
	events = append(events,
		lottery.Event{At: base.Add(span - time.Nanosecond), ActivityID: 2, Outcome: lottery.OutcomeWin, AwardID: "edge", LatencyUS: -5, Module: "m@1"},
		lottery.Event{At: base, ActivityID: 2, Outcome: lottery.OutcomeWin, LatencyUS: 5e9},
	)
	e, _ := OpenEmbedded("")
	defer e.Close()
	// Sink-sized batches: every ClickHouse insert costs tens of
	// milliseconds whatever its size.
	for i := 0; i < len(events); i += DefaultBatchSize {
		if err := c.Insert(context.Background(), events[i:min(i+DefaultBatchSize, len(events))]); err != nil {
			t.Fatal(err)
		}
	}
	insertInBatches(t, e, r, events)
	ctx := context.Background()

	// Fewer windows than the embedded tests: each costs a few round trips.
	for _, w := range windows(r, span)[:12] { // Summary, unbounded windows included
		for act := int64(0); act <= 3; act++ {
			got, err := c.Summary(ctx, act, w[0], w[1])
			if err != nil {
				t.Fatal(err)
			}
			want, _ := e.Summary(ctx, act, w[0], w[1])
			sorted := handLatencies(events, act, orZero(w[0], 0), orZero(w[1], maxUnix))
			checkLatency(t, "Summary p50", got.LatencyP50US, want.LatencyP50US, exactQuantile(sorted, 0.50))
			checkLatency(t, "Summary p99", got.LatencyP99US, want.LatencyP99US, exactQuantile(sorted, 0.99))
			got.LatencyP50US, got.LatencyP99US = want.LatencyP50US, want.LatencyP99US
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Summary(%d, %v, %v)\nclickhouse %+v\n  embedded %+v", act, w[0], w[1], got, want)
			}
		}
	}
	for _, w := range boundedWindows(r, span)[:10] {
		for act := int64(1); act <= 3; act++ {
			checkQueries(t, c, events, act, w[0], w[1], clickhouseMid)
			// And against the embedded store directly.
			for _, q := range []func(Querier) (any, error){
				func(q Querier) (any, error) { return q.Awards(ctx, act, w[0], w[1]) },
				func(q Querier) (any, error) { return q.Timeline(ctx, act, w[0], w[1], 10*time.Second) },
				func(q Querier) (any, error) { return q.Modules(ctx, act, w[0], w[1]) },
			} {
				got, err1 := q(c)
				want, err2 := q(e)
				if err1 != nil || err2 != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("activity %d window %v: clickhouse %+v (%v), embedded %+v (%v)", act, w, got, err1, want, err2)
				}
			}
			got, _ := c.Latency(ctx, act, w[0], w[1])
			want, _ := e.Latency(ctx, act, w[0], w[1])
			sorted := handLatencies(events, act, w[0], w[1])
			checkLatency(t, "p50", got.P50US, want.P50US, exactQuantile(sorted, 0.50))
			checkLatency(t, "p90", got.P90US, want.P90US, exactQuantile(sorted, 0.90))
			checkLatency(t, "p99", got.P99US, want.P99US, exactQuantile(sorted, 0.99))
			if got.Count != want.Count {
				t.Fatalf("latency counts: clickhouse %d, embedded %d", got.Count, want.Count)
			}
		}
	}
}

// TestClickHouseHourlyRollup checks the queries that combine the hourly
// and per-second tables: windows over many hours, aligned to the hour or
// not, and timelines whose steps are whole hours, straddle hours, or are
// shorter than one.
func TestClickHouseHourlyRollup(t *testing.T) {
	c := newTestClickHouse(t, clickhouseAddr(t), ClickHouseConfig{})
	r := mrand.New(mrand.NewPCG(33, 34))
	const span = 30 * time.Hour
	events := drawEvents(r, 20000, span)
	for i := 0; i < len(events); i += 5000 {
		if err := c.Insert(context.Background(), events[i:min(i+5000, len(events))]); err != nil {
			t.Fatal(err)
		}
	}
	e, _ := OpenEmbedded("")
	defer e.Close()
	if err := e.Insert(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	windows := [][2]time.Time{
		{base, base.Add(span)},                             // whole hours
		{base.Add(-time.Hour), base.Add(span + time.Hour)}, // beyond the data
		{base.Add(17*time.Minute + 3*time.Second), base.Add(29*time.Hour + 41*time.Second)}, // ragged edges
		{base.Add(90 * time.Minute), base.Add(4*time.Hour + 30*time.Minute)},                // half hours
		{base.Add(10 * time.Minute), base.Add(50 * time.Minute)},                            // inside one hour
		{base.Add(59 * time.Minute), base.Add(61 * time.Minute)},                            // across one boundary
	}
	for _, w := range windows {
		checkQueries(t, c, events, 1, w[0], w[1], clickhouseMid)
		for _, step := range []time.Duration{time.Hour, 2 * time.Hour, 90 * time.Minute, 7 * time.Minute, 25 * time.Hour} {
			got, err1 := c.Timeline(ctx, 1, w[0], w[1], step)
			want, err2 := e.Timeline(ctx, 1, w[0], w[1], step)
			if err1 != nil || err2 != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("Timeline(%v, %v, %v): clickhouse %v (%v), embedded %v (%v)", w[0], w[1], step, got, err1, want, err2)
			}
		}
		got, err1 := c.Summary(ctx, 1, w[0], w[1])
		want, err2 := e.Summary(ctx, 1, w[0], w[1])
		got.LatencyP50US, got.LatencyP99US = want.LatencyP50US, want.LatencyP99US
		if err1 != nil || err2 != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("Summary(%v, %v): clickhouse %+v (%v), embedded %+v (%v)", w[0], w[1], got, err1, want, err2)
		}
	}
}

// orZero returns t's second, or def for a zero time.
func orZero(t time.Time, def int64) time.Time {
	if t.IsZero() {
		return time.Unix(def, 0)
	}
	return t
}

// checkLatency checks both stores' estimates of one percentile against the
// exact value: ClickHouse within 1/64, the embedded store within 12.5%.
func checkLatency(t *testing.T, what string, ch, emb, exact int64) {
	t.Helper()
	if math.Abs(float64(ch-exact)) > float64(exact)/64 || math.Abs(float64(emb-exact)) > float64(exact)/8 {
		t.Fatalf("%s: clickhouse %d, embedded %d, exact %d", what, ch, emb, exact)
	}
}

func TestClickHouseFoldsGroups(t *testing.T) {
	c := newTestClickHouse(t, clickhouseAddr(t), ClickHouseConfig{})
	var events []lottery.Event
	for i := range MaxGroups + 50 {
		e := lottery.Event{At: base, ActivityID: 1, Outcome: lottery.OutcomeWin, AwardID: fmt.Sprintf("award-%04d", i), Module: fmt.Sprintf("m@%04d", i)}
		for range 1 + i%3 {
			events = append(events, e)
		}
	}
	if err := c.Insert(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	awards, err := c.Awards(ctx, 1, base, base.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	mods, err := c.Modules(ctx, 1, base, base.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := c.Summary(ctx, 1, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var a, m, s int64
	for _, g := range awards {
		a += g.Count
	}
	for _, g := range mods {
		m += g.Draws
	}
	for _, n := range sum.Awards {
		s += n
	}
	n := int64(len(events))
	if len(awards) != MaxGroups || len(mods) != MaxGroups || len(sum.Awards) != MaxGroups || a != n || m != n || s != n {
		t.Fatalf("awards %d (%d draws), modules %d (%d), summary awards %d (%d); want %d groups each and all %d draws",
			len(awards), a, len(mods), m, len(sum.Awards), s, MaxGroups, n)
	}
}

// flakyStore fails every Insert while down is set, as a store that cannot
// be reached would.
type flakyStore struct {
	Store
	down atomic.Bool
}

func (f *flakyStore) Insert(ctx context.Context, events []lottery.Event) error {
	if f.down.Load() {
		return fmt.Errorf("%w: simulated outage", lottery.ErrUnavailable)
	}
	return f.Store.Insert(ctx, events)
}

// outageDrill runs a sink into store through an outage: events flow, then
// down() cuts the store off while more events than the sink holds are
// recorded, then up() restores it. The sink must buffer up to its capacity,
// count the rest as dropped, never block, and resume by itself; at the end
// the store holds exactly the events the sink says it flushed.
func outageDrill(t *testing.T, c *ClickHouse, store Store, down, up func()) {
	const capacity = 1000
	// Few, big batches: a ClickHouse insert costs tens of milliseconds.
	s := NewSink(store, SinkConfig{Capacity: capacity, BatchSize: 500, FlushEvery: 5 * time.Millisecond, RetryMin: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	stop := runSink(t, s)
	at := time.Now().Truncate(time.Second)
	record := func(from, to int) {
		t.Helper()
		start := time.Now()
		for i := from; i < to; i++ {
			s.Record(lottery.Event{At: at, ActivityID: 7, UserID: "u", Outcome: lottery.OutcomeLose, LatencyUS: 100, Seed: uint64(i)})
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("recording %d events took %v: Record blocked", to-from, d)
		}
	}
	record(0, 500)
	eventually(t, "first events stored", func() bool { return s.Stats().Flushed == 500 })

	down()
	record(500, 600) // the flusher takes these and fails on them
	eventually(t, "a failed flush", func() bool { return s.Stats().FlushErrors > 0 })
	record(600, 3500)
	st := s.Stats()
	if st.Buffered != capacity || st.Dropped != 3000-capacity || st.Flushed != 500 {
		t.Fatalf("during the outage: %+v; want %d buffered, %d dropped", st, capacity, 3000-capacity)
	}

	up()
	eventually(t, "the sink to resume", func() bool { return s.Stats().Flushed == 500+capacity })
	record(3500, 4000)
	eventually(t, "new events stored", func() bool { return s.Stats().Flushed == 500+capacity+500 })
	stop()
	st = s.Stats()
	if st.Recorded != 4000 || st.Recorded != st.Flushed+st.Dropped || st.Buffered != 0 {
		t.Fatalf("after the drill: %+v", st)
	}
	sum, err := c.Summary(context.Background(), 7, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Draws != int64(st.Flushed) {
		t.Fatalf("ClickHouse holds %d events, the sink flushed %d: lost or duplicated", sum.Draws, st.Flushed)
	}
}

func TestSinkIntoClickHouseOutage(t *testing.T) {
	c := newTestClickHouse(t, clickhouseAddr(t), ClickHouseConfig{})
	f := &flakyStore{Store: c}
	outageDrill(t, c, f, func() { f.down.Store(true) }, func() { f.down.Store(false) })
}

// TestClickHouseUnreachable cuts the real connection: the store talks to
// ClickHouse through a TCP proxy that the test stops (connections refused)
// and restarts on the same port.
func TestClickHouseUnreachable(t *testing.T) {
	p := startProxy(t, clickhouseAddr(t))
	c := newTestClickHouse(t, p.addr, ClickHouseConfig{DialTimeout: 500 * time.Millisecond, QueryTimeout: 5 * time.Second})
	down := func() {
		p.stop()
		// Insert itself fails fast, with ErrUnavailable, on a pooled
		// connection that was cut and on a new one that is refused.
		for range 2 {
			start := time.Now()
			err := c.Insert(context.Background(), []lottery.Event{{At: time.Now(), ActivityID: 8, Outcome: lottery.OutcomeLose}})
			if !errors.Is(err, lottery.ErrUnavailable) || time.Since(start) > time.Second {
				t.Fatalf("Insert with ClickHouse unreachable: %v after %v; want ErrUnavailable within 1s", err, time.Since(start))
			}
		}
	}
	outageDrill(t, c, c, down, func() { p.start(t) })
}

// TestClickHouseLostAnswer: the server stores a batch but its answer never
// arrives, so Insert fails; the Sink's retry of the same events must not
// store them twice.
func TestClickHouseLostAnswer(t *testing.T) {
	p := startProxy(t, clickhouseAddr(t))
	c := newTestClickHouse(t, p.addr, ClickHouseConfig{DialTimeout: 500 * time.Millisecond, QueryTimeout: 5 * time.Second})
	direct := newTestClickHouse(t, clickhouseAddr(t), ClickHouseConfig{Database: c.cfg.Database})
	count := func() uint64 {
		var n uint64
		if err := direct.conn.QueryRow(context.Background(), direct.sql("SELECT count() FROM {db}.draw_events")).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	events := make([]lottery.Event, 300)
	for i := range events {
		events[i] = lottery.Event{At: time.Now(), ActivityID: 9, UserID: fmt.Sprint("u", i), Outcome: lottery.OutcomeWin, AwardID: "a", Seed: uint64(i)}
	}
	p.mute.Store(true)
	if err := c.Insert(context.Background(), events); err == nil {
		t.Fatal("Insert succeeded though its answer was discarded")
	}
	p.mute.Store(false)
	if n := count(); n != uint64(len(events)) {
		t.Fatalf("after the muted insert the table holds %d rows, want %d (the server should have stored the batch)", n, len(events))
	}
	if err := c.Insert(context.Background(), events); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if n := count(); n != uint64(len(events)) {
		t.Fatalf("after the retry the table holds %d rows, want %d: the batch was stored twice", n, len(events))
	}
	// A different batch with the same events later is a new batch.
	if err := c.Insert(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2*uint64(len(events)) {
		t.Fatalf("a second, successful batch: %d rows, want %d", n, 2*len(events))
	}
}

func TestOpenClickHouseUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	for _, addr := range []string{closed, "192.0.2.1:9000"} { // refused; TEST-NET-1, never routed
		start := time.Now()
		_, err := OpenClickHouse(context.Background(), ClickHouseConfig{Addr: addr, DialTimeout: 300 * time.Millisecond, QueryTimeout: time.Second})
		if !errors.Is(err, lottery.ErrUnavailable) || time.Since(start) > 3*time.Second {
			t.Fatalf("OpenClickHouse(%s) = %v after %v; want ErrUnavailable, fast", addr, err, time.Since(start))
		}
	}
}

// proxy forwards TCP connections from addr to a target until stopped.
type proxy struct {
	addr, target string
	mu           sync.Mutex
	l            net.Listener
	conns        map[net.Conn]bool
	wg           sync.WaitGroup
	// mute, while set, makes the proxy discard what the server sends and
	// close the connection a second after the first discarded byte: the
	// server does the work, the client never hears the answer.
	mute atomic.Bool
}

func startProxy(t *testing.T, target string) *proxy {
	p := &proxy{addr: "127.0.0.1:0", target: target}
	p.start(t)
	t.Cleanup(p.stop)
	return p
}

// start listens on p.addr (the port of the first start) and serves.
func (p *proxy) start(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.l, p.addr, p.conns = l, l.Addr().String(), map[net.Conn]bool{}
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", p.target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			if p.l != l { // stopped meanwhile
				p.mu.Unlock()
				in.Close()
				out.Close()
				return
			}
			p.conns[in], p.conns[out] = true, true
			p.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			p.wg.Go(func() { pipe(out, in) })
			p.wg.Go(func() {
				buf := make([]byte, 32<<10)
				var cut *time.Timer
				for {
					n, err := out.Read(buf)
					if n > 0 && p.mute.Load() {
						if cut == nil {
							cut = time.AfterFunc(time.Second, func() { in.Close(); out.Close() })
						}
						continue
					}
					if n > 0 {
						if _, werr := in.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				in.Close()
				out.Close()
			})
		}
	})
}

// stop closes the listener and every connection and waits for the
// proxy's goroutines.
func (p *proxy) stop() {
	p.mu.Lock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// BenchmarkClickHouseInsert measures Insert of sink-sized batches.
func BenchmarkClickHouseInsert(b *testing.B) {
	c := newTestClickHouse(b, clickhouseAddr(b), ClickHouseConfig{})
	r := mrand.New(mrand.NewPCG(41, 42))
	for _, n := range []int{4096, 65536} {
		events := drawEvents(r, n, 10*time.Second)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if err := c.Insert(context.Background(), events); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// bigEvents calls fn with n events of activity 1 spread over span from base,
// generated in chunks so that 10 million fit in little memory: a flash
// sale's mix of outcomes, five awards, four module versions and an
// exponential latency with a slow tail.
func bigEvents(n int, span time.Duration, fn func([]lottery.Event)) {
	r := mrand.New(mrand.NewPCG(51, 52))
	chunk := make([]lottery.Event, 0, 100_000)
	step := span / time.Duration(n)
	for i := range n {
		e := lottery.Event{
			At:         base.Add(time.Duration(i) * step),
			ActivityID: 1,
			UserID:     "user-" + fmt.Sprint(r.IntN(1_000_000)),
			Mode:       lottery.ModeSingle,
			Module:     modules[r.IntN(len(modules)-1)],
			LatencyUS:  int64(r.ExpFloat64() * 800),
			Node:       int64(i % 4),
			Seed:       r.Uint64(),
		}
		switch x := r.IntN(100); {
		case x < 10:
			e.Outcome, e.AwardID = lottery.OutcomeWin, awards[r.IntN(len(awards))]
		case x < 80:
			e.Outcome = lottery.OutcomeLose
		case x < 90:
			e.Outcome = lottery.OutcomeSoldOut
		case x < 99:
			e.Outcome = lottery.OutcomeLimitReached
		default:
			e.Outcome = lottery.OutcomeError
		}
		if r.IntN(100) == 0 {
			e.LatencyUS = r.Int64N(200_000)
		}
		if chunk = append(chunk, e); len(chunk) == cap(chunk) {
			fn(chunk)
			chunk = chunk[:0]
		}
	}
	if len(chunk) > 0 {
		fn(chunk)
	}
}

// benchQueries times every named query over the whole of bigEvents' span,
// the timeline in at most 1100 steps and in as many as MaxPoints allows,
// and a timeline of the last hour in one-second steps (a live dashboard).
func benchQueries(b *testing.B, q Querier, span time.Duration) {
	ctx := context.Background()
	from, to := base, base.Add(span)
	step := 10 * time.Second
	if span/step > 1100 {
		step = (span / 1100).Truncate(time.Hour) + time.Hour
	}
	// The worst timelines: the whole window, not on a whole minute, in the
	// shortest step allowed (whole minutes from a minute up, under a
	// minute only within MaxFineWindow, MaxPoints steps at most), and the
	// last MaxFineWindow in its shortest step, read per second.
	finest := (span + MaxPoints*time.Second - 1) / (MaxPoints * time.Second) * time.Second
	if finest >= time.Minute || span > MaxFineWindow {
		finest = max(time.Minute, (finest + time.Minute - 1).Truncate(time.Minute))
	}
	fine := (MaxFineWindow + MaxPoints*time.Second - 1) / (MaxPoints * time.Second) * time.Second
	for _, bc := range []struct {
		name string
		run  func() error
	}{
		{"summary", func() error { _, err := q.Summary(ctx, 1, from, to); return err }},
		{"awards", func() error { _, err := q.Awards(ctx, 1, from, to); return err }},
		{"timeline", func() error { _, err := q.Timeline(ctx, 1, from, to, step); return err }},
		{"timeline_1s_last_hour", func() error { _, err := q.Timeline(ctx, 1, to.Add(-time.Hour), to, time.Second); return err }},
		{"timeline_finest", func() error { _, err := q.Timeline(ctx, 1, from.Add(time.Second), to, finest); return err }},
		{"timeline_finest_last_6h", func() error {
			_, err := q.Timeline(ctx, 1, to.Add(-MaxFineWindow+time.Second), to.Add(time.Second), fine)
			return err
		}},
		{"latency", func() error { _, err := q.Latency(ctx, 1, from, to); return err }},
		{"modules", func() error { _, err := q.Modules(ctx, 1, from, to); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if err := bc.run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/query")
		})
	}
}

// bigN events are loaded in three shapes: a flash sale (three hours, about
// 926 draws a second), a day (about 116 a second: a row per second and
// combination, the most per-second rows a fine timeline may read), and a
// month over the longest window a query accepts (about 3.7 a second).
const bigN = 10_000_000

var bigShapes = []struct {
	name string
	span time.Duration
}{
	{"flash_3h", 3 * time.Hour},
	{"day_24h", 24 * time.Hour},
	{"month_31d", MaxWindow},
}

// BenchmarkClickHouse10M inserts ten million events into ClickHouse and
// times each named query over all of them; the goal is under 200 ms each.
func BenchmarkClickHouse10M(b *testing.B) {
	if testing.Short() {
		b.Skip("inserts 10 million events")
	}
	addr := clickhouseAddr(b)
	for _, shape := range bigShapes {
		b.Run(shape.name, func(b *testing.B) {
			c := newTestClickHouse(b, addr, ClickHouseConfig{QueryTimeout: time.Minute})
			start := time.Now()
			bigEvents(bigN, shape.span, func(events []lottery.Event) {
				if err := c.Insert(context.Background(), events); err != nil {
					b.Fatal(err)
				}
			})
			d := time.Since(start)
			b.Logf("inserted %d events in %v: %.0f rows/s (batches of 100,000)", bigN, d.Round(time.Millisecond), bigN/d.Seconds())
			if sum, err := c.Summary(context.Background(), 1, time.Time{}, time.Time{}); err != nil || sum.Draws != bigN {
				b.Fatalf("summary after the load: %d draws, %v", sum.Draws, err)
			}
			benchQueries(b, c, shape.span)
		})
	}
}

// BenchmarkEmbedded10M does the same with the embedded store.
func BenchmarkEmbedded10M(b *testing.B) {
	if testing.Short() {
		b.Skip("inserts 10 million events")
	}
	for _, shape := range bigShapes {
		b.Run(shape.name, func(b *testing.B) {
			e, _ := OpenEmbedded("")
			defer e.Close()
			start := time.Now()
			bigEvents(bigN, shape.span, func(events []lottery.Event) {
				for i := 0; i < len(events); i += DefaultBatchSize {
					if err := e.Insert(context.Background(), events[i:min(i+DefaultBatchSize, len(events))]); err != nil {
						b.Fatal(err)
					}
				}
			})
			d := time.Since(start)
			b.Logf("inserted %d events in %v: %.0f rows/s", bigN, d.Round(time.Millisecond), bigN/d.Seconds())
			benchQueries(b, e, shape.span)
		})
	}
}
