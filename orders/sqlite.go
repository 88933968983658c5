package orders

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Interface guards.
var (
	_ lottery.Orders       = (*SQLite)(nil)
	_ lottery.Outbox       = (*SQLite)(nil)
	_ lottery.Granter      = (*SQLite)(nil)
	_ lottery.CatalogAdmin = (*SQLite)(nil)
	_ lottery.Ledger       = (*SQLite)(nil)
)

// SQLite is the embedded orders store: the catalog in dir/lottery.db and the
// users' takes, counts and orders in one file per shard database,
// dir/lottery_00.db, dir/lottery_01.db, ..., each holding Router.TBCount
// tables of each kind. Writes to a shard database go through its group-commit
// writer; reads use a separate pool of read-only connections (WAL lets them
// run beside the writer). It is safe for concurrent use.
type SQLite struct {
	router Router
	dir    string
	baseW  *sql.DB // catalog writes: one connection, BEGIN IMMEDIATE
	baseR  *sql.DB
	shards []*sqliteShard

	closeOnce sync.Once
	closeErr  error
}

type sqliteShard struct {
	name  string
	wdb   *sql.DB
	rdb   *sql.DB
	w     *writer     // nil until started
	wstmt []*sql.Stmt // prepared on wdb, owned by w
	// userState holds the UserState query of each table, prepared on rdb.
	userState []*sql.Stmt
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
	s := &SQLite{router: router, dir: dir}
	var err error
	if s.baseW, s.baseR, err = openPair(filepath.Join(dir, BaseDatabase+".db")); err != nil {
		return nil, fmt.Errorf("orders: open sqlite: %w", err)
	}
	for i := range router.DBCount {
		sh := &sqliteShard{name: ShardDatabase(i)}
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
	for _, sh := range s.shards {
		if err := sh.prepare(ctx, router.TBCount); err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("orders: open sqlite %s: %w", sh.name, err)
		}
	}
	for _, sh := range s.shards {
		sh.w = newWriter(sh.name, sh.wdb, sh.wstmt, router.TBCount)
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

func (sh *sqliteShard) prepare(ctx context.Context, tbCount int) error {
	var err error
	if sh.wstmt, err = prepareWrites(ctx, sh.wdb, tbCount); err != nil {
		return err
	}
	for tb := range tbCount {
		st, err := sh.rdb.PrepareContext(ctx, userStateSQL(tb))
		if err != nil {
			return err
		}
		sh.userState = append(sh.userState, st)
	}
	return nil
}

// Migrate creates every table and index that is missing, in the base
// database and in each shard database, and records the router's shape (or
// checks it against the recorded one). It is idempotent; OpenSQLite calls it.
func (s *SQLite) Migrate(ctx context.Context) error {
	for _, q := range baseSchema {
		if _, err := s.baseW.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("orders: migrate %s: %w", BaseDatabase, err)
		}
	}
	shape := strconv.Itoa(s.router.DBCount) + "x" + strconv.Itoa(s.router.TBCount)
	if _, err := s.baseW.ExecContext(ctx,
		`INSERT INTO meta (meta_key, meta_value) VALUES ('router', ?) ON CONFLICT (meta_key) DO NOTHING`, shape); err != nil {
		return fmt.Errorf("orders: migrate %s: %w", BaseDatabase, err)
	}
	var got string
	if err := s.baseW.QueryRowContext(ctx, `SELECT meta_value FROM meta WHERE meta_key = 'router'`).Scan(&got); err != nil {
		return fmt.Errorf("orders: migrate %s: %w", BaseDatabase, err)
	}
	if got != shape {
		return fmt.Errorf("orders: migrate %s: %w: data dir %s was created with router %s, not %s",
			BaseDatabase, lottery.ErrInvalid, s.dir, got, shape)
	}
	for _, sh := range s.shards {
		for tb := range s.router.TBCount {
			for _, q := range shardSchema(tb) {
				if _, err := sh.wdb.ExecContext(ctx, q); err != nil {
					return fmt.Errorf("orders: migrate %s: %w", sh.name, err)
				}
			}
		}
	}
	return nil
}

// Router returns the store's router.
func (s *SQLite) Router() Router { return s.router }

// Close stops the writer goroutines (each finishes and answers the batch it
// holds; later writes get an ErrUnavailable error), then closes every
// database. It is safe to call more than once.
func (s *SQLite) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for _, sh := range s.shards {
			if sh.w != nil {
				sh.w.stop()
			}
		}
		for _, sh := range s.shards {
			closeStmts(sh.wstmt)
			closeStmts(sh.userState)
			errs = append(errs, closeDB(sh.wdb), closeDB(sh.rdb))
		}
		errs = append(errs, closeDB(s.baseW), closeDB(s.baseR))
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("orders: close: %w", err)
		}
	})
	return s.closeErr
}

