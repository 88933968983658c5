package orders_test

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/orders"
	"github.com/flashlottery/lottery/orders/orderstest"
)

// seedRouter is the seed's 2 databases x 4 tables.
func seedRouter(t testing.TB) orders.Router {
	r, err := orders.NewRouter(2, 4)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func openSQLite(t testing.TB, dir string) *orders.SQLite {
	t.Helper()
	s, err := orders.OpenSQLite(dir, seedRouter(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSQLiteContract(t *testing.T) {
	orderstest.Run(t, func(t *testing.T) orderstest.Store {
		s := openSQLite(t, t.TempDir())
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		return s
	})
}

// seedFiles are the files of a SQLite store over the seed's 2 x 4.
var seedFiles = []string{"lottery.db", "lottery_00.db", "lottery_01.db"}

// eachFile opens each of seedFiles in dir with its own connection and
// passes it to fn.
func eachFile(t *testing.T, dir string, fn func(name string, db *sql.DB)) {
	t.Helper()
	for _, name := range seedFiles {
		db, err := sql.Open("sqlite", filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		fn(name, db)
		db.Close()
	}
}

func TestSQLiteFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openSQLite(t, dir)
	defer s.Close()
	for _, name := range seedFiles {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("missing %s: %v", name, err)
		}
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	// The router row names the layout: a binary of the earlier layout
	// checks for "2x4" and so refuses these files instead of splitting a
	// user's takes over two layouts.
	eachFile(t, dir, func(name string, db *sql.DB) {
		var router string
		err := db.QueryRow(`SELECT meta_value FROM meta WHERE meta_key = 'router'`).Scan(&router)
		if err != nil || router != "2x4/orders-split" {
			t.Errorf("%s records router %q (%v), want 2x4/orders-split", name, router, err)
		}
	})
}

func TestSQLiteReopen(t *testing.T) {
	dir := t.TempDir()
	s := testReopen(t, 2, func() reopenStore { return openSQLite(t, dir) })
	defer s.Close()

	// Another router shape is refused: users would lose their data.
	other, _ := orders.NewRouter(4, 4)
	if s2, err := orders.OpenSQLite(dir, other); !errors.Is(err, lottery.ErrInvalid) {
		if s2 != nil {
			s2.Close()
		}
		t.Fatalf("OpenSQLite with another shape: %v, want ErrInvalid", err)
	}
}

// TestSQLiteRefusesEarlierLayout opens databases written by the version
// that split takes and counts over tbCount tables (meta records the bare
// shape, no layout): refused with ErrInvalid, and no table created.
func TestSQLiteRefusesEarlierLayout(t *testing.T) {
	dir := t.TempDir()
	eachFile(t, dir, func(_ string, db *sql.DB) {
		for _, q := range []string{
			`CREATE TABLE meta (meta_key TEXT PRIMARY KEY, meta_value TEXT NOT NULL)`,
			`INSERT INTO meta VALUES ('router', '2x4')`,
			`CREATE TABLE user_take_activity_000 (take_id INTEGER PRIMARY KEY)`,
		} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
	})
	r, _ := orders.NewRouter(2, 4)
	s, err := orders.OpenSQLite(dir, r)
	if err == nil {
		s.Close()
	}
	if !errors.Is(err, lottery.ErrInvalid) || !strings.Contains(err.Error(), "earlier version") {
		t.Fatalf("OpenSQLite on the earlier layout: %v, want ErrInvalid naming the earlier version", err)
	}
	eachFile(t, dir, func(name string, db *sql.DB) {
		var tables int
		err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT IN ('meta', 'user_take_activity_000')`).Scan(&tables)
		if err != nil || tables != 0 {
			t.Errorf("%s: %d tables created by the refused open (%v)", name, tables, err)
		}
	})
}

// TestAuditFindsBrokenInvariants breaks one invariant per user behind the
// store's back (an order deleted, an award changed, a count row changed, a
// take set back to unused) and checks that the audit counts each once,
// with the orders spread over the seed's four order tables.
func TestAuditFindsBrokenInvariants(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := openSQLite(t, dir)
	strategy := &lottery.Strategy{ID: 7, Mode: lottery.ModeTotal, GrantType: lottery.GrantImmediate,
		Details: []lottery.StrategyDetail{{Award: lottery.Award{ID: "A", Type: lottery.AwardCoupon, Name: "a"}, AwardCount: 100, Rate: 1}}}
	act := &lottery.Activity{ID: 1, Name: "a", BeginAt: time.Unix(1000, 0).UTC(), EndAt: time.Unix(2000, 0).UTC(),
		StockCount: 100, StockSurplus: 100, TakeCount: 2, StrategyID: 7, State: lottery.StateEdit}
	if err := s.SaveActivity(ctx, act, strategy); err != nil {
		t.Fatal(err)
	}
	ids, _ := lottery.NewSnowflake(9)
	r := seedRouter(t)
	users := []string{"deleted-order", "other-award", "count-changed", "take-unused", "fine"}
	orderOf := map[string]int64{}
	takeOf := map[string]int64{}
	tables := map[int]bool{}
	for _, u := range users {
		tk := &lottery.Take{ID: ids.Next(), UserID: u, ActivityID: 1, StrategyID: 7}
		o := &lottery.Order{ID: ids.Next(), Mode: lottery.ModeTotal, GrantType: lottery.GrantImmediate, Award: strategy.Details[0].Award}
		if err := s.TakeDraw(ctx, tk, 2, o); err != nil {
			t.Fatal(err)
		}
		orderOf[u], takeOf[u] = o.ID, tk.ID
		_, tb := r.Route(u)
		tables[tb] = true
	}
	if len(tables) < 2 {
		t.Fatalf("the users' orders are all in one order table (%v): pick other users", tables)
	}
	if a, err := s.Audit(ctx, 1); err != nil || a.Err() != nil || a.Orders != 5 || a.WonTakes != 5 {
		t.Fatalf("audit before: %+v, %v", a, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	exec := func(user, query string, args ...any) {
		t.Helper()
		db, tb := r.Route(user)
		conn, err := sql.Open("sqlite", filepath.Join(dir, orders.ShardDatabase(db)+".db"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		query = strings.ReplaceAll(query, "{export}", orders.ShardTable(orders.TableExport, tb))
		if res, err := conn.Exec(query, args...); err != nil {
			t.Fatalf("%s: %v", query, err)
		} else if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("%s: %d rows", query, n)
		}
	}
	exec("deleted-order", `DELETE FROM {export} WHERE order_id = ?`, orderOf["deleted-order"])
	exec("other-award", `UPDATE {export} SET award_id = 'B' WHERE order_id = ?`, orderOf["other-award"])
	exec("count-changed", `UPDATE `+orders.TableTakeCount+` SET left_count = 0 WHERE user_id = ?`, "count-changed")
	exec("take-unused", `UPDATE `+orders.TableTake+` SET state = 0, award_id = '' WHERE take_id = ?`, takeOf["take-unused"])

	s = openSQLite(t, dir)
	defer s.Close()
	a, err := s.Audit(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := orders.Audit{Takes: 5, UsedTakes: 4, WonTakes: 4, Orders: 4, WonWithoutOrder: 1, OrphanOrders: 1, AwardMismatch: 1, CountMismatch: 1}
	if a.Takes != want.Takes || a.UsedTakes != want.UsedTakes || a.WonTakes != want.WonTakes || a.Orders != want.Orders ||
		a.WonWithoutOrder != want.WonWithoutOrder || a.OrphanOrders != want.OrphanOrders ||
		a.AwardMismatch != want.AwardMismatch || a.CountMismatch != want.CountMismatch {
		t.Fatalf("audit after breaking one invariant per user:\n got %+v\nwant %+v", a, want)
	}
	if a.Err() == nil {
		t.Fatal("Err() is nil for a broken store")
	}
}

// reopenStore is what testReopen drives.
type reopenStore interface {
	orderstest.Store
	orderstest.Auditor
	Close() error
}

// testReopen saves an activity, takes and wins a draw in a store from open,
// closes it twice (a take then fails with ErrUnavailable), and checks that
// the store open returns next still holds all of it and takes again. It
// returns that second store, for the caller to close.
func testReopen(t *testing.T, node int64, open func() reopenStore) reopenStore {
	t.Helper()
	ctx := t.Context()
	ids, _ := lottery.NewSnowflake(node)
	s := open()
	strategy := &lottery.Strategy{ID: 7, Mode: lottery.ModeTotal, GrantType: lottery.GrantImmediate,
		Details: []lottery.StrategyDetail{{Award: lottery.Award{ID: "A", Type: lottery.AwardCoupon, Name: "a"}, AwardCount: 5, Rate: 1}}}
	act := &lottery.Activity{ID: 1, Name: "a", BeginAt: time.Unix(1000, 0).UTC(), EndAt: time.Unix(2000, 0).UTC(),
		StockCount: 10, StockSurplus: 10, TakeCount: 2, StrategyID: 7, State: lottery.StateEdit}
	if err := s.SaveActivity(ctx, act, strategy); err != nil {
		t.Fatal(err)
	}
	tk := &lottery.Take{ID: ids.Next(), UserID: "u1", ActivityID: 1, StrategyID: 7}
	if err := s.Take(ctx, tk, 2); err != nil {
		t.Fatal(err)
	}
	o := &lottery.Order{ID: ids.Next(), Mode: lottery.ModeTotal, GrantType: lottery.GrantImmediate, Award: strategy.Details[0].Award, Seed: 1 << 63}
	if err := s.Draw(ctx, tk, o); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	err := s.Take(ctx, &lottery.Take{ID: ids.Next(), UserID: "u1", ActivityID: 1}, 2)
	if !errors.Is(err, lottery.ErrUnavailable) {
		t.Fatalf("Take after Close: %v, want ErrUnavailable", err)
	}

	s = open()
	if a, err := s.Activity(ctx, 1); err != nil || a.Name != "a" {
		s.Close()
		t.Fatalf("Activity after reopen = %+v, %v", a, err)
	}
	us, err := s.UserState(ctx, "u1", 1)
	if err != nil || us.Left != 1 || us.Unused != nil {
		s.Close()
		t.Fatalf("UserState after reopen = %+v, %v", us, err)
	}
	os, err := s.UserOrders(ctx, "u1", 5)
	if err != nil || len(os) != 1 || os[0] != *o {
		s.Close()
		t.Fatalf("UserOrders after reopen = %+v, %v; want %+v", os, err, *o)
	}
	if err := s.Take(ctx, &lottery.Take{ID: ids.Next(), UserID: "u1", ActivityID: 1}, 2); err != nil {
		s.Close()
		t.Fatalf("Take after reopen: %v", err)
	}
	a, err := s.Audit(ctx, 1)
	if err != nil || a.Err() != nil || a.Takes != 2 || a.Orders != 1 {
		s.Close()
		t.Fatalf("Audit after reopen = %+v, %v, %v", a, err, a.Err())
	}
	return s
}

func TestOpenSQLiteInvalid(t *testing.T) {
	if _, err := orders.OpenSQLite(t.TempDir(), orders.Router{}); !errors.Is(err, lottery.ErrInvalid) {
		t.Errorf("zero router: %v", err)
	}
	if _, err := orders.OpenSQLite("", seedRouter(t)); !errors.Is(err, lottery.ErrInvalid) {
		t.Errorf("empty dir: %v", err)
	}
}

// BenchmarkTakeDraw measures one Take and one winning Draw (four rows
// written through two group commits) per op, each op a new user, from 64
// goroutines per CPU.
func BenchmarkTakeDraw(b *testing.B) {
	s := openSQLite(b, b.TempDir())
	defer s.Close()
	benchTakeDraw(b, s)
}
