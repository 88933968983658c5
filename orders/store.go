package orders

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flashlottery/lottery/lottery"
)

// store is the SQL core the SQLite and MySQL adapters share: the router, the
// base database's pools, the shard databases with their group-commit
// writers, and the dialect that carries the SQL differences. The ports'
// methods are written once, here and in catalog.go and audit.go, and both
// adapters embed a store, so they behave the same by construction and the
// contract suite checks one implementation of the logic twice.
type store struct {
	d      *dialect
	router Router
	baseW  *sql.DB // catalog writes
	baseR  *sql.DB // catalog reads; may be baseW
	shards []*shard

	closeOnce sync.Once
	closeErr  error
}

// shard is one shard database.
type shard struct {
	name  string
	wdb   *sql.DB     // the writer's pool: a connection per writer goroutine
	rdb   *sql.DB     // reads; may be wdb
	w     *writer     // nil until started
	wstmt []*sql.Stmt // prepared on wdb, owned by w
	// userState is the UserState query, prepared on rdb.
	userState *sql.Stmt
	// states batches UserState reads (nil: each reads on its own).
	states *stateReader
}

// dialect is what differs between the SQL backends on the shared paths.
// Everything else (the write statements but one, the reads, the catalog,
// the audit) is SQL both SQLite and MySQL accept.
type dialect struct {
	name string
	// baseSchema creates the catalog tables; shardSchema the tables of a
	// shard database with tbCount order tables; metaSchema the meta table
	// (in the base database and in each shard database).
	baseSchema  []string
	shardSchema func(tbCount int) []string
	metaSchema  string
	// putMeta inserts (meta_key, meta_value) unless the key exists.
	putMeta string
	// decrementSQL is the wDecrement statement on a count table, and
	// decrement runs it: see Take.
	decrementSQL func(count string) string
	decrement    func(b *batch, userID string, activityID int64, takeCount int) (nth int, err error)
	// savepointSQL is SAVEPOINT, RELEASE and ROLLBACK TO for a savepoint
	// named request.
	savepointSQL [3]string
	// pendingSQL reads table tb's pending orders; its arguments are
	// (limit, staleBefore in ms, limit, limit).
	pendingSQL func(tb int) string
	// mapErr turns a backend error that is a domain outcome into its
	// sentinel (a unique-key violation into ErrConflict; for MySQL, a value
	// the column refuses into ErrInvalid) and returns other errors unchanged.
	mapErr func(error) error
	// retry reports whether a statement's error means the server rolled the
	// whole transaction back by itself (a deadlock), so the batch may run
	// again. nil for backends with a single writer per database.
	retry func(error) bool
	// snapshot are the options of Audit's read transaction (nil: defaults).
	snapshot *sql.TxOptions
	// bulk lets the writer run a batch's takes, draws and grants in
	// multi-row statements (see runBulk); union joins the SELECTs of its
	// read into one query, locking the rows they read where another
	// process may write them; multiStatements sends its writes as one text
	// of several statements, one round trip.
	bulk            bool
	union           func(selects []string) string
	multiStatements bool
	// batchReads is the number of goroutines per shard database that read
	// the users' states of concurrent UserState calls together, one query
	// for all that are waiting (see stateReader); 0 reads each on its own.
	batchReads int
	// writers is the number of group commits that may run at once on a
	// shard database, each on its own connection (0 means 1). SQLite has one
	// writer per file.
	writers int
	// statementErr reports whether an error of a text of several
	// statements is one a statement answered, which stops the text before
	// its COMMIT (see runBulkConn).
	statementErr func(error) bool
}

// prepare prepares a shard database's statements: the writes on wdb, the
// UserState queries on rdb.
func (sh *shard) prepare(ctx context.Context, d *dialect, tbCount int) error {
	var err error
	if sh.wstmt, err = prepareWrites(ctx, d, sh.wdb, tbCount); err != nil {
		return err
	}
	sh.userState, err = sh.rdb.PrepareContext(ctx, userStateSQL)
	return err
}

