package orders

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/go-sql-driver/mysql"
)

// userOnShard returns a user id that routes to database db.
func userOnShard(t *testing.T, r Router, db int, prefix string) (string, int) {
	t.Helper()
	for i := range 1000 {
		u := prefix + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if d, tb := r.Route(u); d == db {
			return u, tb
		}
	}
	t.Fatal("no user found for shard")
	return "", 0
}

// eachStore runs f on an empty store of each backend: SQLite always, MySQL
// when LOTTERY_TEST_MYSQL is set.
func eachStore(t *testing.T, r Router, f func(t *testing.T, s *store)) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := OpenSQLite(t.TempDir(), r)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		f(t, &s.store)
	})
	t.Run("mysql", func(t *testing.T) {
		s, err := OpenMySQL(t.Context(), MySQLTestConfig(t, r))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		f(t, &s.store)
	})
}

// count returns a request that takes for user (activity 1, take count 3),
// which writes the user's count row, and then returns ret.
func count(ctx context.Context, user string, ret func() error) *request {
	return &request{ctx: ctx, op: func(b *batch) error {
		if _, err := b.w.d.decrement(b, user, 1, 3); err != nil {
			return err
		}
		return ret()
	}}
}

func returns(err error) func() error { return func() error { return err } }

// left returns the user's left count, -1 without a count row.
func left(t *testing.T, s *store, user string) int {
	t.Helper()
	st, err := s.UserState(t.Context(), user, 1)
	if err != nil {
		t.Fatal(err)
	}
	return st.Left
}

// TestGroupCommitBatch runs hand-made batches through writer.commit: a
// request error rolls back that request only (the savepoint path); any
// other error rolls back the whole batch and reaches every caller; a request
// whose context ended is skipped.
func TestGroupCommitBatch(t *testing.T) {
	r, _ := NewRouter(2, 4)
	eachStore(t, r, func(t *testing.T, s *store) {
		ctx := t.Context()
		w := s.shards[0].w
		exists := func(user string) bool { return left(t, s, user) >= 0 }
		ua, _ := userOnShard(t, r, 0, "a")
		ub, _ := userOnShard(t, r, 0, "b")
		uc, _ := userOnShard(t, r, 0, "c")

		mixed := []*request{count(ctx, ua, returns(nil)), count(ctx, ub, returns(lottery.ErrLimitReached)), count(ctx, uc, returns(nil))}
		w.commit(mixed)
		if mixed[0].err != nil || !errors.Is(mixed[1].err, lottery.ErrLimitReached) || mixed[2].err != nil {
			t.Fatalf("mixed batch errors: %v, %v, %v", mixed[0].err, mixed[1].err, mixed[2].err)
		}
		if !exists(ua) || exists(ub) || !exists(uc) {
			t.Fatalf("mixed batch: rows of a, b, c exist: %v, %v, %v; want true, false, true", exists(ua), exists(ub), exists(uc))
		}
		if l := left(t, s, ua); l != 2 {
			t.Fatalf("mixed batch: a's count was decremented to %d, want 2 (once)", l)
		}

		ud, _ := userOnShard(t, r, 0, "d")
		ue, _ := userOnShard(t, r, 0, "e")
		broken := errors.New("disk on fire")
		failed := []*request{count(ctx, ud, returns(nil)), count(ctx, ue, returns(broken))}
		w.commit(failed)
		for i, req := range failed {
			if !errors.Is(req.err, lottery.ErrUnavailable) || !errors.Is(req.err, broken) {
				t.Errorf("failed batch, request %d: %v", i, req.err)
			}
		}
		if exists(ud) || exists(ue) {
			t.Fatal("a failed batch wrote rows")
		}

		canceled, cancel := context.WithCancel(ctx)
		cancel()
		ran := false
		skipped := []*request{{ctx: canceled, op: func(*batch) error { ran = true; return nil }}}
		w.commit(skipped)
		if ran || !errors.Is(skipped[0].err, context.Canceled) {
			t.Fatalf("canceled request ran %v, error %v", ran, skipped[0].err)
		}

		// A single request's own error rolls back its transaction.
		uf, _ := userOnShard(t, r, 0, "f")
		single := []*request{count(ctx, uf, returns(lottery.ErrTakeUsed))}
		w.commit(single)
		if !errors.Is(single[0].err, lottery.ErrTakeUsed) || exists(uf) {
			t.Fatalf("single failing request: %v, row exists %v", single[0].err, exists(uf))
		}
	})
}

