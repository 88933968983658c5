package orders

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashlottery/lottery/lottery"
)

// maxBatch bounds how many requests one group commit carries.
const maxBatch = 128

// maxAttempts bounds how often a batch runs when the server rolled it back
// on its own (a deadlock with another process writing the same rows).
const maxAttempts = 3

// writer is the group-commit writer of one shard database, shared by the
// SQLite and MySQL adapters (the dialect carries the SQL that differs). Its
// goroutine (loop; one on SQLite, two sharing the queue on MySQL) owns a
// write connection: it takes every request that is waiting, runs them in
// one transaction, commits once and answers each caller. One commit then carries up to maxBatch takes or
// draws, instead of one each: for SQLite that saves the commit's fsync, for
// MySQL the commit's round trip and redo-log write.
//
// On MySQL (dialect.bulk) a batch of takes, draws, grants and outbox
// updates, even of one request (which may carry a consumer's batch of
// grants), runs as multi-row statements: one locking read, decisions
// in Go, one statement per table and kind (see runBulk), in two round trips
// with its COMMIT (runBulkConn; one, without the read, for a batch of first
// takes written blind, see writeBlind). Otherwise, and when a request fails inside
// a multi-row statement, the batch runs one request at a time: first
// without savepoints (the fast path); only when a request fails after
// writing does it run again with a SAVEPOINT per request (see runFast). A
// batch the server rolled back by itself (dialect.retry: a deadlock) runs
// again, at most maxAttempts times in all.
//
// Lifecycle: newWriter starts the goroutines; stop closes quit and waits for
// them. A batch that was taken is always finished and answered before its
// goroutine exits; a request not yet taken gets errClosed.
type writer struct {
	name    string
	d       *dialect
	db      *sql.DB     // a connection per goroutine
	stmts   []*sql.Stmt // prepared on db, indexed by writeIndex
	tbCount int
	// timeout bounds one batch's transaction; 0 for no bound.
	timeout time.Duration
	reqs    chan *request // unbuffered: a send succeeds only when loop takes it
	quit    chan struct{}
	done    chan struct{}

	// commits and writes count transactions and the requests they carried;
	// retries the batches run again after the server rolled them back;
	// fallbacks the batches whose multi-row statements met a request's own
	// failure and that ran again one request at a time.
	commits, writes, retries, fallbacks atomic.Uint64
	// blind and blindMisses count the batches written without their read
	// (runBulkConn) and those of them that met a count row and were read
	// after all; blindSkip is how many batches are left to read first after
	// a miss (owned by the loop's goroutines, hence atomic).
	blind, blindMisses atomic.Uint64
	blindSkip          atomic.Int64
}

// request is one caller's write. op runs inside the batch's transaction and
// must leave the database unchanged when it returns an error (its savepoint
// is rolled back anyway). Only requestErrors are the request's own; any other
// error fails the whole batch.
type request struct {
	ctx context.Context
	op  func(b *batch) error
	// At most one of take, draw, grants and stmts is set: the request's
	// arguments in a form the writer may run together with other requests
	// of its kind in multi-row statements (see runBulk); op then does the
	// same one request at a time, the path a batch falls back to.
	take *takeReq
	draw *drawReq
	// grants are one or more grants (GrantEach sends a consumer's batch
	// as one request); each has its own answer, and an order that does not
	// exist is that grant's ErrNotFound, not the request's error.
	grants []*grantReq
	// stmts, if set, are what op runs, and what the multi-row path adds to
	// its writes: a request that writes without deciding anything.
	stmts []sqlText
	err   error
	done  chan struct{}
}

// errClosed answers requests made after Close.
var errClosed = fmt.Errorf("store closed: %w", lottery.ErrUnavailable)