// start prepares every shard database's statements and starts its writer.
// batchTimeout bounds each group commit (0: no bound).
func (s *store) start(ctx context.Context, batchTimeout time.Duration) error {
	for _, sh := range s.shards {
		if err := sh.prepare(ctx, s.d, s.router.TBCount); err != nil {
			return fmt.Errorf("prepare %s: %w", sh.name, err)
		}
	}
	for _, sh := range s.shards {
		sh.w = newWriter(sh.name, s.d, sh.wdb, sh.wstmt, s.router.TBCount, batchTimeout, max(s.d.writers, 1))
		if s.d.batchReads > 0 {
			sh.states = newStateReader(sh.rdb, s.d.batchReads, batchTimeout)
		}
	}
	return nil
}

// shape is the router's shape as meta records it, for example
// "2x4/orders-split": the layout rides in it so that a binary of the
// earlier layout, which recorded and checks "2x4", refuses this store.
func (s *store) shape() string {
	return strconv.Itoa(s.router.DBCount) + "x" + strconv.Itoa(s.router.TBCount) + "/" + tableLayout
}

// migrate creates every table and index that is missing, in the base
// database and in each shard database, after recording the table layout
// and the router's shape in each and the shard's index in each shard
// database, or checking them against what was recorded: a store reopened
// with another shape, or with shard databases swapped or repeated, or
// written by the earlier layout, would route users away from their data, so
// it is refused (ErrInvalid) before any table is created.
func (s *store) migrate(ctx context.Context) error {
	if _, err := s.baseW.ExecContext(ctx, s.d.metaSchema); err != nil {
		return fmt.Errorf("orders: migrate %s: %w", BaseDatabase, s.storeErr(err))
	}
	if err := s.checkShape(ctx, s.baseW); err != nil {
		return fmt.Errorf("orders: migrate %s: %w", BaseDatabase, err)
	}
	for _, q := range s.d.baseSchema {
		if _, err := s.baseW.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("orders: migrate %s: %w", BaseDatabase, s.storeErr(err))
		}
	}
	for i, sh := range s.shards {
		if _, err := sh.wdb.ExecContext(ctx, s.d.metaSchema); err != nil {
			return fmt.Errorf("orders: migrate %s: %w", sh.name, s.storeErr(err))
		}
		if err := s.checkShape(ctx, sh.wdb); err != nil {
			return fmt.Errorf("orders: migrate %s: %w", sh.name, err)
		}
		if err := s.checkMeta(ctx, sh.wdb, "shard", strconv.Itoa(i)); err != nil {
			return fmt.Errorf("orders: migrate %s as shard %d: %w (are two shard databases swapped, or the same?)", sh.name, i, err)
		}
		for _, q := range s.d.shardSchema(s.router.TBCount) {
			if _, err := sh.wdb.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("orders: migrate %s: %w", sh.name, s.storeErr(err))
			}
		}
	}
	return nil
}

// tableLayout is the layout of the shard databases' tables, recorded in
// meta as part of the router's shape: the orders split over tbCount
// tables, one take and one count table per database (the seed's). The
// earlier layout split every kind and recorded the bare shape ("2x4").
const tableLayout = "orders-split"

// checkShape checks, or records in a new database, the router's shape. A
// database whose shape names no layout was written by the earlier one and
// is refused rather than read as empty.
func (s *store) checkShape(ctx context.Context, db *sql.DB) error {
	got, ok, err := s.meta(ctx, db, "router")
	if err != nil {
		return err
	}
	if ok && !strings.HasSuffix(got, "/"+tableLayout) {
		return fmt.Errorf("%w: the database was written by an earlier version, which split takes and counts over tbCount tables like the orders; this one keeps one take and one count table per database (the seed's layout): start from new databases", lottery.ErrInvalid)
	}
	return s.checkMeta(ctx, db, "router", s.shape())
}

// checkMeta records key = want in db's meta table unless the key is there,
// then checks that the recorded value is want.
func (s *store) checkMeta(ctx context.Context, db *sql.DB, key, want string) error {
	if _, err := db.ExecContext(ctx, s.d.putMeta, key, want); err != nil {
		return s.storeErr(err)
	}
	got, _, err := s.meta(ctx, db, key)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%w: the database records %s %s, not %s", lottery.ErrInvalid, key, got, want)
	}
	return nil
}