// TestGroupCommitRetry checks that a batch the server rolled back by itself
// (a deadlock) runs again, at most maxAttempts times, and that a failed
// attempt leaves nothing behind.
func TestGroupCommitRetry(t *testing.T) {
	r, _ := NewRouter(1, 2)
	eachStore(t, r, func(t *testing.T, s *store) {
		if s.d.retry == nil {
			t.Skip(s.d.name + " has one writer per database: nothing to retry")
		}
		ctx := t.Context()
		w := s.shards[0].w
		deadlock := &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock"}
		ua, _ := userOnShard(t, r, 0, "a")
		ub, _ := userOnShard(t, r, 0, "b")
		attempts := 0
		once := func() error {
			attempts++
			if attempts == 1 {
				return deadlock
			}
			return nil
		}
		before := w.retries.Load()
		batch := []*request{count(ctx, ua, returns(nil)), count(ctx, ub, once)}
		w.commit(batch)
		if batch[0].err != nil || batch[1].err != nil || attempts != 2 || w.retries.Load() != before+1 {
			t.Fatalf("after one deadlock: errors %v, %v; %d attempts, %d retries", batch[0].err, batch[1].err, attempts, w.retries.Load()-before)
		}
		if la, lb := left(t, s, ua), left(t, s, ub); la != 2 || lb != 2 {
			t.Fatalf("after a retried batch: left %d and %d, want 2 and 2 (one decrement each)", la, lb)
		}

		uc, _ := userOnShard(t, r, 0, "c")
		always := []*request{count(ctx, uc, returns(deadlock))}
		w.commit(always)
		if !errors.Is(always[0].err, lottery.ErrUnavailable) || w.retries.Load() != before+maxAttempts {
			t.Fatalf("always deadlocked: %v after %d retries", always[0].err, w.retries.Load()-before)
		}
		if left(t, s, uc) != -1 {
			t.Fatal("a batch that never committed wrote a row")
		}
	})
}

func TestWriterClosed(t *testing.T) {
	r, _ := NewRouter(1, 1)
	eachStore(t, r, func(t *testing.T, s *store) {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		err := s.shards[0].w.run(&request{ctx: t.Context(), op: func(*batch) error { t.Error("op ran after Close"); return nil }})
		if !errors.Is(err, lottery.ErrUnavailable) {
			t.Fatalf("run after Close: %v", err)
		}
		if _, err := s.Grant(t.Context(), lottery.OrderRef{UserID: "u", OrderID: 1}); !errors.Is(err, lottery.ErrUnavailable) {
			t.Fatalf("Grant after Close: %v", err)
		}
	})
}

// withBulk runs f on each backend with the multi-row path on (SQLite's
// dialect turns it off by default: its statements cost little apart).
func withBulk(t *testing.T, r Router, f func(t *testing.T, s *store)) {
	eachStore(t, r, func(t *testing.T, s *store) {
		if !s.d.bulk {
			d := *s.d
			d.bulk = true
			s.d = &d
			for _, sh := range s.shards {
				sh.w.d = &d // before any request: the channel orders it
			}
		}
		f(t, s)
	})
}

