package orders_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/orders"
	"github.com/flashlottery/lottery/orders/orderstest"
	"github.com/go-sql-driver/mysql"
)

func openMySQL(t testing.TB, cfg orders.MySQLConfig) *orders.MySQL {
	t.Helper()
	s, err := orders.OpenMySQL(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMySQLContract runs the contract suite against MariaDB (or MySQL), with
// the seed's 2 x 4 router over two shard databases on the test server, each
// subtest on databases of its own.
func TestMySQLContract(t *testing.T) {
	orders.MySQLTestServer(t)
	orderstest.Run(t, func(t *testing.T) orderstest.Store {
		s := openMySQL(t, orders.MySQLTestConfig(t, seedRouter(t)))
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		return s
	})
}

func TestMySQLReopen(t *testing.T) {
	cfg := orders.MySQLTestConfig(t, seedRouter(t))
	ctx := t.Context()
	first := true
	s := testReopen(t, 4, func() reopenStore {
		s := openMySQL(t, cfg)
		if first {
			first = false
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("second Migrate: %v", err)
			}
		}
		return s
	})
	defer s.Close()

	// Another shape, or the shard databases swapped, is refused: users would
	// be routed away from their data.
	other := cfg
	other.Router, _ = orders.NewRouter(2, 8)
	if s2, err := orders.OpenMySQL(ctx, other); !errors.Is(err, lottery.ErrInvalid) {
		if s2 != nil {
			s2.Close()
		}
		t.Fatalf("OpenMySQL with another shape: %v, want ErrInvalid", err)
	}
	swapped := cfg
	swapped.Shards = []string{cfg.Shards[1], cfg.Shards[0]}
	if s2, err := orders.OpenMySQL(ctx, swapped); !errors.Is(err, lottery.ErrInvalid) {
		if s2 != nil {
			s2.Close()
		}
		t.Fatalf("OpenMySQL with swapped shards: %v, want ErrInvalid", err)
	}
}

// TestMySQLUnreachable checks that a server nobody listens on fails the
// open fast, as ErrUnavailable.
func TestMySQLUnreachable(t *testing.T) {
	dsn := func(db string) string { return "root@tcp(127.0.0.1:1)/" + db }
	cfg := orders.MySQLConfig{Base: dsn("lottery"), Shards: []string{dsn("lottery_00"), dsn("lottery_01")}, Router: seedRouter(t)}
	start := time.Now()
	s, err := orders.OpenMySQL(t.Context(), cfg)
	if err == nil {
		s.Close()
		t.Fatal("OpenMySQL on 127.0.0.1:1 succeeded")
	}
	if !errors.Is(err, lottery.ErrUnavailable) {
		t.Fatalf("OpenMySQL on 127.0.0.1:1: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("OpenMySQL on 127.0.0.1:1 took %v", d)
	}
}

func TestMySQLConfigValidate(t *testing.T) {
	r := seedRouter(t)
	good := orders.MySQLConfig{
		Base:   "u:p@tcp(db:3306)/lottery",
		Shards: []string{"u:p@tcp(db:3306)/lottery_00", "u:p@tcp(db2:3306)/lottery_00"},
		Router: r,
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(good) = %v", err)
	}
	tests := []struct {
		name string
		edit func(c *orders.MySQLConfig)
		want string
	}{
		{"zero router", func(c *orders.MySQLConfig) { c.Router = orders.Router{} }, "router 0x0"},
		{"no base", func(c *orders.MySQLConfig) { c.Base = "" }, "base DSN is empty"},
		{"base without database", func(c *orders.MySQLConfig) { c.Base = "u:p@tcp(db:3306)/" }, "base DSN names no database"},
		{"bad DSN", func(c *orders.MySQLConfig) { c.Shards[0] = "u:secret@tcp(db:3306)" }, "shards[0] DSN"},
		{"shard count", func(c *orders.MySQLConfig) { c.Shards = c.Shards[:1] }, "1 shard DSNs for a router of 2 databases"},
		{"same database twice", func(c *orders.MySQLConfig) { c.Shards[1] = c.Shards[0] }, "name the same database"},
		{"negative pool", func(c *orders.MySQLConfig) { c.MaxOpenConns = -1 }, "maxOpenConns"},
		{"negative timeout", func(c *orders.MySQLConfig) { c.Timeouts.Batch = -time.Second }, "timeouts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			c.Shards = append([]string(nil), good.Shards...)
			tt.edit(&c)
			err := c.Validate()
			if !errors.Is(err, lottery.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("Validate echoes a password: %v", err)
			}
			if _, err := orders.OpenMySQL(t.Context(), c); !errors.Is(err, lottery.ErrInvalid) {
				t.Fatalf("OpenMySQL = %v, want ErrInvalid", err)
			}
		})
	}
	// Every problem is reported at once.
	err := orders.MySQLConfig{Router: r, MaxOpenConns: -1}.Validate()
	for _, want := range []string{"base DSN is empty", "0 shard DSNs", "maxOpenConns"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(several problems) = %v; want it to mention %q", err, want)
		}
	}
}