// meta reads the value of key in db's meta table; ok is false when the
// key is not there.
func (s *store) meta(ctx context.Context, db *sql.DB, key string) (value string, ok bool, err error) {
	err = db.QueryRowContext(ctx, `SELECT meta_value FROM meta WHERE meta_key = ?`, key).Scan(&value)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, s.storeErr(err)
	}
	return value, true, nil
}

// Router returns the store's router.
func (s *store) Router() Router { return s.router }

// Close stops the writer goroutines (each finishes and answers the batch it
// holds; later writes get an ErrUnavailable error), then closes every
// database. It is safe to call more than once.
func (s *store) Close() error {
	s.closeOnce.Do(func() {
		for _, sh := range s.shards {
			if sh.w != nil {
				sh.w.stop()
			}
			if sh.states != nil {
				sh.states.stop()
			}
		}
		var (
			errs   []error
			closed = map[*sql.DB]bool{}
		)
		closeDB := func(db *sql.DB) {
			if db != nil && !closed[db] {
				closed[db] = true
				errs = append(errs, db.Close())
			}
		}
		for _, sh := range s.shards {
			closeStmts(sh.wstmt)
			closeStmts([]*sql.Stmt{sh.userState})
			closeDB(sh.wdb)
			closeDB(sh.rdb)
		}
		closeDB(s.baseW)
		closeDB(s.baseR)
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("orders: close: %w", err)
		}
	})
	return s.closeErr
}

// WriteStats are the group commit's counters over every shard database.
type WriteStats struct {
	// Commits is the number of transactions; Writes the requests they carried.
	Commits, Writes uint64
	// Retries counts batches run again because the server rolled them back
	// (a deadlock with another process writing the same rows; MySQL only).
	Retries uint64
	// Fallbacks counts multi-row batches run again one request at a time
	// because a request failed inside a multi-row statement (a duplicate
	// key, a value a column refuses; MySQL only).
	Fallbacks uint64
	// Blind counts batches of first takes written without reading their
	// count rows first, BlindMisses those of them that met a count row and
	// were read and written again (MySQL only).
	Blind, BlindMisses uint64
}

// WriteStats returns the group commit's counters; Writes/Commits is the
// average batch.
func (s *store) WriteStats() WriteStats {
	var st WriteStats
	for _, sh := range s.shards {
		if sh.w != nil {
			st.Commits += sh.w.commits.Load()
			st.Writes += sh.w.writes.Load()
			st.Retries += sh.w.retries.Load()
			st.Fallbacks += sh.w.fallbacks.Load()
			st.Blind += sh.w.blind.Load()
			st.BlindMisses += sh.w.blindMisses.Load()
		}
	}
	return st
}

// ---- Orders ----

// userStateSQL reads a user's count row and the unused take with the lowest
// id; its arguments are the user and the activity.
const userStateSQL = `SELECT c.left_count, t.take_id, t.strategy_id, t.take_count, t.take_date` + userStateFrom + `
		WHERE c.user_id = ? AND c.activity_id = ?`

// userStateFrom joins the count rows (c) with each one's unused take of the
// lowest id (t), for userStateSQL and userStatesSQL.
const userStateFrom = `
		FROM ` + TableTakeCount + ` c LEFT JOIN ` + TableTake + ` t ON t.take_id = (
			SELECT MIN(take_id) FROM ` + TableTake + `
			WHERE activity_id = c.activity_id AND user_id = c.user_id AND state = 0)`