func newWriter(name string, d *dialect, db *sql.DB, stmts []*sql.Stmt, tbCount int, timeout time.Duration, loops int) *writer {
	w := &writer{
		name:    name,
		d:       d,
		db:      db,
		stmts:   stmts,
		tbCount: tbCount,
		timeout: timeout,
		reqs:    make(chan *request),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	var wg sync.WaitGroup
	for range loops {
		wg.Go(w.loop)
	}
	go func() {
		wg.Wait()
		close(w.done)
	}()
	return w
}

// run runs r in the next group commit and returns its error. Once the
// writer has taken the request, run waits for the commit even if r.ctx
// ends, so the answer is never ambiguous; the writer skips requests whose
// ctx ended before their turn.
func (w *writer) run(r *request) error {
	r.done = make(chan struct{})
	ctx := r.ctx
	select {
	case w.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-w.quit:
		return errClosed
	}
	<-r.done
	return r.err
}

// stop ends the goroutine after its current batch and waits for it.
func (w *writer) stop() {
	close(w.quit)
	<-w.done
}

func (w *writer) loop() {
	reqs := make([]*request, 0, maxBatch)
	for {
		select {
		case r := <-w.reqs:
			reqs = append(reqs, r)
		case <-w.quit:
			return
		}
		reqs = fill(w.reqs, reqs)
		if len(reqs) < maxBatch {
			// Yield once so the callers the previous commit just woke can
			// queue their next request: on 2 CPUs with 128 callers this took
			// the average batch from about 3 requests to about 35.
			runtime.Gosched()
			reqs = fill(w.reqs, reqs)
		}
		w.commit(reqs)
		w.commits.Add(1)
		w.writes.Add(uint64(len(reqs)))
		for _, r := range reqs {
			close(r.done)
		}
		clear(reqs)
		reqs = reqs[:0]
	}
}

// fill appends to reqs what is waiting on ch, up to maxBatch in all,
// without blocking (the writer's requests, the stateReader's calls).
func fill[T any](ch <-chan T, reqs []T) []T {
	for len(reqs) < maxBatch {
		select {
		case r := <-ch:
			reqs = append(reqs, r)
		default:
			return reqs
		}
	}
	return reqs
}

// commit runs reqs in one transaction and sets each request's err.
func (w *writer) commit(reqs []*request) {
	live := make([]*request, 0, len(reqs))
	for _, r := range reqs {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	for attempt := 1; ; attempt++ {
		step, err := w.try(live)
		if err == nil {
			return
		}
		// A statement's error the server answered by rolling the whole
		// transaction back (a deadlock) leaves nothing written: run again.
		// A failed COMMIT is never retried, its outcome being unknown.
		if step != "commit" && attempt < maxAttempts && w.d.retry != nil && w.d.retry(err) {
			w.retries.Add(1)
			continue
		}
		w.fail(live, step, err)
		return
	}
}

// try runs live in one transaction: the multi-row path when a request is a
// take, draw, grant or outbox update (runBulk), else, or when a request
// failed there on its own terms, the path of one request at a time
// (tryRows). It sets each request's own error; a failure of the batch comes
// back with the step that failed, and then nothing of the batch was written
// (unless the step is "commit", whose outcome the server did not tell).
func (w *writer) try(live []*request) (step string, err error) {
	if w.d.bulk {
		if n := bulkable(live); n >= 1 {
			step, redo, err := w.tryBulk(live, n == len(live))
			if !redo {
				return step, err
			}
			w.fallbacks.Add(1)
		}
	}
	return w.tryRows(live)
}

// tryBulk runs live in one transaction with runBulk. redo reports that a
// request failed on its own terms inside a multi-row statement (a duplicate
// key, a value the column refuses) or after writing: the transaction was
// rolled back, and the batch must run again one request at a time, which
// finds the requests that failed. all reports that every request of live is
// one runBulk takes whole.
func (w *writer) tryBulk(live []*request, all bool) (step string, redo bool, err error) {
	if w.d.multiStatements && all {
		return w.runBulkConn(live)
	}
	b, err := w.begin()
	if err != nil {
		return "begin", false, err
	}
	defer b.end()
	if redo, err := w.runBulk(b, live); redo || err != nil {
		_ = b.tx.Rollback()
		if redo {
			return "", true, nil
		}
		return "batch", false, err
	}
	if err := b.tx.Commit(); err != nil {
		return "commit", false, err
	}
	return "", false, nil
}

// tryRows runs live one request at a time: the fast path without
// savepoints, then, if a request failed after writing, the savepoint path.
func (w *writer) tryRows(live []*request) (step string, err error) {
	b, err := w.begin()
	if err != nil {
		return "begin", err
	}
	defer b.end()
	if len(live) == 1 {
		// No savepoint needed: the transaction is the request's.
		r := live[0]
		r.err = nil
		if err := r.op(b); err != nil {
			_ = b.tx.Rollback()
			if !requestError(err) {
				return "request", err
			}
			r.err = err
			return "", nil
		}
	} else if redo, err := w.runFast(b, live); redo || err != nil {
		// A request may have written before failing (or the store failed):
		// nothing of this attempt stays. Run the batch again with a savepoint
		// per request, so each request's outcome is its own.
		_ = b.tx.Rollback()
		if !redo {
			return "batch", err
		}
		return w.tryEach(live)
	}
	if err := b.tx.Commit(); err != nil {
		return "commit", err
	}
	return "", nil
}

// runFast runs the requests one after the other without savepoints, which
// cost two statements per request. The batch notes whether a request changed
// a row; a request that fails with its own error after changing one would
// leave a partial write, so runFast then asks for a redo with savepoints.
// The ops return their usual refusals (limit reached, take used, not found)
// before writing anything, so most batches never need the redo.
func (w *writer) runFast(b *batch, reqs []*request) (redo bool, err error) {
	for _, r := range reqs {
		r.err = nil
		b.wrote = false
		err := r.op(b)
		switch {
		case err == nil:
		case !requestError(err):
			return false, err
		case b.wrote:
			return true, err
		default:
			r.err = err
		}
	}
	return false, nil
}

// tryEach runs the batch again in a new transaction with a savepoint per
// request (the slow path of try).
func (w *writer) tryEach(live []*request) (step string, err error) {
	b, err := w.begin()
	if err != nil {
		return "begin", err
	}
	defer b.end()
	if err := w.runAll(b, live); err != nil {
		_ = b.tx.Rollback()
		return "batch", err
	}
	if err := b.tx.Commit(); err != nil {
		return "commit", err
	}
	return "", nil
}

// begin opens a batch's transaction. The batch runs under its own context
// (bounded by w.timeout): one caller giving up must not abort the others'
// writes. The transaction closes its statements when it ends; end releases
// the context.
func (w *writer) begin() (*batch, error) {
	ctx, cancel := w.batchContext()
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	return &batch{ctx: ctx, cancel: cancel, tx: tx, w: w, stmts: make([]*sql.Stmt, len(w.stmts))}, nil
}

// batchContext is a batch's own context, bounded by w.timeout.
func (w *writer) batchContext() (context.Context, context.CancelFunc) {
	return boundedContext(w.timeout)
}

// boundedContext is a context of its own (no caller's), bounded by timeout
// when it is positive. Without a bound it is never done: the SQLite driver
// then spares each statement a goroutine watching for cancellation.
func boundedContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout > 0 {
		return context.WithTimeout(context.Background(), timeout)
	}
	return context.Background(), func() {}
}

// runAll runs each request inside its own savepoint; a request error rolls
// back that request only. It returns the first error that is not a
// request error.
func (w *writer) runAll(b *batch, reqs []*request) error {
	for _, r := range reqs {
		r.err = nil
		if _, err := b.exec(wSavepoint, 0); err != nil {
			return err
		}
		err := r.op(b)
		if err == nil {
			if _, err := b.exec(wRelease, 0); err != nil {
				return err
			}
			continue
		}
		if !requestError(err) {
			return err
		}
		r.err = err
		if _, err := b.exec(wRollbackTo, 0); err != nil {
			return err
		}
		if _, err := b.exec(wRelease, 0); err != nil {
			return err
		}
	}
	return nil
}

// fail gives every request of a failed batch the batch's error: nothing of
// the batch was written.
func (w *writer) fail(reqs []*request, step string, err error) {
	if step == "commit" { // the server did not say whether it committed
		err = fmt.Errorf("%w: %w", lottery.ErrOutcomeUnknown, err)
	}
	err = fmt.Errorf("%s group commit %s: %w: %w", w.name, step, lottery.ErrUnavailable, err)
	for _, r := range reqs {
		r.err = err
	}
}

// requestError reports whether err is a request's own outcome (it wrote
// nothing and the others may go on) rather than a failure of the store.
func requestError(err error) bool {
	return errors.Is(err, lottery.ErrLimitReached) ||
		errors.Is(err, lottery.ErrTakeUsed) ||
		errors.Is(err, lottery.ErrConflict) ||
		errors.Is(err, lottery.ErrNotFound) ||
		errors.Is(err, lottery.ErrInvalid)
}

// batch is the transaction of one group commit as the requests' ops see it.
type batch struct {
	ctx    context.Context
	cancel context.CancelFunc
	tx     *sql.Tx
	w      *writer
	stmts  []*sql.Stmt // transaction-bound statements, made on first use
	// wrote is set when a statement changed a row (see runFast).
	wrote bool
}

// end releases the batch's context once its transaction has ended.
func (b *batch) end() { b.cancel() }

func (b *batch) stmt(k writeKind, tb int) *sql.Stmt {
	i := writeIndex(k, tb, b.w.tbCount)
	if b.stmts[i] == nil {
		b.stmts[i] = b.tx.StmtContext(b.ctx, b.w.stmts[i])
	}
	return b.stmts[i]
}

// exec runs a prepared write and returns the number of rows it changed.
func (b *batch) exec(k writeKind, tb int, args ...any) (int64, error) {
	res, err := b.stmt(k, tb).ExecContext(b.ctx, args...)
	return b.affected(res, err)
}

// execID is exec that also returns the statement's last insert id (MySQL
// reports LAST_INSERT_ID(expr) there; see mysqlDecrement).
func (b *batch) execID(k writeKind, tb int, args ...any) (n, id int64, err error) {
	res, err := b.stmt(k, tb).ExecContext(b.ctx, args...)
	if n, err = b.affected(res, err); err != nil {
		return 0, 0, err
	}
	id, err = res.LastInsertId()
	return n, id, err
}

// execSQL runs a statement that is not prepared (its text depends on the
// arguments, such as an IN list) and returns the number of rows it changed.
func (b *batch) execSQL(query string, args ...any) (int64, error) {
	res, err := b.tx.ExecContext(b.ctx, query, args...)
	return b.affected(res, err)
}

// affected notes a changed row. A failed statement changed nothing: SQLite
// and InnoDB statements are atomic.
func (b *batch) affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if n > 0 {
		b.wrote = true
	}
	return n, err
}

