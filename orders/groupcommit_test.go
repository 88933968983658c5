package orders

import (
	"context"
	"errors"
	"testing"

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
func count(ctx context.Context, user string, tb int, ret func() error) *request {
	return &request{ctx: ctx, op: func(b *batch) error {
		if _, err := b.w.d.decrement(b, tb, user, 1, 3); err != nil {
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
		ua, tba := userOnShard(t, r, 0, "a")
		ub, tbb := userOnShard(t, r, 0, "b")
		uc, tbc := userOnShard(t, r, 0, "c")

		mixed := []*request{count(ctx, ua, tba, returns(nil)), count(ctx, ub, tbb, returns(lottery.ErrLimitReached)), count(ctx, uc, tbc, returns(nil))}
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

		ud, tbd := userOnShard(t, r, 0, "d")
		ue, tbe := userOnShard(t, r, 0, "e")
		broken := errors.New("disk on fire")
		failed := []*request{count(ctx, ud, tbd, returns(nil)), count(ctx, ue, tbe, returns(broken))}
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
		uf, tbf := userOnShard(t, r, 0, "f")
		single := []*request{count(ctx, uf, tbf, returns(lottery.ErrTakeUsed))}
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
		ua, tba := userOnShard(t, r, 0, "a")
		ub, tbb := userOnShard(t, r, 0, "b")
		attempts := 0
		once := func() error {
			attempts++
			if attempts == 1 {
				return deadlock
			}
			return nil
		}
		before := w.retries.Load()
		batch := []*request{count(ctx, ua, tba, returns(nil)), count(ctx, ub, tbb, once)}
		w.commit(batch)
		if batch[0].err != nil || batch[1].err != nil || attempts != 2 || w.retries.Load() != before+1 {
			t.Fatalf("after one deadlock: errors %v, %v; %d attempts, %d retries", batch[0].err, batch[1].err, attempts, w.retries.Load()-before)
		}
		if la, lb := left(t, s, ua), left(t, s, ub); la != 2 || lb != 2 {
			t.Fatalf("after a retried batch: left %d and %d, want 2 and 2 (one decrement each)", la, lb)
		}

		uc, tbc := userOnShard(t, r, 0, "c")
		always := []*request{count(ctx, uc, tbc, returns(deadlock))}
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
		err := s.shards[0].w.do(t.Context(), func(*batch) error { t.Error("op ran after Close"); return nil })
		if !errors.Is(err, lottery.ErrUnavailable) {
			t.Fatalf("do after Close: %v", err)
		}
		if _, err := s.Grant(t.Context(), lottery.OrderRef{UserID: "u", OrderID: 1}); !errors.Is(err, lottery.ErrUnavailable) {
			t.Fatalf("Grant after Close: %v", err)
		}
	})
}