// UserState returns the user's unused take with the lowest id, if any, and
// the takes the user has left (-1 if the user never took part).
func (s *store) UserState(ctx context.Context, userID string, activityID int64) (lottery.UserState, error) {
	db, _ := s.router.Route(userID)
	if r := s.shards[db].states; r != nil {
		st, err := r.read(ctx, userID, activityID)
		if err != nil {
			if !errors.Is(err, lottery.ErrUnavailable) {
				err = unavailable(err)
			}
			return lottery.UserState{}, fmt.Errorf("orders: user state of %s in activity %d: %w", userID, activityID, err)
		}
		return st, nil
	}
	var (
		left                            int
		takeID, strategyID, n, takeDate sql.NullInt64
	)
	err := s.shards[db].userState.QueryRowContext(ctx, userID, activityID).Scan(&left, &takeID, &strategyID, &n, &takeDate)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return lottery.UserState{Left: -1}, nil
	case err != nil:
		return lottery.UserState{}, fmt.Errorf("orders: user state of %s in activity %d: %w", userID, activityID, unavailable(err))
	}
	return userState(userID, activityID, left, takeID, strategyID, n, takeDate), nil
}

// stateReader reads the users' states of one shard database for
// concurrent UserState calls together: each of its goroutines takes every
// call waiting (up to maxBatch) and answers them from one query, the
// UserState query of each activity involved, joined by UNION
// ALL. On MySQL a statement costs the server a round trip, a parse and a
// result far more than the rows it reads, so under load this takes most
// of the read path's cost away; at low load a call is read alone, by the
// next free goroutine.
//
// Lifecycle: newStateReader starts the goroutines; stop closes quit and
// waits for them. A call not yet taken gets errClosed; a caller whose
// context ends stops waiting (a read has no effect to be unsure about).
type stateReader struct {
	db      *sql.DB
	timeout time.Duration // bounds one query; 0 for no bound
	reqs    chan *stateReq
	quit    chan struct{}
	wg      sync.WaitGroup
}

type stateReq struct {
	userID     string
	activityID int64
	st         lottery.UserState
	err        error
	done       chan struct{}
}

func newStateReader(db *sql.DB, goroutines int, timeout time.Duration) *stateReader {
	r := &stateReader{db: db, timeout: timeout, reqs: make(chan *stateReq), quit: make(chan struct{})}
	for range goroutines {
		r.wg.Go(r.loop)
	}
	return r
}

func (r *stateReader) stop() {
	close(r.quit)
	r.wg.Wait()
}

func (r *stateReader) read(ctx context.Context, userID string, activityID int64) (lottery.UserState, error) {
	q := &stateReq{userID: userID, activityID: activityID, done: make(chan struct{})}
	select {
	case r.reqs <- q:
	case <-ctx.Done():
		return lottery.UserState{}, ctx.Err()
	case <-r.quit:
		return lottery.UserState{}, errClosed
	}
	select {
	case <-q.done:
		return q.st, q.err
	case <-ctx.Done():
		return lottery.UserState{}, ctx.Err()
	}
}

func (r *stateReader) loop() {
	qs := make([]*stateReq, 0, maxBatch)
	for {
		select {
		case q := <-r.reqs:
			qs = append(qs, q)
		case <-r.quit:
			return
		}
		qs = fill(r.reqs, qs)
		r.answer(qs)
		for _, q := range qs {
			close(q.done)
		}
		clear(qs)
		qs = qs[:0]
	}
}

// answer reads the states of qs in one query and sets each one's answer.
func (r *stateReader) answer(qs []*stateReq) {
	var (
		order  []int64 // activities
		users  = map[int64][]any{}
		states = map[stateKey]lottery.UserState{}
	)
	for _, q := range qs {
		g := q.activityID
		if _, ok := users[g]; !ok {
			order = append(order, g)
		}
		users[g] = append(users[g], q.userID)
	}
	var (
		parts []string
		args  []any
	)
	for _, g := range order {
		parts = append(parts, userStatesSQL(len(users[g])))
		args = append(args, g)
		args = append(args, users[g]...)
	}
	ctx, cancel := boundedContext(r.timeout)
	defer cancel()
	err := func() error {
		rows, err := r.db.QueryContext(ctx, strings.Join(parts, "\nUNION ALL "), args...)
		if err != nil {
			return err
		}
		return scanAll(rows, func(rows *sql.Rows) error {
			var (
				k                               stateKey
				left                            int
				takeID, strategyID, n, takeDate sql.NullInt64
			)
			if err := rows.Scan(&k.userID, &k.activityID, &left, &takeID, &strategyID, &n, &takeDate); err != nil {
				return err
			}
			states[k] = userState(k.userID, k.activityID, left, takeID, strategyID, n, takeDate)
			return nil
		})
	}()
	for _, q := range qs {
		if err != nil {
			q.err = err
			continue
		}
		st, ok := states[stateKey{q.userID, q.activityID}]
		if !ok {
			st = lottery.UserState{Left: -1}
		}
		if st.Unused != nil {
			t := *st.Unused // each caller owns its take
			st.Unused = &t
		}
		q.st = st
	}
}