// queryRow runs a statement that returns one row. For a writing statement
// with RETURNING, a row scanned means a row changed.
func (b *batch) queryRow(k writeKind, tb int, args ...any) rowScanner {
	return rowScanner{row: b.stmt(k, tb).QueryRowContext(b.ctx, args...), b: b, writes: k == wDecrement}
}

type rowScanner struct {
	row    *sql.Row
	b      *batch
	writes bool
}

func (r rowScanner) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if err == nil && r.writes {
		r.b.wrote = true
	}
	return err
}

// writeKind names a statement of the write path.
type writeKind int

// The write statements. The first kinds write an order table, one of
// tbCount; kinds from wDecrement on have one table per database (the take
// and count tables) or none (the savepoints), and take dbTable as table.
const (
	wInsertOrder writeKind = iota
	wGrant
	wOrderExists
	wDecrement
	wInsertTake
	wUseTake
	wTakeState
	wSavepoint
	wRelease
	wRollbackTo
	numWriteKinds
)

// dbTable is the table argument of the kinds with one table per database.
const dbTable = 0

func writeIndex(k writeKind, tb, tbCount int) int {
	if k >= wDecrement {
		tb = dbTable
	}
	return int(k)*tbCount + tb
}

// The columns of a take and of an order, and the placeholders of one row
// (the take's arguments are those takeReq.appendArgs appends, the order's
// those orderOf returns).
const (
	takeColumns = ` (take_id, user_id, activity_id, strategy_id, take_count, state, award_id, uuid, take_date)
		VALUES `
	takeRow       = `(?, ?, ?, ?, ?, ?, ?, ?, ?)`
	exportColumns = ` (order_id, user_id, activity_id, strategy_id, strategy_mode, grant_type, grant_date,
		grant_state, award_id, award_type, award_name, award_content, uuid, mq_state, module, seed, order_time, update_time)
		VALUES `
	exportRow = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)`
)

// writeSQL returns the statement of kind k on order table tb in dialect d.
// Only the count decrement and the savepoint statements differ between
// dialects.
func writeSQL(d *dialect, k writeKind, tb int) string {
	take := TableTake
	export := ShardTable(TableExport, tb)
	switch k {
	case wDecrement:
		return d.decrementSQL(TableTakeCount)
	case wInsertTake:
		return `INSERT INTO ` + take + takeColumns + takeRow
	case wUseTake:
		return `UPDATE ` + take + ` SET state = 1, award_id = ? WHERE take_id = ? AND user_id = ? AND state = 0`
	case wTakeState:
		return `SELECT state FROM ` + take + ` WHERE take_id = ? AND user_id = ?`
	case wInsertOrder:
		return `INSERT INTO ` + export + exportColumns + exportRow
	case wGrant:
		// A grant proves the invoice was published: it also moves mq_state to
		// 1, so the relay's later confirmation finds nothing to write.
		return `UPDATE ` + export + ` SET grant_state = 1, mq_state = 1, update_time = ? WHERE order_id = ? AND user_id = ? AND grant_state = 0`
	case wOrderExists:
		return `SELECT 1 FROM ` + export + ` WHERE order_id = ? AND user_id = ?`
	case wSavepoint, wRelease, wRollbackTo:
		return d.savepointSQL[k-wSavepoint]
	}
	panic(fmt.Sprintf("orders: unknown write statement %d", k))
}

// prepareWrites prepares every write statement of a shard database on db.
func prepareWrites(ctx context.Context, d *dialect, db *sql.DB, tbCount int) ([]*sql.Stmt, error) {
	stmts := make([]*sql.Stmt, int(numWriteKinds)*tbCount)
	for k := range numWriteKinds {
		for tb := range tbCount {
			if k >= wDecrement && tb > dbTable {
				break
			}
			s, err := db.PrepareContext(ctx, writeSQL(d, k, tb))
			if err != nil {
				closeStmts(stmts)
				return nil, err
			}
			stmts[writeIndex(k, tb, tbCount)] = s
		}
	}
	return stmts, nil
}

func closeStmts(stmts []*sql.Stmt) {
	for _, s := range stmts {
		if s != nil {
			_ = s.Close()
		}
	}
}

// ---- Multi-row statements ----

// takeReq is the arguments of a Take, or with draw of a TakeDraw (the take
// is inserted used, with draw's award, and draw's order, if any, beside
// it); nth is its answer, the user's n-th take of the activity.
type takeReq struct {
	tb                     int
	takeID                 int64
	userID                 string
	activityID, strategyID int64
	takeCount              int
	atMS                   int64
	draw                   *drawReq
	nth                    int
}

// appendArgs appends the arguments of takeRow for the take numbered t.nth
// to args.
func (t *takeReq) appendArgs(args []any) []any {
	uuid := t.userID + "_" + strconv.FormatInt(t.activityID, 10) + "_" + strconv.Itoa(t.nth)
	state, award := 0, ""
	if t.draw != nil {
		state, award = 1, t.draw.awardID
	}
	return append(args, t.takeID, t.userID, t.activityID, t.strategyID, t.nth, state, award, uuid, t.atMS)
}

// drawReq is the arguments of a Draw; order holds the arguments of
// exportRow, nil for a lost draw.
type drawReq struct {
	tb      int
	takeID  int64
	userID  string
	awardID string
	order   []any
}

// grantReq is the arguments of a Grant; moved and err are its answer.
type grantReq struct {
	tb      int
	orderID int64
	userID  string
	now     int64
	moved   bool
	err     error
}

// bulkable counts the requests runBulk runs in multi-row statements.
func bulkable(reqs []*request) int {
	n := 0
	for _, r := range reqs {
		if r.take != nil || r.draw != nil || r.grants != nil || r.stmts != nil {
			n++
		}
	}
	return n
}

// countKey names a count row; countRow is what runBulk knows of it.
type countKey struct {
	userID     string
	activityID int64
}

type countRow struct {
	total, left   int
	exists, dirty bool
}

// rowKey names an order of order table tb; idRow is what runBulk knows of
// a take or an order: its user, and whether it is used (a take) or granted
// (an order).
type rowKey struct {
	tb int
	id int64
}

type idRow struct {
	userID string
	done   bool
}

// sqlText is a statement and its arguments.
type sqlText struct {
	query string
	args  []any
}

// runBulk runs the batch's takes, draws and grants in a few multi-row
// statements instead of one or two statements each, and the other requests
// one at a time (runFast), in b's transaction. It reads the rows the
// requests depend on first, in one query, locking them (SELECT ... FOR
// UPDATE on MySQL; the SQLite writer holds the database's write lock): the
// count rows of the takes, the takes of the draws, the orders of the
// grants. It then decides each request in Go, as its statements one at a
// time would in the batch's order (a take past the user's limit is
// ErrLimitReached, a draw of a used take ErrTakeUsed, of a missing take or
// another user's ErrNotFound, a repeated grant moves nothing), and writes
// the outcome with one statement per table and kind: the new count rows,
// the changed ones, the takes, the used takes, the orders, the granted
// orders (on MySQL as one text, one round trip).
//
// Failures decided in Go write nothing and leave the others going. A
// request failing inside a multi-row statement (a duplicate take or order
// id, a value a column refuses, a count row another process created since
// the read, which cannot lock a missing row) fails the statement: runBulk
// then asks for a redo one request at a time, which gives the error to
// exactly the requests that cause it. Store failures and deadlocks come
// back as err, as on the other path.
func (w *writer) runBulk(b *batch, reqs []*request) (redo bool, err error) {
	p, others := w.plan(reqs)
	if query, args := p.read(w.d.union); query != "" {
		if err := b.query(query, args, p.scan); err != nil {
			return w.bulkErr(err)
		}
	}
	p.decide(reqs)
	if err := b.execAll(p.appendWrites(nil)); err != nil {
		return w.bulkErr(err)
	}
	return w.runFast(b, others)
}

// runBulkConn is tryBulk for a batch that runBulk takes whole (takes,
// draws, grants and outbox updates, nothing else), on a backend that takes
// several statements per text (MySQL). It runs outside database/sql's
// transactions, on the writer's connection: START TRANSACTION rides with
// the read and COMMIT with the writes, so the batch costs two round trips
// instead of four (one when it is written blind). On a failure it rolls back, or, if that fails too,
// drops the connection, so a transaction never outlives its batch. A
// failure of the writes' text is the "commit" step (its outcome unknown,
// never retried) unless the server answered a statement's error
// (dialect.statementErr), which stops the text before its COMMIT.
func (w *writer) runBulkConn(reqs []*request) (step string, redo bool, err error) {
	ctx, cancel := w.batchContext()
	defer cancel()
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return "begin", false, err
	}
	defer conn.Close()
	fail := func(step string, err error) (string, bool, error) {
		_ = rollback(conn)
		redo, err := w.bulkErr(err)
		return step, redo, err
	}
	p, _ := w.plan(reqs)
	if p.countsOnly() && w.blindTurn() {
		hit, step, err := w.writeBlind(ctx, conn, p, reqs)
		switch {
		case err != nil:
			return fail(step, err)
		case hit:
			return "", false, nil
		}
		p, _ = w.plan(reqs)
	}
	// START TRANSACTION rides with the read, or with the writes when there
	// is nothing to read.
	var ws []sqlText
	if query, args := p.read(w.d.union); query == "" {
		ws = append(ws, sqlText{query: `START TRANSACTION`})
	} else {
		rows, err := conn.QueryContext(ctx, "START TRANSACTION;\n"+query, args...)
		if err != nil {
			return fail("batch", err)
		}
		if err := scanAll(rows, p.scan); err != nil {
			return fail("batch", err)
		}
	}
	p.decide(reqs)
	query, args := p.commitText(ws)
	if _, err := conn.ExecContext(ctx, query, args...); err != nil {
		step := "commit"
		if w.d.statementErr(err) {
			step = "batch"
		}
		return fail(step, err)
	}
	return "", false, nil
}

// blindSkipAfterMiss is how many batches read first after a blind write
// met a count row: users who draw again make blind writes misses, and
// each miss costs a round trip.
const blindSkipAfterMiss = 64

// blindTurn reports whether a batch that could be written blind is, and
// counts down the batches that read first after a miss.
func (w *writer) blindTurn() bool {
	for {
		n := w.blindSkip.Load()
		if n <= 0 {
			return true
		}
		if w.blindSkip.CompareAndSwap(n, n-1) {
			return false
		}
	}
}

// countsOnly reports whether the read of p would fetch nothing but count
// rows: the batch is new takes (and their draws) and outbox updates.
func (p *bulkPlan) countsOnly() bool {
	if len(p.countGroups) == 0 || len(p.drawIDs) > 0 {
		return false
	}
	for tb := range p.tbCount {
		if len(p.grantIDs[tb]) > 0 {
			return false
		}
	}
	return true
}

// writeBlind writes a batch of new takes as if none of their users had a
// count row, which is what the read finds for a user's first draw: the
// count rows are inserted, so a row that exists fails the insert with a
// duplicate key and the text stops before its COMMIT. It then rolls back
// and reports false (the caller reads and decides again), and the next
// blindSkipAfterMiss batches read first. It reports true when the batch
// committed. An error comes with its step as runBulkConn names them:
// "batch" when the server answered a statement's error (nothing
// committed), "commit" when the text got no answer (its outcome unknown).
//
// The read cannot lock a count row that does not exist either, so a row
// another process inserts between the read and the writes fails the same
// insert: writing blind changes no outcome, it saves the read's round
// trip and its query, about a tenth of the server's CPU per draw.
func (w *writer) writeBlind(ctx context.Context, conn *sql.Conn, p *bulkPlan, reqs []*request) (hit bool, step string, err error) {
	p.decide(reqs)
	w.blind.Add(1)
	query, args := p.commitText([]sqlText{{query: `START TRANSACTION`}})
	_, err = conn.ExecContext(ctx, query, args...)
	switch {
	case err == nil:
		return true, "", nil
	case !w.d.statementErr(err):
		return false, "commit", err
	case !errors.Is(w.d.mapErr(err), lottery.ErrConflict):
		return false, "batch", err
	}
	w.blindMisses.Add(1)
	w.blindSkip.Store(blindSkipAfterMiss)
	if rollback(conn) != nil {
		// Nothing committed, and the connection is gone with its
		// transaction: the batch fails on the duplicate (whose requests
		// then run one at a time).
		return false, "batch", err
	}
	return false, "", nil
}

// commitText is the text of one round trip that writes what decide found
// after the statements of begin, and commits.
func (p *bulkPlan) commitText(begin []sqlText) (string, []any) {
	return joinSQL(append(p.appendWrites(begin), sqlText{query: `COMMIT`}))
}

// rollback rolls back the transaction open on conn or, if that fails,
// drops the connection, so the transaction does not outlive its batch.
func rollback(conn *sql.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
	defer cancel()
	_, err := conn.ExecContext(ctx, `ROLLBACK`)
	if err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	return err
}

// rollbackTimeout bounds the ROLLBACK after a failed batch.
const rollbackTimeout = time.Second

// bulkErr sorts an error of runBulk's statements: a request's own failure
// (a duplicate key, a value a column refuses) asks for a redo one request
// at a time; anything else fails the attempt (and a deadlock retries it).
func (w *writer) bulkErr(err error) (redo bool, _ error) {
	if w.d.retry != nil && w.d.retry(err) {
		return false, err
	}
	if requestError(w.d.mapErr(err)) {
		return true, nil
	}
	return false, err
}

// bulkPlan is what runBulk reads, decides and writes for one batch.
type bulkPlan struct {
	tbCount     int
	countGroups []countGroup
	drawIDs     []int64   // takes to read (one take table)
	grantIDs    [][]int64 // orders to read, by order table
	counts      map[countKey]*countRow
	takes       map[int64]*idRow  // by take id
	orders      map[rowKey]*idRow // by order table and id
	// What decide found: the takes (one table), the orders by table.
	newTakes  []*takeReq
	usedTakes []*drawReq
	newOrders [][]*drawReq
	granted   [][]*grantReq
	// extra are the statements of requests that decide nothing, written
	// last.
	extra []sqlText
}

// plan lists what the batch's takes, draws and grants must read (count
// rows by activity, takes by id, orders by order table) and returns the
// other requests.
func (w *writer) plan(reqs []*request) (p *bulkPlan, others []*request) {
	p = &bulkPlan{
		tbCount:   w.tbCount,
		grantIDs:  make([][]int64, w.tbCount),
		counts:    map[countKey]*countRow{},
		takes:     map[int64]*idRow{},
		orders:    map[rowKey]*idRow{},
		newOrders: make([][]*drawReq, w.tbCount),
		granted:   make([][]*grantReq, w.tbCount),
	}
	groupOf := map[int64]int{} // activity -> its index in countGroups
	for _, r := range reqs {
		r.err = nil
		switch {
		case r.take != nil:
			t := r.take
			i, ok := groupOf[t.activityID]
			if !ok {
				i = len(p.countGroups)
				groupOf[t.activityID] = i
				p.countGroups = append(p.countGroups, countGroup{activityID: t.activityID})
			}
			k := countKey{t.userID, t.activityID}
			if _, ok := p.counts[k]; !ok {
				p.counts[k] = nil // listed; scan fills it if it exists
				p.countGroups[i].users = append(p.countGroups[i].users, t.userID)
			}
		case r.draw != nil:
			p.drawIDs = append(p.drawIDs, r.draw.takeID)
		case r.grants != nil:
			for _, g := range r.grants {
				p.grantIDs[g.tb] = append(p.grantIDs[g.tb], g.orderID)
			}
		case r.stmts != nil:
			p.extra = append(p.extra, r.stmts...)
		default:
			others = append(others, r)
		}
	}
	return p, others
}

// The kinds of row the read returns.
const (
	readCount = iota
	readTake
	readOrder
)

// read returns the query that reads what the requests depend on, its
// SELECTs joined by union: a row per count row, take or order, as (kind,
// table, user, id, state, left), where table is the order table (0 for the
// count and take rows, of one table each), and for a count row id is the
// activity and state the total count. It is "" when there is nothing to
// read.
func (p *bulkPlan) read(union func([]string) string) (string, []any) {
	var (
		parts []string
		args  []any
	)
	for _, g := range p.countGroups {
		parts = append(parts, `SELECT `+strconv.Itoa(readCount)+` AS k, 0 AS tb, user_id, activity_id, total_count, left_count
			FROM `+TableTakeCount+` WHERE activity_id = ? AND user_id IN (`+marks(len(g.users))+`)`)
		args = append(args, g.activityID)
		for _, u := range g.users {
			args = append(args, u)
		}
	}
	readIDs := func(kind, tb int, ids []int64, table, idCol, stateCol string) {
		if len(ids) == 0 {
			return
		}
		ids = uniqueIDs(ids)
		parts = append(parts, `SELECT `+strconv.Itoa(kind)+`, `+strconv.Itoa(tb)+`, user_id, `+idCol+`, `+stateCol+`, 0
			FROM `+table+` WHERE `+idCol+` IN (`+marks(len(ids))+`)`)
		for _, id := range ids {
			args = append(args, id)
		}
	}
	readIDs(readTake, 0, p.drawIDs, TableTake, "take_id", "state")
	for tb, ids := range p.grantIDs {
		readIDs(readOrder, tb, ids, ShardTable(TableExport, tb), "order_id", "grant_state")
	}
	if len(parts) == 0 {
		return "", nil
	}
	return union(parts), args
}

// scan records one row of the read.
func (p *bulkPlan) scan(rows *sql.Rows) error {
	var (
		kind, tb, state, left int
		user                  string
		id                    int64
	)
	if err := rows.Scan(&kind, &tb, &user, &id, &state, &left); err != nil {
		return err
	}
	switch kind {
	case readCount:
		p.counts[countKey{user, id}] = &countRow{total: state, left: left, exists: true}
	case readTake:
		p.takes[id] = &idRow{userID: user, done: state != 0}
	case readOrder:
		p.orders[rowKey{tb, id}] = &idRow{userID: user, done: state != 0}
	}
	return nil
}

// decide decides each take, draw and grant in the batch's order, setting
// the request's error and answer.
func (p *bulkPlan) decide(reqs []*request) {
	for _, r := range reqs {
		switch {
		case r.take != nil:
			t := r.take
			k := countKey{t.userID, t.activityID}
			c := p.counts[k]
			if c == nil {
				c = &countRow{total: t.takeCount, left: t.takeCount}
				p.counts[k] = c
			}
			if c.left <= 0 {
				r.err = lottery.ErrLimitReached
				continue
			}
			t.nth = c.total - c.left + 1
			c.left--
			c.dirty = true
			p.newTakes = append(p.newTakes, t)
			if t.draw != nil && t.draw.order != nil {
				p.newOrders[t.tb] = append(p.newOrders[t.tb], t.draw)
			}
		case r.draw != nil:
			d := r.draw
			row := p.takes[d.takeID]
			switch {
			case row == nil || row.userID != d.userID:
				r.err = lottery.ErrNotFound
				continue
			case row.done:
				r.err = lottery.ErrTakeUsed
				continue
			}
			row.done = true
			p.usedTakes = append(p.usedTakes, d)
			if d.order != nil {
				p.newOrders[d.tb] = append(p.newOrders[d.tb], d)
			}
		case r.grants != nil:
			for _, g := range r.grants {
				row := p.orders[rowKey{g.tb, g.orderID}]
				if row == nil || row.userID != g.userID {
					g.moved, g.err = false, lottery.ErrNotFound
					continue
				}
				g.moved, g.err = !row.done, nil
				if g.moved {
					row.done = true
					p.granted[g.tb] = append(p.granted[g.tb], g)
				}
			}
		}
	}
}

// appendWrites appends to out the statements that write what decide
// found, one per table and kind: the count rows, the takes, then the
// orders of each order table.
func (p *bulkPlan) appendWrites(out []sqlText) []sqlText {
	for _, g := range p.countGroups {
		out = appendCountWrites(out, g, p.counts)
	}
	if ts := p.newTakes; len(ts) > 0 {
		args := make([]any, 0, 9*len(ts))
		for _, t := range ts {
			args = t.appendArgs(args)
		}
		out = append(out, sqlText{
			query: `INSERT INTO ` + TableTake + takeColumns + repeatRow(takeRow, len(ts)),
			args:  args,
		})
	}
	if ds := p.usedTakes; len(ds) > 0 {
		var sb strings.Builder
		args := make([]any, 0, 3*len(ds))
		sb.WriteString(`UPDATE ` + TableTake + ` SET state = 1, award_id = CASE take_id`)
		for _, d := range ds {
			sb.WriteString(` WHEN ? THEN ?`)
			args = append(args, d.takeID, d.awardID)
		}
		sb.WriteString(` END WHERE take_id IN (` + marks(len(ds)) + `)`)
		for _, d := range ds {
			args = append(args, d.takeID)
		}
		out = append(out, sqlText{query: sb.String(), args: args})
	}
	for tb := range p.tbCount {
		if ds := p.newOrders[tb]; len(ds) > 0 {
			args := make([]any, 0, len(ds[0].order)*len(ds))
			for _, d := range ds {
				args = append(args, d.order...)
			}
			out = append(out, sqlText{
				query: `INSERT INTO ` + ShardTable(TableExport, tb) + exportColumns + repeatRow(exportRow, len(ds)),
				args:  args,
			})
		}
		if gs := p.granted[tb]; len(gs) > 0 {
			args := make([]any, 0, 1+len(gs))
			args = append(args, gs[0].now)
			for _, g := range gs {
				args = append(args, g.orderID)
			}
			out = append(out, sqlText{
				query: `UPDATE ` + ShardTable(TableExport, tb) + ` SET grant_state = 1, mq_state = 1, update_time = ?
					WHERE order_id IN (` + marks(len(gs)) + `)`,
				args: args,
			})
		}
	}
	return append(out, p.extra...)
}

// countGroup lists the users a batch takes for in one activity, in order.
type countGroup struct {
	activityID int64
	users      []string
}

// appendCountWrites appends to out the statements that insert the count
// rows of g that are new and update those that changed. A new row is
// inserted, not upserted: if another process created it since the read
// (which cannot lock a missing row), the duplicate key sends the batch to
// the per-request path, whose upsert counts right.
func appendCountWrites(out []sqlText, g countGroup, counts map[countKey]*countRow) []sqlText {
	table := TableTakeCount
	var (
		inserts, updates []any
		n, m             int
		when             strings.Builder
	)
	for _, u := range g.users {
		c := counts[countKey{u, g.activityID}]
		switch {
		case c == nil || !c.dirty:
		case !c.exists:
			inserts = append(inserts, u, g.activityID, c.total, c.left)
			n++
		default:
			when.WriteString(` WHEN ? THEN ?`)
			updates = append(updates, u, c.left)
			m++
		}
	}
	if n > 0 {
		out = append(out, sqlText{
			query: `INSERT INTO ` + table + ` (user_id, activity_id, total_count, left_count) VALUES ` + repeatRow(`(?, ?, ?, ?)`, n),
			args:  inserts,
		})
	}
	if m > 0 {
		args := append(updates, g.activityID)
		for i := 0; i < len(updates); i += 2 {
			args = append(args, updates[i])
		}
		out = append(out, sqlText{
			query: `UPDATE ` + table + ` SET left_count = CASE user_id` + when.String() + ` END
				WHERE activity_id = ? AND user_id IN (` + marks(m) + `)`,
			args: args,
		})
	}
	return out
}

// query runs a query in the batch's transaction and scans each row.
func (b *batch) query(query string, args []any, scan func(*sql.Rows) error) error {
	rows, err := b.tx.QueryContext(b.ctx, query, args...)
	if err != nil {
		return err
	}
	return scanAll(rows, scan)
}

// scanAll scans each row and closes rows.
func scanAll(rows *sql.Rows, scan func(*sql.Rows) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}

// execAll runs the statements; on MySQL in one round trip.
func (b *batch) execAll(ws []sqlText) error {
	if len(ws) == 0 {
		return nil
	}
	if !b.w.d.multiStatements {
		for _, s := range ws {
			if _, err := b.tx.ExecContext(b.ctx, s.query, s.args...); err != nil {
				return err
			}
		}
		return nil
	}
	query, args := joinSQL(ws)
	_, err := b.tx.ExecContext(b.ctx, query, args...)
	return err
}

// joinSQL joins statements into one text of several statements.
func joinSQL(ss []sqlText) (string, []any) {
	var (
		sb strings.Builder
		n  int
	)
	for _, s := range ss {
		n += len(s.args)
	}
	args := make([]any, 0, n)
	for i, s := range ss {
		if i > 0 {
			sb.WriteString(";\n")
		}
		sb.WriteString(s.query)
		args = append(args, s.args...)
	}
	return sb.String(), args
}

// marks returns n comma-separated placeholders.
func marks(n int) string {
	return strings.Repeat("?, ", n-1) + "?"
}

// repeatRow returns n copies of a row's placeholders, comma-separated.
func repeatRow(row string, n int) string {
	return strings.Repeat(row+", ", n-1) + row
}

// uniqueIDs returns ids without repeats, in their first order.
func uniqueIDs(ids []int64) []int64 {
	seen := make(map[int64]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