// TestGroupCommitBulk runs hand-made batches of takes, draws and grants
// through writer.commit: each request gets the outcome it would get alone
// in the batch's order, from the multi-row path, and a request failing
// inside a multi-row statement (a duplicate key, a value a column refuses)
// sends the batch to the per-request path, which fails exactly that one.
func TestGroupCommitBulk(t *testing.T) {
	r, _ := NewRouter(1, 2)
	withBulk(t, r, func(t *testing.T, s *store) {
		ctx := t.Context()
		w := s.shards[0].w
		ids, _ := lottery.NewSnowflake(9)
		take := func(user string, takeCount int) (*request, *takeReq) {
			_, tb := r.Route(user)
			tr := &takeReq{tb: tb, takeID: ids.Next(), userID: user, activityID: 1, strategyID: 7, takeCount: takeCount, atMS: 1000}
			return s.takeRequest(ctx, tr), tr
		}
		draw := func(tb int, takeID int64, user string, orderID int64) *request {
			dr := &drawReq{tb: tb, takeID: takeID, userID: user, awardID: "A"}
			if orderID != 0 {
				dr.order = []any{orderID, user, int64(1), int64(7), lottery.ModeTotal, lottery.GrantImmediate, int64(0),
					lottery.GrantPending, "A", lottery.AwardCoupon, "coupon", "", takeID, "native", int64(1), int64(2000), int64(2000)}
			}
			return s.drawRequest(ctx, dr)
		}
		grant := func(tb int, orderID int64, user string) (*request, *grantReq) {
			g := &grantReq{tb: tb, orderID: orderID, userID: user, now: 3000}
			return grantRequest(ctx, []*grantReq{g}), g
		}
		run := func(reqs ...*request) { w.commit(reqs) }
		wantErrs := func(what string, reqs []*request, want ...error) {
			t.Helper()
			for i, r := range reqs {
				if (want[i] == nil) != (r.err == nil) || (want[i] != nil && !errors.Is(r.err, want[i])) {
					t.Errorf("%s: request %d: error %v, want %v", what, i, r.err, want[i])
				}
			}
		}

		// Set up: old has one of two takes left; u0's take is used, u1's is
		// not; g1 has a pending order.
		setup := []*request{}
		rq, _ := take("old", 2)
		setup = append(setup, rq)
		rq, t0 := take("u0", 1)
		setup = append(setup, rq)
		rq, t1 := take("u1", 1)
		setup = append(setup, rq)
		rq, tg := take("g1", 1)
		setup = append(setup, rq)
		run(setup...)
		wantErrs("setup takes", setup, nil, nil, nil, nil)
		o1 := ids.Next()
		setup = []*request{draw(t0.tb, t0.takeID, "u0", 0), draw(tg.tb, tg.takeID, "g1", o1)}
		run(setup...)
		wantErrs("setup draws", setup, nil, nil)

		fallbacks := w.fallbacks.Load()
		ta, n1a := take("n1", 3)
		tb, n1b := take("n1", 3)
		tc, oldc := take("old", 2)
		td, _ := take("old", 2)
		ga, gra := grant(tg.tb, o1, "g1")
		gb, grb := grant(tg.tb, o1, "g1")
		gc, grc := grant(tg.tb, o1+1, "g1")
		batch := []*request{ta, tb, tc, td,
			draw(t1.tb, t1.takeID, "u1", ids.Next()), // wins
			draw(t1.tb, t1.takeID, "u1", ids.Next()), // the same take again
			draw(t0.tb, t0.takeID, "u0", 0),          // used before the batch
			draw(t1.tb, t1.takeID, "u0", 0),          // another user's take
			draw(t1.tb, ids.Next(), "u1", 0),         // no such take
			ga, gb, gc}
		run(batch...)
		wantErrs("decided batch", batch, nil, nil, nil, lottery.ErrLimitReached,
			nil, lottery.ErrTakeUsed, lottery.ErrTakeUsed, lottery.ErrNotFound, lottery.ErrNotFound,
			nil, nil, nil) // a missing order is its grant's answer, not the request's error
		if n1a.nth != 1 || n1b.nth != 2 || oldc.nth != 2 || !gra.moved || grb.moved || gra.err != nil || grb.err != nil || !errors.Is(grc.err, lottery.ErrNotFound) {
			t.Errorf("decided batch: takes numbered %d, %d, %d (want 1, 2, 2); grants moved %v, %v (want true, false), errors %v, %v, %v (want nil, nil, not found)",
				n1a.nth, n1b.nth, oldc.nth, gra.moved, grb.moved, gra.err, grb.err, grc.err)
		}
		if w.fallbacks.Load() != fallbacks {
			t.Errorf("a batch of requests decided in Go fell back to one at a time")
		}
		if l := left(t, s, "n1"); l != 1 {
			t.Errorf("n1 has %d takes left, want 1", l)
		}
		if l := left(t, s, "old"); l != 0 {
			t.Errorf("old has %d takes left, want 0", l)
		}
		if st, err := s.UserState(ctx, "u1", 1); err != nil || st.Unused != nil {
			t.Errorf("u1's take is still unused after its draw: %+v, %v", st, err)
		}
		if os, err := s.UserOrders(ctx, "g1", 5); err != nil || len(os) != 1 || os[0].GrantState != lottery.GrantDone || os[0].MQState != lottery.MQSent {
			t.Errorf("g1's orders after the grants: %+v, %v; want granted, mq_state 1", os, err)
		}
		if os, err := s.UserOrders(ctx, "u1", 5); err != nil || len(os) != 1 {
			t.Errorf("u1 has %d orders after two draws of one take, want 1 (%v)", len(os), err)
		}

		// Requests that only write (SetMQState's) ride along, and alone.
		mq := func(orderID int64, user string, tb int) *request {
			refs := []lottery.OrderRef{{UserID: user, OrderID: orderID}}
			return execRequest(ctx, []sqlText{{query: setMQSQL(tb, 1), args: setMQArgs(lottery.MQFailed, 4000, refs)}})
		}
		for _, c := range []struct {
			batch []*request
			want  error
		}{
			{[]*request{mq(o1, "g1", tg.tb), mq(o1+1, "g1", tg.tb)}, nil},
			{[]*request{mq(o1, "g1", tg.tb), draw(t1.tb, t1.takeID, "u1", 0)}, lottery.ErrTakeUsed},
		} {
			run(c.batch...)
			wantErrs("batch with writes", c.batch, nil, c.want)
			if os, err := s.UserOrders(ctx, "g1", 5); err != nil || len(os) != 1 || os[0].MQState != lottery.MQFailed {
				t.Errorf("g1's orders after SetMQState(2): %+v, %v", os, err)
			}
		}

		// Duplicates inside multi-row statements: a repeated take id, an
		// existing order id. Exactly those requests fail.
		ta, n2 := take("n2", 3)
		tb, dup := take("n3", 3)
		dup.tb, dup.takeID = n2.tb, n2.takeID // the same id twice in one batch
		tc, n4 := take("n4", 3)
		td, _ = take("n5", 3)
		td.take.tb, td.take.takeID = t0.tb, t0.takeID // an id already stored
		_, t5 := take("u5", 1)
		run(s.takeRequest(ctx, t5))
		dupOrder := draw(t5.tb, t5.takeID, "u5", o1)
		batch = []*request{ta, tb, tc, td, dupOrder}
		run(batch...)
		wantErrs("batch with duplicates", batch, nil, lottery.ErrConflict, nil, lottery.ErrConflict, lottery.ErrConflict)
		if w.fallbacks.Load() != fallbacks+1 {
			t.Errorf("%d fallbacks, want 1", w.fallbacks.Load()-fallbacks)
		}
		if n2.nth != 1 || n4.nth != 1 {
			t.Errorf("takes numbered %d and %d, want 1 and 1", n2.nth, n4.nth)
		}
		for user, want := range map[string]int{"n2": 2, "n3": -1, "n4": 2, "n5": -1} {
			if l := left(t, s, user); l != want {
				t.Errorf("after the batch with duplicates, %s has %d takes left, want %d", user, l, want)
			}
		}
		if st, err := s.UserState(ctx, "u5", 1); err != nil || st.Unused == nil || st.Unused.ID != t5.takeID {
			t.Errorf("a draw with a conflicting order used its take: %+v, %v", st, err)
		}

		// A batch with a request of another kind runs in database/sql's
		// transaction (on MySQL, the other path of runBulk).
		uo, _ := userOnShard(t, r, 0, "o")
		ta, _ = take("m1", 2)
		tb, _ = take("m1", 2)
		batch = []*request{ta, count(ctx, uo, returns(nil)), tb, draw(t5.tb, t5.takeID, "u5", ids.Next())}
		run(batch...)
		wantErrs("mixed batch", batch, nil, nil, nil, nil)
		if l, lo := left(t, s, "m1"), left(t, s, uo); l != 0 || lo != 2 {
			t.Errorf("after the mixed batch: m1 has %d left (want 0), %s %d (want 2)", l, uo, lo)
		}

		if s.d.name == "mysql" {
			// A value the column refuses: a user id past VARBINARY(128).
			long := strings.Repeat("x", 200)
			ta, _ = take("v1", 1)
			tb, _ = take(long, 1)
			tb.take.tb = ta.take.tb
			batch = []*request{ta, tb}
			run(batch...)
			wantErrs("batch with a bad value", batch, nil, lottery.ErrInvalid)
			if l := left(t, s, "v1"); l != 0 {
				t.Errorf("v1 has %d takes left, want 0", l)
			}
		}
	})
}