type stateKey struct {
	userID     string
	activityID int64
}

// userStatesSQL is userStateSQL for n users of one activity, each row led
// by the user and the activity; its arguments are the activity and the
// users.
func userStatesSQL(n int) string {
	return `SELECT c.user_id, c.activity_id, c.left_count, t.take_id, t.strategy_id, t.take_count, t.take_date` +
		userStateFrom + `
		WHERE c.activity_id = ? AND c.user_id IN (` + marks(n) + `)`
}

// userState builds a UserState from what the UserState queries read.
func userState(userID string, activityID int64, left int, takeID, strategyID, n, takeDate sql.NullInt64) lottery.UserState {
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
	return st
}

// Take records a new take of t.UserID in t.ActivityID: in one transaction on
// the user's shard it creates the user's count row at takeCount if missing,
// decrements it (ErrLimitReached, with nothing written, when none is left)
// and inserts the take, unused. The caller sets t.ID (a snowflake id),
// UserID, ActivityID, StrategyID and At (now when zero); Take sets TakeCount
// to the n-th take of the user, from 1, State to unused and At to the stored
// time (millisecond precision, UTC). A repeated take id is ErrConflict.
//
// The decrement is one statement that both creates and decrements the row
// (an upsert), so concurrent takes of one user, even from several processes,
// serialise on the row's lock and never take more than takeCount.
func (s *store) Take(ctx context.Context, t *lottery.Take, takeCount int) error {
	db, tr, err := s.newTake("take", t, takeCount)
	if err != nil {
		return err
	}
	if err := s.shards[db].w.run(s.takeRequest(ctx, tr)); err != nil {
		return fmt.Errorf("orders: take for %s in activity %d: %w", t.UserID, t.ActivityID, err)
	}
	t.TakeCount, t.State, t.AwardID, t.At = tr.nth, lottery.TakeUnused, "", fromMS(tr.atMS)
	return nil
}

// newTake checks the new take t of Take or TakeDraw (op names the call in
// the error) and returns the user's shard database and the take's request
// arguments, at t.At or now.
func (s *store) newTake(op string, t *lottery.Take, takeCount int) (db int, tr *takeReq, err error) {
	if t == nil || t.ID <= 0 || t.UserID == "" || t.ActivityID <= 0 || takeCount < 1 {
		return 0, nil, fmt.Errorf("orders: %s: %w: need a take with id, user and activity, and takeCount >= 1", op, lottery.ErrInvalid)
	}
	at := t.At
	if at.IsZero() {
		at = time.Now()
	}
	db, tb := s.router.Route(t.UserID)
	return db, &takeReq{tb: tb, takeID: t.ID, userID: t.UserID, activityID: t.ActivityID, strategyID: t.StrategyID,
		takeCount: takeCount, atMS: toMS(at)}, nil
}