// TestMySQLSchema checks the tables Migrate makes: InnoDB, the sharded
// tables in every shard database with the compensation scan's index, and
// byte-exact user ids (two ids that a case- or pad-insensitive collation
// would merge stay two users).
func TestMySQLSchema(t *testing.T) {
	cfg := orders.MySQLTestConfig(t, seedRouter(t))
	s := openMySQL(t, cfg)
	defer s.Close()
	names := orders.MySQLTestDatabases(t, cfg)
	db := orders.MySQLTestServerDB(t)
	ctx := t.Context()
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, table := range []string{"activity", "strategy", "strategy_detail", "award", "meta"} {
		if n := count(`SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND ENGINE = 'InnoDB'`,
			names[0], table); n != 1 {
			t.Errorf("base table %s: %d InnoDB tables", table, n)
		}
	}
	for _, shard := range names[1:] {
		// One take and one count table per database, as the seed; the
		// orders split over tbCount tables.
		tables := []string{orders.TableTake, orders.TableTakeCount, "meta"}
		for tb := range 4 {
			tables = append(tables, orders.ShardTable(orders.TableExport, tb))
		}
		if n := count(`SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?`, shard); n != len(tables) {
			t.Errorf("%s has %d tables, want %d (%v)", shard, n, len(tables), tables)
		}
		for _, table := range tables {
			if n := count(`SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND ENGINE = 'InnoDB'`,
				shard, table); n != 1 {
				t.Errorf("%s.%s: %d InnoDB tables", shard, table, n)
			}
		}
		for tb := range 4 {
			export := orders.ShardTable(orders.TableExport, tb)
			var cols string
			if err := db.QueryRowContext(ctx, `SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) FROM information_schema.STATISTICS
				WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'idx_mq'`, shard, export).Scan(&cols); err != nil || cols != "mq_state,order_time" {
				t.Errorf("%s.%s idx_mq = %q, %v; want mq_state,order_time", shard, export, cols, err)
			}
		}
	}
	ids, _ := lottery.NewSnowflake(5)
	for _, u := range []string{"bob", "Bob", "bob "} {
		tk := &lottery.Take{ID: ids.Next(), UserID: u, ActivityID: 1, StrategyID: 7}
		if err := s.Take(ctx, tk, 1); err != nil {
			t.Fatalf("Take(%q): %v", u, err)
		}
	}
	if u, err := s.Usage(ctx, 1); err != nil || u.Takes != 3 {
		t.Fatalf("Usage = %+v, %v; want 3 takes of 3 users", u, err)
	}
	// A value the column refuses is bad input, not a store failure.
	long := &lottery.Take{ID: ids.Next(), UserID: strings.Repeat("x", 200), ActivityID: 1}
	if err := s.Take(ctx, long, 1); !errors.Is(err, lottery.ErrInvalid) {
		t.Fatalf("Take(200-byte user id) = %v, want ErrInvalid", err)
	}
}

