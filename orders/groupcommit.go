package orders

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
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
// goroutine (loop) owns the database's single write connection: it takes
// every request that is waiting, runs them in one transaction, commits once
// and answers each caller. One commit then carries up to maxBatch takes or
// draws, instead of one each: for SQLite that saves the commit's fsync, for
// MySQL the commit's round trip and redo-log write.
//
// A batch first runs without savepoints (the fast path); only when a request
// fails after writing does it run again with a SAVEPOINT per request (see
// runFast). A batch the server rolled back by itself (dialect.retry: a
// deadlock) runs again, at most maxAttempts times in all.
//
// Lifecycle: newWriter starts the goroutine; stop closes quit and waits for
// it. A batch that was taken is always finished and answered before the
// goroutine exits; a request not yet taken gets errClosed.
type writer struct {
	name    string
	d       *dialect
	db      *sql.DB     // one connection
	stmts   []*sql.Stmt // prepared on db, indexed by writeIndex
	tbCount int
	// timeout bounds one batch's transaction; 0 for no bound.
	timeout time.Duration
	reqs    chan *request // unbuffered: a send succeeds only when loop takes it
	quit    chan struct{}
	done    chan struct{}

	// commits and writes count transactions and the requests they carried;
	// retries the batches run again after the server rolled them back.
	commits, writes, retries atomic.Uint64
}

// request is one caller's write. op runs inside the batch's transaction and
// must leave the database unchanged when it returns an error (its savepoint
// is rolled back anyway). Only requestErrors are the request's own; any other
// error fails the whole batch.
type request struct {
	ctx  context.Context
	op   func(b *batch) error
	err  error
	done chan struct{}
}

// errClosed answers requests made after Close.
var errClosed = fmt.Errorf("store closed: %w", lottery.ErrUnavailable)

func newWriter(name string, d *dialect, db *sql.DB, stmts []*sql.Stmt, tbCount int, timeout time.Duration) *writer {
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
	go w.loop()
	return w
}

// do runs op in the next group commit and returns its error. Once the writer
// has taken the request, do waits for the commit even if ctx ends, so the
// answer is never ambiguous; the writer skips requests whose ctx ended
// before their turn.
func (w *writer) do(ctx context.Context, op func(b *batch) error) error {
	r := &request{ctx: ctx, op: op, done: make(chan struct{})}
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
	defer close(w.done)
	reqs := make([]*request, 0, maxBatch)
	for {
		select {
		case r := <-w.reqs:
			reqs = append(reqs, r)
		case <-w.quit:
			return
		}
		reqs = w.fill(reqs)
		if len(reqs) < maxBatch {
			// Yield once so the callers the previous commit just woke can
			// queue their next request: on 2 CPUs with 128 callers this took
			// the average batch from about 3 requests to about 35.
			runtime.Gosched()
			reqs = w.fill(reqs)
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

// fill appends the requests that are waiting, without blocking.
func (w *writer) fill(reqs []*request) []*request {
	for len(reqs) < maxBatch {
		select {
		case r := <-w.reqs:
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

// try runs live in one transaction: the fast path, then, if a request
// failed after writing, the savepoint path in a new transaction. It sets
// each request's own error; a failure of the batch comes back with the step
// that failed, and then nothing of the batch was written (unless the step
// is "commit", whose outcome the server did not tell).
func (w *writer) try(live []*request) (step string, err error) {
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
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if w.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, w.timeout)
	}
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	return &batch{ctx: ctx, cancel: cancel, tx: tx, w: w, stmts: make([]*sql.Stmt, len(w.stmts))}, nil
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

// The write statements. Kinds from wSavepoint on do not depend on the table.
const (
	wDecrement writeKind = iota
	wInsertTake
	wUseTake
	wTakeState
	wInsertOrder
	wGrant
	wOrderExists
	wSavepoint
	wRelease
	wRollbackTo
	numWriteKinds
)

func writeIndex(k writeKind, tb, tbCount int) int {
	if k >= wSavepoint {
		tb = 0
	}
	return int(k)*tbCount + tb
}

// writeSQL returns the statement of kind k on table tb in dialect d. Only
// the count decrement and the savepoint statements differ between dialects.
func writeSQL(d *dialect, k writeKind, tb int) string {
	take := ShardTable(TableTake, tb)
	export := ShardTable(TableExport, tb)
	switch k {
	case wDecrement:
		return d.decrementSQL(ShardTable(TableTakeCount, tb))
	case wInsertTake:
		return `INSERT INTO ` + take + ` (take_id, user_id, activity_id, strategy_id, take_count, state, award_id, uuid, take_date)
			VALUES (?, ?, ?, ?, ?, 0, '', ?, ?)`
	case wUseTake:
		return `UPDATE ` + take + ` SET state = 1, award_id = ? WHERE take_id = ? AND user_id = ? AND state = 0`
	case wTakeState:
		return `SELECT state FROM ` + take + ` WHERE take_id = ? AND user_id = ?`
	case wInsertOrder:
		return `INSERT INTO ` + export + ` (order_id, user_id, activity_id, strategy_id, strategy_mode, grant_type, grant_date,
			grant_state, award_id, award_type, award_name, award_content, uuid, mq_state, module, seed, order_time, update_time)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)`
	case wGrant:
		return `UPDATE ` + export + ` SET grant_state = 1, update_time = ? WHERE order_id = ? AND user_id = ? AND grant_state = 0`
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
			if k >= wSavepoint && tb > 0 {
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