// takeRequest is the write request of a take (with tr.draw, of a take
// drawn at once); op takes it alone (the batch's other path is runBulk).
func (s *store) takeRequest(ctx context.Context, tr *takeReq) *request {
	return &request{ctx: ctx, take: tr, op: func(b *batch) error {
		nth, err := s.d.decrement(b, tr.userID, tr.activityID, tr.takeCount)
		if err != nil {
			return s.d.mapErr(err)
		}
		tr.nth = nth
		if _, err = b.exec(wInsertTake, dbTable, tr.appendArgs(nil)...); err != nil || tr.draw == nil || tr.draw.order == nil {
			return s.d.mapErr(err)
		}
		_, err = b.exec(wInsertOrder, tr.tb, tr.draw.order...)
		return s.d.mapErr(err)
	}}
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
func (s *store) Draw(ctx context.Context, t *lottery.Take, o *lottery.Order) error {
	if t == nil || t.ID <= 0 || t.UserID == "" {
		return fmt.Errorf("orders: draw: %w: need a take with id and user", lottery.ErrInvalid)
	}
	ord, args, err := orderOf(t, o)
	if err != nil {
		return err
	}
	db, tb := s.router.Route(t.UserID)
	dr := &drawReq{tb: tb, takeID: t.ID, userID: t.UserID, awardID: ord.Award.ID, order: args}
	if err := s.shards[db].w.run(s.drawRequest(ctx, dr)); err != nil {
		return fmt.Errorf("orders: draw of take %d for %s: %w", t.ID, t.UserID, err)
	}
	t.State, t.AwardID = lottery.TakeUsed, ord.Award.ID
	if o != nil {
		*o = ord
	}
	return nil
}

// orderOf checks the order o of take t (nil for a lost draw) and returns it
// as it will be stored, with the arguments of exportRow (nil for no order).
func orderOf(t *lottery.Take, o *lottery.Order) (lottery.Order, []any, error) {
	if o == nil {
		return lottery.Order{}, nil, nil
	}
	ord := *o
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
		return ord, nil, fmt.Errorf("orders: draw of take %d: %w: the order needs an id and an award, and the take's user and id", t.ID, lottery.ErrInvalid)
	}
	atMS := toMS(ord.At)
	ord.MQState, ord.GrantState, ord.At = lottery.MQInit, lottery.GrantPending, fromMS(atMS)
	args := []any{ord.ID, ord.UserID, ord.ActivityID, ord.StrategyID, ord.Mode, ord.GrantType,
		toMS(ord.GrantDate), ord.GrantState, ord.Award.ID, ord.Award.Type, ord.Award.Name, ord.Award.Content,
		ord.TakeID, ord.Module, int64(ord.Seed), atMS, toMS(time.Now())}
	return ord, args, nil
}

// TakeDraw records a new take that is drawn at once: in one transaction on
// the user's shard it does what Take does (the count decrement,
// ErrLimitReached with nothing written when none is left) and inserts the
// take already used, with the award of o, and, for a win (o != nil), the
// order with mq_state init and grant_state pending, as Draw would. One
// write and one group commit instead of two: the draw process uses it when
// the user has no unused take to reuse. The fields are those of Take and
// Draw; on success t is the stored take (TakeCount, state used, AwardID,
// At) and o the stored order. A repeated take or order id is ErrConflict,
// and any failure writes nothing.
func (s *store) TakeDraw(ctx context.Context, t *lottery.Take, takeCount int, o *lottery.Order) error {
	db, tr, err := s.newTake("take and draw", t, takeCount)
	if err != nil {
		return err
	}
	ord, args, err := orderOf(t, o)
	if err != nil {
		return err
	}
	tr.draw = &drawReq{tb: tr.tb, takeID: t.ID, userID: t.UserID, awardID: ord.Award.ID, order: args}
	if err := s.shards[db].w.run(s.takeRequest(ctx, tr)); err != nil {
		return fmt.Errorf("orders: take and draw for %s in activity %d: %w", t.UserID, t.ActivityID, err)
	}
	t.TakeCount, t.State, t.AwardID, t.At = tr.nth, lottery.TakeUsed, ord.Award.ID, fromMS(tr.atMS)
	if o != nil {
		*o = ord
	}
	return nil
}

