package orders

import (
	"context"
	"errors"
	"testing"

	"github.com/flashlottery/lottery/lottery"
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

// TestGroupCommitBatch runs hand-made batches through writer.commit: a
// request error rolls back that request only; any other error rolls back
// the whole batch and reaches every caller; a request whose context ended is
// skipped.
func TestGroupCommitBatch(t *testing.T) {
	r, _ := NewRouter(2, 4)
	s, err := OpenSQLite(t.TempDir(), r)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	w := s.shards[0].w
	// count writes a count row for user (activity 1) and then returns ret.
	count := func(user string, tb int, ret error) *request {
		return &request{ctx: ctx, op: func(b *batch) error {
			var total, left int
			if err := b.queryRow(wDecrement, tb, user, 1, 3).Scan(&total, &left); err != nil {
				return err
			}
			return ret
		}}
	}
	exists := func(user string) bool {
		st, err := s.UserState(ctx, user, 1)
		if err != nil {
			t.Fatal(err)
		}
		return st.Left >= 0
	}
	ua, tba := userOnShard(t, r, 0, "a")
	ub, tbb := userOnShard(t, r, 0, "b")
	uc, tbc := userOnShard(t, r, 0, "c")

	mixed := []*request{count(ua, tba, nil), count(ub, tbb, lottery.ErrLimitReached), count(uc, tbc, nil)}
	w.commit(mixed)
	if mixed[0].err != nil || !errors.Is(mixed[1].err, lottery.ErrLimitReached) || mixed[2].err != nil {
		t.Fatalf("mixed batch errors: %v, %v, %v", mixed[0].err, mixed[1].err, mixed[2].err)
	}
	if !exists(ua) || exists(ub) || !exists(uc) {
		t.Fatalf("mixed batch: rows of a, b, c exist: %v, %v, %v; want true, false, true", exists(ua), exists(ub), exists(uc))
	}

	ud, tbd := userOnShard(t, r, 0, "d")
	ue, tbe := userOnShard(t, r, 0, "e")
	broken := errors.New("disk on fire")
	failed := []*request{count(ud, tbd, nil), count(ue, tbe, broken)}
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
	single := []*request{count(uf, tbf, lottery.ErrTakeUsed)}
	w.commit(single)
	if !errors.Is(single[0].err, lottery.ErrTakeUsed) || exists(uf) {
		t.Fatalf("single failing request: %v, row exists %v", single[0].err, exists(uf))
	}
}

func TestWriterClosed(t *testing.T) {
	r, _ := NewRouter(1, 1)
	s, err := OpenSQLite(t.TempDir(), r)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err = s.shards[0].w.do(t.Context(), func(*batch) error { t.Error("op ran after Close"); return nil })
	if !errors.Is(err, lottery.ErrUnavailable) {
		t.Fatalf("do after Close: %v", err)
	}
	if _, err := s.Grant(t.Context(), lottery.OrderRef{UserID: "u", OrderID: 1}); !errors.Is(err, lottery.ErrUnavailable) {
		t.Fatalf("Grant after Close: %v", err)
	}
}