// TestMySQLReconnect kills the store's connections on the server (only
// those on this test's databases): the next calls reconnect and succeed.
func TestMySQLReconnect(t *testing.T) {
	cfg := orders.MySQLTestConfig(t, seedRouter(t))
	s := openMySQL(t, cfg)
	defer s.Close()
	ctx := t.Context()
	ids, _ := lottery.NewSnowflake(6)
	take := func(user string) error {
		return s.Take(ctx, &lottery.Take{ID: ids.Next(), UserID: user, ActivityID: 1, StrategyID: 7}, 5)
	}
	for i := range 8 {
		if err := take("r" + strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	db := orders.MySQLTestServerDB(t)
	names := orders.MySQLTestDatabases(t, cfg)
	rows, err := db.QueryContext(ctx, `SELECT ID FROM information_schema.PROCESSLIST WHERE DB IN (?, ?, ?)`, names[0], names[1], names[2])
	if err != nil {
		t.Fatal(err)
	}
	var threads []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		threads = append(threads, id)
	}
	rows.Close()
	if len(threads) == 0 {
		t.Fatal("no connections of the store found")
	}
	for _, id := range threads {
		if _, err := db.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatInt(id, 10)); err != nil {
			var me *mysql.MySQLError
			if !errors.As(err, &me) || me.Number != 1094 { // 1094: already gone
				t.Fatal(err)
			}
		}
	}
	for i := range 8 {
		if err := take("r" + strconv.Itoa(i)); err != nil {
			t.Fatalf("Take after the connections were killed: %v", err)
		}
		if us, err := s.UserState(ctx, "r"+strconv.Itoa(i), 1); err != nil || us.Left != 3 {
			t.Fatalf("UserState after the connections were killed = %+v, %v", us, err)
		}
	}
}

// BenchmarkMySQLTakeDraw is BenchmarkTakeDraw on MariaDB: one Take and one
// winning Draw (four rows written through two group commits) per op, each
// op a new user, from 64 goroutines per CPU.
func BenchmarkMySQLTakeDraw(b *testing.B) {
	s := openMySQL(b, orders.MySQLTestConfig(b, seedRouter(b)))
	defer s.Close()
	benchTakeDraw(b, s)
}

// takeDrawStore is what benchTakeDraw drives.
type takeDrawStore interface {
	lottery.Orders
	Take(ctx context.Context, t *lottery.Take, takeCount int) error
	WriteStats() orders.WriteStats
}

func benchTakeDraw(b *testing.B, s takeDrawStore) {
	ids, _ := lottery.NewSnowflake(3)
	award := lottery.Award{ID: "A", Type: lottery.AwardCoupon, Name: "coupon", Content: "10 off"}
	var users atomic.Int64
	// Many concurrent callers, as a server under load has: group commit
	// batches only what is waiting.
	b.SetParallelism(64)
	b.ReportAllocs()
	before := s.WriteStats()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := b.Context()
		for pb.Next() {
			user := "bench-" + strconv.FormatInt(users.Add(1), 10)
			tk := &lottery.Take{ID: ids.Next(), UserID: user, ActivityID: 1, StrategyID: 7}
			if err := s.Take(ctx, tk, 1); err != nil {
				b.Error(err)
				return
			}
			o := &lottery.Order{ID: ids.Next(), Mode: lottery.ModeSingle, GrantType: lottery.GrantImmediate,
				Award: award, Module: "native", Seed: uint64(tk.ID)}
			if err := s.Draw(ctx, tk, o); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "draws/s")
	after := s.WriteStats()
	if c := after.Commits - before.Commits; c > 0 {
		b.ReportMetric(float64(after.Writes-before.Writes)/float64(c), "writes/commit")
	}
}