func closeDB(db *sql.DB) error {
	if db == nil {
		return nil
	}
	return db.Close()
}

// ---- Orders ----

func userStateSQL(tb int) string {
	take := ShardTable(TableTake, tb)
	count := ShardTable(TableTakeCount, tb)
	return `SELECT c.left_count, t.take_id, t.strategy_id, t.take_count, t.take_date
		FROM ` + count + ` c LEFT JOIN ` + take + ` t ON t.take_id = (
			SELECT MIN(take_id) FROM ` + take + `
			WHERE activity_id = c.activity_id AND user_id = c.user_id AND state = 0)
		WHERE c.user_id = ? AND c.activity_id = ?`
}

// UserState returns the user's unused take with the lowest id, if any, and
// the takes the user has left (-1 if the user never took part).
func (s *SQLite) UserState(ctx context.Context, userID string, activityID int64) (lottery.UserState, error) {
	db, tb := s.router.Route(userID)
	var (
		left                            int
		takeID, strategyID, n, takeDate sql.NullInt64
	)
	err := s.shards[db].userState[tb].QueryRowContext(ctx, userID, activityID).Scan(&left, &takeID, &strategyID, &n, &takeDate)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return lottery.UserState{Left: -1}, nil
	case err != nil:
		return lottery.UserState{}, fmt.Errorf("orders: user state of %s in activity %d: %w", userID, activityID, unavailable(err))
	}
	st := lottery.UserState{Left: left}
	if takeID.Valid {
		st.Unused = &lottery.Take{
			ID:         takeID.Int64,
			UserID:     userID,
			ActivityID: activityID,
			StrategyID: strategyID.Int64,
			TakeCount:  int(n.Int64),
			State:      lottery.TakeUnused,
			At:         fromMS(takeDate.Int64),
		}
	}
	return st, nil
}

// Take records a new take of t.UserID in t.ActivityID: in one transaction on
// the user's shard it creates the user's count row at takeCount if missing,
// decrements it (ErrLimitReached, with nothing written, when none is left)
// and inserts the take, unused. The caller sets t.ID (a snowflake id),
// UserID, ActivityID, StrategyID and At (now when zero); Take sets TakeCount
// to the n-th take of the user, from 1, State to unused and At to the stored
// time (millisecond precision, UTC). A repeated take id is ErrConflict.
func (s *SQLite) Take(ctx context.Context, t *lottery.Take, takeCount int) error {
	if t == nil || t.ID <= 0 || t.UserID == "" || t.ActivityID <= 0 || takeCount < 1 {
		return fmt.Errorf("orders: take: %w: need a take with id, user and activity, and takeCount >= 1", lottery.ErrInvalid)
	}
	at := t.At
	if at.IsZero() {
		at = time.Now()
	}
	atMS := toMS(at)
	db, tb := s.router.Route(t.UserID)
	var nth int
	err := s.shards[db].w.do(ctx, func(b *batch) error {
		var total, left int
		if err := b.queryRow(wDecrement, tb, t.UserID, t.ActivityID, takeCount).Scan(&total, &left); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return lottery.ErrLimitReached
			}
			return err
		}
		nth = total - left
		uuid := t.UserID + "_" + strconv.FormatInt(t.ActivityID, 10) + "_" + strconv.Itoa(nth)
		_, err := b.exec(wInsertTake, tb, t.ID, t.UserID, t.ActivityID, t.StrategyID, nth, uuid, atMS)
		return conflict(err)
	})
	if err != nil {
		return fmt.Errorf("orders: take for %s in activity %d: %w", t.UserID, t.ActivityID, err)
	}
	t.TakeCount, t.State, t.AwardID, t.At = nth, lottery.TakeUnused, "", fromMS(atMS)
	return nil
}