// TestGroupCommitBulkLockWait holds a count row from another connection, as
// another edge would: the multi-row path's locking read waits LockWait,
// fails with a lock wait timeout, rolls back and runs again once the row is
// free, and the connection is fit for the next batch.
func TestGroupCommitBulkLockWait(t *testing.T) {
	r, _ := NewRouter(1, 1)
	cfg := MySQLTestConfig(t, r)
	cfg.Timeouts.LockWait = time.Second
	m, err := OpenMySQL(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s, ctx := &m.store, t.Context()
	w := s.shards[0].w
	ids, _ := lottery.NewSnowflake(10)
	take := func(user string) (*request, *takeReq) {
		tr := &takeReq{takeID: ids.Next(), userID: user, activityID: 1, strategyID: 7, takeCount: 5, atMS: 1000}
		return s.takeRequest(ctx, tr), tr
	}
	rq, _ := take("locked")
	w.commit([]*request{rq})
	if rq.err != nil {
		t.Fatal(rq.err)
	}
	tx := HoldCountRow(t, cfg.Shards[0], "locked", 4)
	before := w.retries.Load()
	a, ta := take("locked")
	b, tb := take("free")
	done := make(chan struct{})
	go func() { w.commit([]*request{a, b}); close(done) }()
	time.Sleep(1500 * time.Millisecond)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	<-done
	if a.err != nil || b.err != nil || ta.nth != 2 || tb.nth != 1 {
		t.Fatalf("after the row was freed: errors %v, %v; takes numbered %d, %d (want 2, 1)", a.err, b.err, ta.nth, tb.nth)
	}
	if w.retries.Load() == before {
		t.Fatal("no retry after a lock wait timeout")
	}
	c, _ := take("free")
	d, _ := take("next")
	w.commit([]*request{c, d})
	if c.err != nil || d.err != nil || left(t, s, "free") != 3 || left(t, s, "next") != 4 || left(t, s, "locked") != 3 {
		t.Fatalf("the batch after: %v, %v; left %d, %d, %d", c.err, d.err, left(t, s, "free"), left(t, s, "next"), left(t, s, "locked"))
	}
}

// A batch whose COMMIT went unanswered may have committed: its requests say
// the outcome is unknown; a batch that failed before its COMMIT did not.
func TestWriterFailOutcome(t *testing.T) {
	w := &writer{name: "db"}
	for _, c := range []struct {
		step    string
		unknown bool
	}{{"commit", true}, {"batch", false}, {"begin", false}} {
		r := &request{}
		w.fail([]*request{r}, c.step, errors.New("connection reset"))
		if !errors.Is(r.err, lottery.ErrUnavailable) || errors.Is(r.err, lottery.ErrOutcomeUnknown) != c.unknown {
			t.Errorf("step %s: %v; want unavailable, outcome unknown %v", c.step, r.err, c.unknown)
		}
	}
}