// TestMySQLBlindWrites: a batch of first takes is written without reading
// the users' count rows; a user who draws again makes that write fail on
// the existing row, and the batch is read and written again with the
// right outcome, the next batches reading first.
func TestMySQLBlindWrites(t *testing.T) {
	s := openMySQL(t, orders.MySQLTestConfig(t, seedRouter(t)))
	defer s.Close()
	ctx := t.Context()
	ids, _ := lottery.NewSnowflake(9)
	award := lottery.Award{ID: "A", Type: lottery.AwardCoupon, Name: "coupon", Content: "10 off"}
	takeDraw := func(user string, takeCount int) error {
		tk := &lottery.Take{ID: ids.Next(), UserID: user, ActivityID: 1, StrategyID: 7}
		o := &lottery.Order{ID: ids.Next(), Mode: lottery.ModeSingle, GrantType: lottery.GrantImmediate, Award: award, Module: "native", Seed: 1}
		return s.TakeDraw(ctx, tk, takeCount, o)
	}
	var wg sync.WaitGroup
	errs := make([]error, 32)
	for i := range errs {
		wg.Go(func() { errs[i] = takeDraw("blind-"+strconv.Itoa(i), 1) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	st := s.WriteStats()
	if st.Blind == 0 || st.BlindMisses != 0 {
		t.Fatalf("first takes: %+v, want blind writes and no miss", st)
	}

	// A second take of a user with two: the blind insert meets the count
	// row, and the read path takes the second.
	if err := takeDraw("again", 2); err != nil {
		t.Fatal(err)
	}
	if err := takeDraw("again", 2); err != nil {
		t.Fatalf("second take of two: %v", err)
	}
	if st := s.WriteStats(); st.BlindMisses != 1 {
		t.Fatalf("after a repeat user: %+v, want one miss", st)
	}
	if us, err := s.UserState(ctx, "again", 1); err != nil || us.Left != 0 {
		t.Fatalf("UserState = %+v, %v; want none left of 2", us, err)
	}
	// The next batches read first: a third take is refused by the read,
	// with no blind attempt.
	blind := s.WriteStats().Blind
	if err := takeDraw("again", 2); !errors.Is(err, lottery.ErrLimitReached) {
		t.Fatalf("third take of two: %v, want ErrLimitReached", err)
	}
	if st := s.WriteStats(); st.Blind != blind || st.BlindMisses != 1 {
		t.Fatalf("after a miss: %+v, want no blind write (was %d)", st, blind)
	}
	// Every prize has its order: 32 + 2.
	var orders int
	for i := range 32 {
		os, err := s.UserOrders(ctx, "blind-"+strconv.Itoa(i), 10)
		if err != nil {
			t.Fatal(err)
		}
		orders += len(os)
	}
	if os, err := s.UserOrders(ctx, "again", 10); err != nil || len(os) != 2 {
		t.Fatalf("orders of the repeat user: %d, %v; want 2", len(os), err)
	}
	if orders != 32 {
		t.Fatalf("%d orders of the first takes, want 32", orders)
	}
}

// TestMySQLLockWaitRetry holds a user's count row from another connection,
// as another edge would: the take's first attempt waits LockWait, fails
// with a lock wait timeout, and the batch runs again once the row is free.
func TestMySQLLockWaitRetry(t *testing.T) {
	cfg := orders.MySQLTestConfig(t, seedRouter(t))
	cfg.Timeouts.LockWait = time.Second
	s := openMySQL(t, cfg)
	defer s.Close()
	ctx := t.Context()
	ids, _ := lottery.NewSnowflake(7)
	const user = "locked-user"
	if err := s.Take(ctx, &lottery.Take{ID: ids.Next(), UserID: user, ActivityID: 1}, 5); err != nil {
		t.Fatal(err)
	}
	dbi, _ := s.Router().Route(user)
	tx := orders.HoldCountRow(t, cfg.Shards[dbi], user, 4)
	before := s.WriteStats().Retries
	done := make(chan error, 1)
	go func() { done <- s.Take(ctx, &lottery.Take{ID: ids.Next(), UserID: user, ActivityID: 1}, 5) }()
	time.Sleep(1500 * time.Millisecond)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Take after the row was freed: %v", err)
	}
	if r := s.WriteStats().Retries - before; r < 1 {
		t.Fatalf("%d retries, want at least 1", r)
	}
	if us, err := s.UserState(ctx, user, 1); err != nil || us.Left != 3 {
		t.Fatalf("UserState = %+v, %v; want left 3", us, err)
	}
}

// proxy forwards TCP connections to a server, and can go down (refusing
// connections and cutting the open ones) or hang (forwarding nothing), so a
// test can fail the server under a store without touching the server.
type proxy struct {
	t      testing.TB
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	hung   bool
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	p := &proxy{t: t, target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.down(); p.wg.Wait() })
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[u] = true, true
			p.mu.Unlock()
			p.wg.Go(func() { p.pipe(u, c) })
			p.wg.Go(func() { p.pipe(c, u) })
		}
	})
}