// drawRequest is the write request of a draw; op draws alone.
func (s *store) drawRequest(ctx context.Context, dr *drawReq) *request {
	return &request{ctx: ctx, draw: dr, op: func(b *batch) error {
		n, err := b.exec(wUseTake, dbTable, dr.awardID, dr.takeID, dr.userID)
		if err != nil {
			return s.d.mapErr(err)
		}
		if n == 0 {
			var state int
			if err := b.queryRow(wTakeState, dbTable, dr.takeID, dr.userID).Scan(&state); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					return lottery.ErrNotFound
				}
				return err
			}
			return lottery.ErrTakeUsed
		}
		if dr.order == nil {
			return nil
		}
		_, err = b.exec(wInsertOrder, dr.tb, dr.order...)
		return s.d.mapErr(err)
	}}
}

// ---- Outbox and Granter ----

// maxInList bounds the ids of one SetMQState statement.
const maxInList = 256

// SetMQState sets the outbox state of refs: one write per shard database
// (they run in parallel), each in that database's next group commit and
// each one UPDATE per table and up to maxInList orders, so marking a relay's
// batch costs a few statements, not one per order. Unknown orders are
// skipped.
func (s *store) SetMQState(ctx context.Context, refs []lottery.OrderRef, state lottery.MQState) error {
	if state < lottery.MQInit || state > lottery.MQFailed {
		return fmt.Errorf("orders: set mq_state: %w: state %d", lottery.ErrInvalid, state)
	}
	if len(refs) == 0 {
		return nil
	}
	// byTable[db][tb] lists the refs of one table.
	byTable := make([][][]lottery.OrderRef, s.router.DBCount)
	for _, r := range refs {
		db, tb := s.router.Route(r.UserID)
		if byTable[db] == nil {
			byTable[db] = make([][]lottery.OrderRef, s.router.TBCount)
		}
		byTable[db][tb] = append(byTable[db][tb], r)
	}
	now := toMS(time.Now())
	errs := make([]error, len(byTable))
	var wg sync.WaitGroup
	for db, tables := range byTable {
		if tables == nil {
			continue
		}
		wg.Go(func() {
			var stmts []sqlText
			for tb, refs := range tables {
				for chunk := range slices.Chunk(refs, maxInList) {
					stmts = append(stmts, sqlText{query: setMQSQL(tb, len(chunk)), args: setMQArgs(state, now, chunk)})
				}
			}
			errs[db] = s.shards[db].w.run(execRequest(ctx, stmts))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("orders: set mq_state %d of %d orders: %w", state, len(refs), err)
	}
	return nil
}

// execRequest is a write request that runs stmts and decides nothing: a
// batch's multi-row path adds them to its writes.
func execRequest(ctx context.Context, stmts []sqlText) *request {
	return &request{ctx: ctx, stmts: stmts, op: func(b *batch) error {
		for _, st := range stmts {
			if _, err := b.execSQL(st.query, st.args...); err != nil {
				return err
			}
		}
		return nil
	}}
}

// setMQSQL updates n orders of table tb by order id. Order ids are unique;
// the user ids only keep a wrong ref from touching another user's order.
// An order already in the state is left alone: the relay's confirmation of
// an order its grant already moved to 1 finds the row and writes nothing.
func setMQSQL(tb, n int) string {
	ms := marks(n)
	return `UPDATE ` + ShardTable(TableExport, tb) + ` SET mq_state = ?, update_time = ?
		WHERE order_id IN (` + ms + `) AND user_id IN (` + ms + `) AND mq_state <> ?`
}

func setMQArgs(state lottery.MQState, now int64, refs []lottery.OrderRef) []any {
	args := make([]any, 0, 3+2*len(refs))
	args = append(args, state, now)
	for _, r := range refs {
		args = append(args, r.OrderID)
	}
	for _, r := range refs {
		args = append(args, r.UserID)
	}
	return append(args, state)
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
// Each table is read as two walks of its (mq_state, order_time) index that
// stop at the limit, so a large backlog (the broker down for an hour) costs
// no sort of it all.
func (s *store) Pending(ctx context.Context, staleBefore time.Time, limit int) ([]lottery.Order, error) {
	if limit < 1 {
		return nil, fmt.Errorf("orders: pending: %w: limit %d", lottery.ErrInvalid, limit)
	}
	var out []lottery.Order
	for _, sh := range s.shards {
		for tb := range s.router.TBCount {
			var err error
			out, err = queryOrders(ctx, sh.rdb, out, s.d.pendingSQL(tb), limit, toMS(staleBefore), limit, limit)
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
func (s *store) Grant(ctx context.Context, ref lottery.OrderRef) (bool, error) {
	var (
		moved [1]bool
		errs  [1]error
	)
	s.GrantEach(ctx, []lottery.OrderRef{ref}, moved[:], errs[:])
	return moved[0], errs[0]
}

// GrantEach grants refs as Grant would, each with its own answer: one
// write request per shard database (they run in parallel) instead of one
// per order, so a consumer's batch of deliveries costs a few requests.
func (s *store) GrantEach(ctx context.Context, refs []lottery.OrderRef, moved []bool, errs []error) {
	now := toMS(time.Now())
	gs := make([]grantReq, len(refs))
	byDB := make([][]*grantReq, s.router.DBCount)
	for i, ref := range refs {
		db, tb := s.router.Route(ref.UserID)
		gs[i] = grantReq{tb: tb, orderID: ref.OrderID, userID: ref.UserID, now: now}
		byDB[db] = append(byDB[db], &gs[i])
	}
	// A request per shard database and maxInList grants; a failed request
	// fails its own grants. Each grant belongs to one request, and the
	// writer is done with it when run returns.
	var wg sync.WaitGroup
	for db, list := range byDB {
		for chunk := range slices.Chunk(list, maxInList) {
			wg.Go(func() {
				if err := s.shards[db].w.run(grantRequest(ctx, chunk)); err != nil {
					for _, g := range chunk {
						g.err = err
					}
				}
			})
		}
	}
	wg.Wait()
	for i, ref := range refs {
		g := &gs[i]
		moved[i], errs[i] = g.err == nil && g.moved, nil
		if g.err != nil {
			errs[i] = fmt.Errorf("orders: grant order %d of %s: %w", ref.OrderID, ref.UserID, g.err)
		}
	}
}

// grantRequest is the write request of grants; op grants them one by one.
func grantRequest(ctx context.Context, gs []*grantReq) *request {
	return &request{ctx: ctx, grants: gs, op: func(b *batch) error {
		for _, g := range gs {
			g.moved, g.err = false, nil
			n, err := b.exec(wGrant, g.tb, g.now, g.orderID, g.userID)
			if err != nil {
				return err
			}
			if n > 0 {
				g.moved = true
				continue
			}
			var one int
			if err := b.queryRow(wOrderExists, g.tb, g.orderID, g.userID).Scan(&one); err != nil {
				if !errors.Is(err, sql.ErrNoRows) {
					return err
				}
				g.err = lottery.ErrNotFound
			}
		}
		return nil
	}}
}

// ---- Ledger ----

// Usage counts an activity's takes (all states) and its orders per award id
// across every shard: the durable used counts the stock is provisioned from.
func (s *store) Usage(ctx context.Context, activityID int64) (lottery.Usage, error) {
	u := lottery.Usage{Awards: map[string]int64{}}
	for _, sh := range s.shards {
		var n int64
		if err := sh.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+TableTake+` WHERE activity_id = ?`,
			activityID).Scan(&n); err != nil {
			return lottery.Usage{}, fmt.Errorf("orders: usage of activity %d in %s: %w", activityID, sh.name, unavailable(err))
		}
		u.Takes += n
		for tb := range s.router.TBCount {
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
func (s *store) UserOrders(ctx context.Context, userID string, limit int) ([]lottery.Order, error) {
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

// unavailable marks a store failure as ErrUnavailable, leaving context
// errors as they are.
func unavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", lottery.ErrUnavailable, err)
}

// storeErr maps err with the dialect: a domain outcome (ErrConflict,
// ErrInvalid) stays one, anything else is a store failure (ErrUnavailable).
func (s *store) storeErr(err error) error {
	err = s.d.mapErr(err)
	if errors.Is(err, lottery.ErrConflict) || errors.Is(err, lottery.ErrInvalid) {
		return err
	}
	return unavailable(err)
}