// Draw turns the unused take t into a draw: in one transaction on the user's
// shard it marks the take used with the award of o (ErrTakeUsed, with nothing
// written, if it already was; ErrNotFound if there is no such take) and, for
// a win (o != nil), inserts the order with mq_state init and grant_state
// pending, its uuid being the take id. The caller sets o.ID (a snowflake id),
// the strategy and award fields, Module, Seed and At (now when zero); Draw
// fills o.UserID, TakeID, ActivityID and StrategyID from t when empty and
// sets the stored state back into o and t. An order id that exists is
// ErrConflict.
func (s *SQLite) Draw(ctx context.Context, t *lottery.Take, o *lottery.Order) error {
	if t == nil || t.ID <= 0 || t.UserID == "" {
		return fmt.Errorf("orders: draw: %w: need a take with id and user", lottery.ErrInvalid)
	}
	var (
		awardID string
		ord     lottery.Order
	)
	if o != nil {
		ord = *o
		if ord.UserID == "" {
			ord.UserID = t.UserID
		}
		if ord.TakeID == 0 {
			ord.TakeID = t.ID
		}
		if ord.ActivityID == 0 {
			ord.ActivityID = t.ActivityID
		}
		if ord.StrategyID == 0 {
			ord.StrategyID = t.StrategyID
		}
		if ord.At.IsZero() {
			ord.At = time.Now()
		}
		if ord.ID <= 0 || ord.UserID != t.UserID || ord.TakeID != t.ID || ord.Award.ID == "" {
			return fmt.Errorf("orders: draw of take %d: %w: the order needs an id and an award, and the take's user and id", t.ID, lottery.ErrInvalid)
		}
		ord.MQState, ord.GrantState, ord.At = lottery.MQInit, lottery.GrantPending, fromMS(toMS(ord.At))
		awardID = ord.Award.ID
	}
	now := toMS(time.Now())
	db, tb := s.router.Route(t.UserID)
	err := s.shards[db].w.do(ctx, func(b *batch) error {
		n, err := b.exec(wUseTake, tb, awardID, t.ID, t.UserID)
		if err != nil {
			return err
		}
		if n == 0 {
			var state int
			if err := b.queryRow(wTakeState, tb, t.ID, t.UserID).Scan(&state); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					return lottery.ErrNotFound
				}
				return err
			}
			return lottery.ErrTakeUsed
		}
		if o == nil {
			return nil
		}
		_, err = b.exec(wInsertOrder, tb, ord.ID, ord.UserID, ord.ActivityID, ord.StrategyID, ord.Mode, ord.GrantType,
			toMS(ord.GrantDate), ord.GrantState, ord.Award.ID, ord.Award.Type, ord.Award.Name, ord.Award.Content,
			ord.TakeID, ord.Module, int64(ord.Seed), toMS(ord.At), now)
		return conflict(err)
	})
	if err != nil {
		return fmt.Errorf("orders: draw of take %d for %s: %w", t.ID, t.UserID, err)
	}
	t.State, t.AwardID = lottery.TakeUsed, awardID
	if o != nil {
		*o = ord
	}
	return nil
}

// ---- Outbox and Granter ----

