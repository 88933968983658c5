package lottery_test

import (
	"context"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
)

// surplusLog records what the reconciliation job writes.
type surplusLog struct {
	mu    sync.Mutex
	stock map[int64]int64
	award map[int64]map[string]int64
}

func (l *surplusLog) SetSurplus(_ context.Context, id, stock int64, awards map[string]int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stock[id] = stock
	l.award[id] = maps.Clone(awards)
	return nil
}

func TestReconcile(t *testing.T) {
	e := newEnv(t)
	e.deploy(t, activityDef{id: 31, stock: 10, awards: []award{{id: "x", count: 4, rate: 0.5}, {id: "y", count: 20, rate: 0.5}}})
	e.deploy(t, activityDef{id: 32, stock: 5, state: lottery.StateEdit}) // not in a sale: left alone
	for _, u := range []string{"a", "b", "c"} {
		if _, err := e.svc.Draw(t.Context(), u, 31); err != nil {
			t.Fatal(err)
		}
	}
	log := &surplusLog{stock: map[int64]int64{}, award: map[int64]map[string]int64{}}
	n, err := e.svc.Reconcile(t.Context(), log)
	if err != nil || n != 1 {
		t.Fatalf("reconciled %d, %v; want 1 activity", n, err)
	}
	if log.stock[31] != 7 {
		t.Fatalf("stock surplus %d, want 7", log.stock[31])
	}
	if got := log.award[31]["x"] + log.award[31]["y"]; got != 24-3 {
		t.Fatalf("award surplus %v, want 21 in all", log.award[31])
	}
	if _, ok := log.stock[32]; ok {
		t.Fatal("an activity in edit was reconciled")
	}
}

// TestReconcileGivesBackLeaks: units reserved and never recorded (an edge
// killed mid-draw) are given back once the difference has stood still for
// two draw timeouts, and a stock port that lost its counters is provisioned
// again.
func TestReconcileGivesBackLeaks(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	e := newEnv(t, withClock(clock))
	e.deploy(t, activityDef{id: 41, stock: 10, begin: now.Add(-time.Hour), end: now.Add(time.Hour)})
	if _, err := e.svc.Draw(t.Context(), "a", 41); err != nil {
		t.Fatal(err)
	}
	for range 3 { // three reservations nobody will ever record
		if _, err := e.mem.Reserve(t.Context(), lottery.StockKey{Activity: 41}); err != nil {
			t.Fatal(err)
		}
	}
	log := &surplusLog{stock: map[int64]int64{}, award: map[int64]map[string]int64{}}
	if _, err := e.svc.Reconcile(t.Context(), log); err != nil {
		t.Fatal(err)
	}
	if got := e.left(t, 41, ""); got != 6 {
		t.Fatalf("left %d right after the leak, want 6 (not given back yet)", got)
	}
	now = now.Add(5 * time.Second) // more than two draw timeouts (2s)
	if _, err := e.svc.Reconcile(t.Context(), log); err != nil {
		t.Fatal(err)
	}
	if got := e.left(t, 41, ""); got != 9 {
		t.Fatalf("left %d after reconciling, want 9", got)
	}
	if log.stock[41] != 9 {
		t.Fatalf("surplus %d written, want 9", log.stock[41])
	}
}
