package orders

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/flashlottery/lottery/lottery"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Interface guards.
var (
	_ lottery.Orders        = (*SQLite)(nil)
	_ lottery.Outbox        = (*SQLite)(nil)
	_ lottery.Granter       = (*SQLite)(nil)
	_ lottery.GrantBatch    = (*SQLite)(nil)
	_ lottery.CatalogAdmin  = (*SQLite)(nil)
	_ lottery.Ledger        = (*SQLite)(nil)
	_ lottery.SurplusWriter = (*SQLite)(nil)
)

// SQLite is the embedded orders store: the catalog in dir/lottery.db and the
// users' takes, counts and orders in one file per shard database,
// dir/lottery_00.db, dir/lottery_01.db, ..., each holding one take and one
// count table and Router.TBCount order tables. Writes to a shard database go through its group-commit
// writer; reads use a separate pool of read-only connections (WAL lets them
// run beside the writer). It is safe for concurrent use.
type SQLite struct {
	store
	dir string
}

// busyTimeoutMS is how long a connection waits for a lock held by another
// one (a checkpoint, or another process such as a verifier) before failing.
const busyTimeoutMS = 5000

// OpenSQLite opens (creating when missing) the store in dir with router's
// shape, migrates its schema and starts one writer goroutine per shard
// database. A directory created with another shape is refused, since users
// would be routed away from their data. Close stops the writers.
func OpenSQLite(dir string, router Router) (*SQLite, error) {
	if _, err := NewRouter(router.DBCount, router.TBCount); err != nil {
		return nil, err
	}
	if dir == "" || strings.ContainsAny(dir, "?#") {
		return nil, fmt.Errorf("orders: open sqlite: %w: data dir %q must be non-empty without '?' or '#'", lottery.ErrInvalid, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("orders: open sqlite: %w", err)
	}
	s := &SQLite{store: store{d: sqliteDialect, router: router}, dir: dir}
	var err error
	if s.baseW, s.baseR, err = openPair(filepath.Join(dir, BaseDatabase+".db")); err != nil {
		return nil, fmt.Errorf("orders: open sqlite: %w", err)
	}
	for i := range router.DBCount {
		sh := &shard{name: ShardDatabase(i)}
		if sh.wdb, sh.rdb, err = openPair(filepath.Join(dir, sh.name+".db")); err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("orders: open sqlite: %w", err)
		}
		s.shards = append(s.shards, sh)
	}
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.start(ctx, 0); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("orders: open sqlite: %w", err)
	}
	return s, nil
}

// openPair opens a database file's write pool (one connection, WAL,
// synchronous NORMAL, BEGIN IMMEDIATE) and its read pool (query_only).
func openPair(path string) (w, r *sql.DB, err error) {
	common := "?_pragma=busy_timeout(" + strconv.Itoa(busyTimeoutMS) + ")"
	w, err = sql.Open("sqlite", path+common+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	// Create the file and switch it to WAL before any reader opens it.
	if err := w.Ping(); err != nil {
		_ = w.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	r, err = sql.Open("sqlite", path+common+"&_pragma=query_only(1)")
	if err != nil {
		_ = w.Close()
		return nil, nil, err
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return w, r, nil
}

// Migrate creates every table and index that is missing, in the base
// database and in each shard database, and records the table layout and
// the router's shape (or checks them against the recorded ones: a directory
// created with another shape, or by the earlier layout, is ErrInvalid,
// before any table is created). It is idempotent; OpenSQLite calls it.
func (s *SQLite) Migrate(ctx context.Context) error {
	if err := s.migrate(ctx); err != nil {
		return fmt.Errorf("%w (data dir %s)", err, s.dir)
	}
	return nil
}

// sqliteDialect is SQLite's SQL where it differs (see dialect).
var sqliteDialect = &dialect{
	name:         "sqlite",
	baseSchema:   baseSchema,
	shardSchema:  shardSchema,
	metaSchema:   metaSchema,
	putMeta:      `INSERT INTO meta (meta_key, meta_value) VALUES (?, ?) ON CONFLICT (meta_key) DO NOTHING`,
	decrementSQL: sqliteDecrementSQL,
	decrement:    sqliteDecrement,
	savepointSQL: [3]string{`SAVEPOINT request`, `RELEASE request`, `ROLLBACK TO request`},
	pendingSQL:   sqlitePendingSQL,
	mapErr:       sqliteMapErr,
	// No multi-row statements: SQLite's statements run in process, and its
	// prepared one-row statements beat multi-row texts, which cost more to
	// parse than they save (BenchmarkTakeDraw: about 20% fewer draws/s with
	// them). union serves tests that turn them on; the writer holds the
	// database's write lock (BEGIN IMMEDIATE), so reads need no locking.
	bulk:  false,
	union: sqliteUnion,
}

// sqliteUnion joins SELECTs with UNION ALL. The writer holds the write lock
// (BEGIN IMMEDIATE), so nothing else changes the rows it reads.
func sqliteUnion(selects []string) string { return strings.Join(selects, "\nUNION ALL ") }

// sqliteDecrementSQL creates the count row at takeCount - 1, or decrements
// it while positive; no row comes back when nothing is left. Its arguments
// are (user, activity, takeCount).
func sqliteDecrementSQL(count string) string {
	return `INSERT INTO ` + count + ` (user_id, activity_id, total_count, left_count) VALUES (?1, ?2, ?3, ?3 - 1)
		ON CONFLICT (user_id, activity_id) DO UPDATE SET left_count = left_count - 1 WHERE left_count > 0
		RETURNING total_count, left_count`
}

// sqliteDecrement runs the decrement; the take is the (total - left)-th.
func sqliteDecrement(b *batch, userID string, activityID int64, takeCount int) (int, error) {
	var total, left int
	if err := b.queryRow(wDecrement, dbTable, userID, activityID, takeCount).Scan(&total, &left); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, lottery.ErrLimitReached
		}
		return 0, err
	}
	return total - left, nil
}

// sqlitePendingSQL reads the pending orders of table tb, oldest first, as
// two walks of the (mq_state, order_time) index that each stop at the limit.
func sqlitePendingSQL(tb int) string {
	export := ShardTable(TableExport, tb)
	return `SELECT * FROM (SELECT ` + orderColumns + ` FROM ` + export + `
			WHERE mq_state = 2 ORDER BY order_time, order_id LIMIT ?)
		UNION ALL
		SELECT * FROM (SELECT ` + orderColumns + ` FROM ` + export + `
			WHERE mq_state = 0 AND order_time < ? ORDER BY order_time, order_id LIMIT ?)
		ORDER BY order_time, order_id LIMIT ?`
}

// sqliteMapErr maps a UNIQUE or PRIMARY KEY violation to ErrConflict.
func sqliteMapErr(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) {
		return fmt.Errorf("%w: %v", lottery.ErrConflict, err)
	}
	return err
}
