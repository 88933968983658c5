package lottery_test

import (
	"context"
	"maps"
	"sync"
	"testing"

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