// pipe copies src to dst until either closes; while hung it drops the bytes.
func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		hung := p.hung
		p.mu.Unlock()
		if hung {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// down stops listening and cuts every connection: the server is gone.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// up listens again on the same address: the server is back.
func (p *proxy) up() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.hung = false
	p.mu.Unlock()
	p.serve(ln)
}

// hang keeps the connections open but forwards nothing.
func (p *proxy) hang() {
	p.mu.Lock()
	p.hung = true
	p.mu.Unlock()
}

// proxied returns cfg with every DSN going through the proxy.
func proxied(t testing.TB, cfg orders.MySQLConfig, p *proxy) orders.MySQLConfig {
	via := func(dsn string) string {
		mc, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		mc.Addr = p.addr
		return mc.FormatDSN()
	}
	out := cfg
	out.Base = via(cfg.Base)
	out.Shards = nil
	for _, s := range cfg.Shards {
		out.Shards = append(out.Shards, via(s))
	}
	return out
}

// TestMySQLServerDown fails the server under an open store: takes and reads
// fail fast with ErrUnavailable and write nothing, and the store serves
// again once the server is back, with no reopen.
func TestMySQLServerDown(t *testing.T) {
	cfg := orders.MySQLTestConfig(t, seedRouter(t))
	p := newProxy(t, orders.MySQLTestServer(t).Addr)
	s := openMySQL(t, proxied(t, cfg, p))
	defer s.Close()
	ctx := t.Context()
	ids, _ := lottery.NewSnowflake(8)
	take := func(user string) error {
		return s.Take(ctx, &lottery.Take{ID: ids.Next(), UserID: user, ActivityID: 1, StrategyID: 7}, 5)
	}
	if err := take("before"); err != nil {
		t.Fatal(err)
	}

	p.down()
	start := time.Now()
	if err := take("while-down"); !errors.Is(err, lottery.ErrUnavailable) {
		t.Fatalf("Take with the server down: %v, want ErrUnavailable", err)
	}
	if _, err := s.UserState(ctx, "before", 1); !errors.Is(err, lottery.ErrUnavailable) {
		t.Fatalf("UserState with the server down: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("failing with the server down took %v", d)
	} else {
		t.Logf("a take and a read failed in %v with the server down", d)
	}

	p.up()
	if err := take("after"); err != nil {
		t.Fatalf("Take once the server is back: %v", err)
	}
	for user, want := range map[string]int{"before": 4, "while-down": -1, "after": 4} {
		if us, err := s.UserState(ctx, user, 1); err != nil || us.Left != want {
			t.Fatalf("UserState(%s) = %+v, %v; want left %d", user, us, err, want)
		}
	}
}

// TestMySQLServerHung makes the server stop answering on open connections:
// the timeouts turn a take and a read into ErrUnavailable instead of a hang.
func TestMySQLServerHung(t *testing.T) {
	cfg := orders.MySQLTestConfig(t, seedRouter(t))
	p := newProxy(t, orders.MySQLTestServer(t).Addr)
	pc := proxied(t, cfg, p)
	pc.Timeouts = orders.MySQLTimeouts{Read: 300 * time.Millisecond, Write: 300 * time.Millisecond, Batch: 500 * time.Millisecond}
	s := openMySQL(t, pc)
	defer s.Close()
	ctx := t.Context()
	ids, _ := lottery.NewSnowflake(9)
	if err := s.Take(ctx, &lottery.Take{ID: ids.Next(), UserID: "u", ActivityID: 1}, 5); err != nil {
		t.Fatal(err)
	}
	p.hang()
	start := time.Now()
	if err := s.Take(ctx, &lottery.Take{ID: ids.Next(), UserID: "u", ActivityID: 1}, 5); !errors.Is(err, lottery.ErrUnavailable) {
		t.Fatalf("Take on a hung server: %v, want ErrUnavailable", err)
	}
	if _, err := s.UserState(ctx, "u", 1); !errors.Is(err, lottery.ErrUnavailable) {
		t.Fatalf("UserState on a hung server: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("failing on a hung server took %v", d)
	} else {
		t.Logf("a take and a read failed in %v on a hung server", d)
	}
}