// SetMQState sets the outbox state of refs: one write per shard database
// (they run in parallel), each in that database's next group commit.
// Unknown orders are skipped.
func (s *SQLite) SetMQState(ctx context.Context, refs []lottery.OrderRef, state lottery.MQState) error {
	if state < lottery.MQInit || state > lottery.MQFailed {
		return fmt.Errorf("orders: set mq_state: %w: state %d", lottery.ErrInvalid, state)
	}
	if len(refs) == 0 {
		return nil
	}
	byDB := make([][]lottery.OrderRef, s.router.DBCount)
	for _, r := range refs {
		db, _ := s.router.Route(r.UserID)
		byDB[db] = append(byDB[db], r)
	}
	now := toMS(time.Now())
	errs := make([]error, len(byDB))
	var wg sync.WaitGroup
	for db, refs := range byDB {
		if len(refs) == 0 {
			continue
		}
		wg.Go(func() {
			errs[db] = s.shards[db].w.do(ctx, func(b *batch) error {
				for _, r := range refs {
					_, tb := s.router.Route(r.UserID)
					if _, err := b.exec(wSetMQ, tb, state, now, r.OrderID, r.UserID); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("orders: set mq_state %d of %d orders: %w", state, len(refs), err)
	}
	return nil
}

// orderColumns is the column list scanOrder reads.
const orderColumns = `order_id, user_id, activity_id, strategy_id, strategy_mode, grant_type, grant_date, grant_state,
	award_id, award_type, award_name, award_content, uuid, mq_state, module, seed, order_time`

func scanOrder(sc interface{ Scan(...any) error }) (lottery.Order, error) {
	var (
		o                        lottery.Order
		grantDate, seed, orderAt int64
	)
	err := sc.Scan(&o.ID, &o.UserID, &o.ActivityID, &o.StrategyID, &o.Mode, &o.GrantType, &grantDate, &o.GrantState,
		&o.Award.ID, &o.Award.Type, &o.Award.Name, &o.Award.Content, &o.TakeID, &o.MQState, &o.Module, &seed, &orderAt)
	o.GrantDate, o.Seed, o.At = fromMS(grantDate), uint64(seed), fromMS(orderAt)
	return o, err
}

// queryOrders appends the orders a query returns.
func queryOrders(ctx context.Context, db *sql.DB, dst []lottery.Order, query string, args ...any) ([]lottery.Order, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return dst, err
	}
	defer rows.Close()
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return dst, err
		}
		dst = append(dst, o)
	}
	return dst, rows.Err()
}

// Pending returns the orders the compensation scan must (re)send: mq_state
// failed whatever their age, and mq_state init with an order time before
// staleBefore, across every shard, oldest first, at most limit of them.
func (s *SQLite) Pending(ctx context.Context, staleBefore time.Time, limit int) ([]lottery.Order, error) {
	if limit < 1 {
		return nil, fmt.Errorf("orders: pending: %w: limit %d", lottery.ErrInvalid, limit)
	}
	var out []lottery.Order
	for _, sh := range s.shards {
		for tb := range s.router.TBCount {
			var err error
			out, err = queryOrders(ctx, sh.rdb, out, pendingSQL(tb), limit, toMS(staleBefore))
			if err != nil {
				return nil, fmt.Errorf("orders: pending in %s: %w", sh.name, unavailable(err))
			}
		}
	}
	sortOrders(out, false)
	if len(out) > limit {
		out = out[:limit:limit]
	}
	return out, nil
}

// pendingSQL reads the pending orders of table tb, oldest first, as two
// walks of the (mq_state, order_time) index that each stop at the limit, so
// a large backlog (the broker down for an hour) costs no sort of it all.
func pendingSQL(tb int) string {
	export := ShardTable(TableExport, tb)
	return `SELECT * FROM (SELECT ` + orderColumns + ` FROM ` + export + `
			WHERE mq_state = 2 ORDER BY order_time, order_id LIMIT ?1)
		UNION ALL
		SELECT * FROM (SELECT ` + orderColumns + ` FROM ` + export + `
			WHERE mq_state = 0 AND order_time < ?2 ORDER BY order_time, order_id LIMIT ?1)
		ORDER BY order_time, order_id LIMIT ?1`
}

// sortOrders sorts by order time and id, ascending or descending.
func sortOrders(os []lottery.Order, desc bool) {
	slices.SortFunc(os, func(a, b lottery.Order) int {
		c := cmp.Or(a.At.Compare(b.At), cmp.Compare(a.ID, b.ID))
		if desc {
			return -c
		}
		return c
	})
}

// Grant moves the order's grant_state from pending to done and reports
// whether this call made the move (false for a repeated delivery). An
// unknown order is ErrNotFound.
func (s *SQLite) Grant(ctx context.Context, ref lottery.OrderRef) (bool, error) {
	db, tb := s.router.Route(ref.UserID)
	now := toMS(time.Now())
	var moved bool
	err := s.shards[db].w.do(ctx, func(b *batch) error {
		n, err := b.exec(wGrant, tb, now, ref.OrderID, ref.UserID)
		if err != nil {
			return err
		}
		if n > 0 {
			moved = true
			return nil
		}
		var one int
		if err := b.queryRow(wOrderExists, tb, ref.OrderID, ref.UserID).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return lottery.ErrNotFound
			}
			return err
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("orders: grant order %d of %s: %w", ref.OrderID, ref.UserID, err)
	}
	return moved, nil
}

// ---- Ledger ----

// Usage counts an activity's takes (all states) and its orders per award id
// across every shard: the durable used counts the stock is provisioned from.
func (s *SQLite) Usage(ctx context.Context, activityID int64) (lottery.Usage, error) {
	u := lottery.Usage{Awards: map[string]int64{}}
	for _, sh := range s.shards {
		for tb := range s.router.TBCount {
			var n int64
			if err := sh.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+ShardTable(TableTake, tb)+` WHERE activity_id = ?`,
				activityID).Scan(&n); err != nil {
				return lottery.Usage{}, fmt.Errorf("orders: usage of activity %d in %s: %w", activityID, sh.name, unavailable(err))
			}
			u.Takes += n
			if err := countByAward(ctx, sh.rdb, tb, activityID, u.Awards); err != nil {
				return lottery.Usage{}, fmt.Errorf("orders: usage of activity %d in %s: %w", activityID, sh.name, unavailable(err))
			}
		}
	}
	return u, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// countByAward adds the activity's orders in export table tb to m by award id.
func countByAward(ctx context.Context, q querier, tb int, activityID int64, m map[string]int64) error {
	rows, err := q.QueryContext(ctx, `SELECT award_id, COUNT(*) FROM `+ShardTable(TableExport, tb)+`
		WHERE activity_id = ? GROUP BY award_id`, activityID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			n  int64
		)
		if err := rows.Scan(&id, &n); err != nil {
			return err
		}
		m[id] += n
	}
	return rows.Err()
}

// UserOrders returns the user's orders, newest first, at most limit.
func (s *SQLite) UserOrders(ctx context.Context, userID string, limit int) ([]lottery.Order, error) {
	if limit < 1 {
		return nil, fmt.Errorf("orders: orders of %s: %w: limit %d", userID, lottery.ErrInvalid, limit)
	}
	db, tb := s.router.Route(userID)
	out, err := queryOrders(ctx, s.shards[db].rdb, nil, `SELECT `+orderColumns+` FROM `+ShardTable(TableExport, tb)+`
		WHERE user_id = ? ORDER BY order_time DESC, order_id DESC LIMIT ?`, userID, limit)
	if err != nil {
		return nil, fmt.Errorf("orders: orders of %s: %w", userID, unavailable(err))
	}
	return out, nil
}

// ---- helpers ----

// toMS stores a time as unix milliseconds; the zero time is 0.
func toMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMS is the inverse of toMS, in UTC.
func fromMS(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// conflict maps a UNIQUE or PRIMARY KEY violation to ErrConflict.
func conflict(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) {
		return fmt.Errorf("%w: %v", lottery.ErrConflict, err)
	}
	return err
}

// unavailable marks a store failure as ErrUnavailable, leaving context
// errors as they are.
func unavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", lottery.ErrUnavailable, err)
}

// WriteStats are the group commit's counters over every shard database.
type WriteStats struct {
	// Commits is the number of transactions; Writes the requests they carried.
	Commits, Writes uint64
}

// WriteStats returns the group commit's counters; Writes/Commits is the
// average batch.
func (s *SQLite) WriteStats() WriteStats {
	var st WriteStats
	for _, sh := range s.shards {
		if sh.w != nil {
			st.Commits += sh.w.commits.Load()
			st.Writes += sh.w.writes.Load()
		}
	}
	return st
}
