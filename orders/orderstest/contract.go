// Package orderstest is the contract suite of the orders stores: every
// backend (the embedded SQLite store, MySQL) runs Run and must pass it
// unchanged, so the draw process can rely on the same semantics everywhere.
package orderstest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/orders"
)

// Store is everything an orders backend implements: the ports, and Take,
// the seed's take without its draw.
type Store interface {
	lottery.Orders
	Take(ctx context.Context, t *lottery.Take, takeCount int) error
	lottery.Outbox
	lottery.Granter
	lottery.CatalogAdmin
	lottery.Ledger
	lottery.SurplusWriter
}

// Auditor is implemented by stores that report an orders.Audit; when the
// store under test does, the hammers check the audit too.
type Auditor interface {
	Audit(ctx context.Context, activityID int64) (orders.Audit, error)
}

// Run runs the contract suite. open returns an empty store for one subtest
// and arranges its cleanup (t.Cleanup). Times are compared to the
// millisecond, in UTC: the precision every backend keeps.
func Run(t *testing.T, open func(t *testing.T) Store) {
	ids, err := lottery.NewSnowflake(1)
	if err != nil {
		t.Fatal(err)
	}
	c := &contract{open: open, ids: ids}
	t.Run("CatalogRoundTrip", c.catalogRoundTrip)
	t.Run("SaveConflict", c.saveConflict)
	t.Run("MoveState", c.moveState)
	t.Run("ActivitiesPaging", c.activitiesPaging)
	t.Run("SetSurplus", c.setSurplus)
	t.Run("TakeLimit", c.takeLimit)
	t.Run("UserState", c.userState)
	t.Run("DrawWin", c.drawWin)
	t.Run("DrawLose", c.drawLose)
	t.Run("TakeDraw", c.takeDraw)
	t.Run("TakeDrawHammer", c.takeDrawHammer)
	t.Run("Outbox", c.outbox)
	t.Run("Grant", c.grant)
	t.Run("Usage", c.usage)
	t.Run("UserOrders", c.userOrders)
	t.Run("HammerOneUser", c.hammerOneUser)
	t.Run("HammerManyUsers", c.hammerManyUsers)
}

type contract struct {
	open func(t *testing.T) Store
	ids  *lottery.Snowflake
}

// base is a fixed time with milliseconds, in UTC.
var base = time.Date(2026, 5, 1, 12, 0, 0, 123_000_000, time.UTC)

func testStrategy(id int64) *lottery.Strategy {
	return &lottery.Strategy{
		ID:        id,
		Desc:      "three prizes",
		Mode:      lottery.ModeSingle,
		GrantType: lottery.GrantScheduled,
		GrantDate: base.Add(48 * time.Hour),
		Module:    "native@1",
		Details: []lottery.StrategyDetail{
			{Award: lottery.Award{ID: "B2", Type: lottery.AwardCoupon, Name: "coupon", Content: "10 off"},
				AwardCount: 100, AwardSurplus: 90, Rate: 200_000},
			{Award: lottery.Award{ID: "A1", Type: lottery.AwardGoods, Name: "手机", Content: "phone, 128 GB"},
				AwardCount: 1, AwardSurplus: 1, Rate: 1},
			{Award: lottery.Award{ID: "C3", Type: lottery.AwardDescription, Name: "thanks", Content: ""},
				AwardCount: 0, AwardSurplus: 0, Rate: 0},
		},
	}
}

func testActivity(id, strategyID int64) *lottery.Activity {
	return &lottery.Activity{
		ID:           id,
		Name:         "flash sale " + strconv.FormatInt(id, 10),
		Desc:         "a test activity",
		BeginAt:      base,
		EndAt:        base.Add(time.Hour),
		StockCount:   10_000,
		StockSurplus: 9_999,
		TakeCount:    3,
		StrategyID:   strategyID,
		State:        lottery.StateEdit,
	}
}

func (c *contract) take(t *testing.T, st Store, user string, activity int64, takeCount int) *lottery.Take {
	t.Helper()
	tk := &lottery.Take{ID: c.ids.Next(), UserID: user, ActivityID: activity, StrategyID: 7, At: base}
	if err := st.Take(t.Context(), tk, takeCount); err != nil {
		t.Fatalf("Take(%s, %d): %v", user, activity, err)
	}
	return tk
}

func (c *contract) order(tk *lottery.Take, award lottery.Award, seed uint64, at time.Time) *lottery.Order {
	return &lottery.Order{
		ID:         c.ids.Next(),
		UserID:     tk.UserID,
		ActivityID: tk.ActivityID,
		StrategyID: tk.StrategyID,
		Mode:       lottery.ModeTotal,
		GrantType:  lottery.GrantScheduled,
		GrantDate:  base.Add(24 * time.Hour),
		Award:      award,
		TakeID:     tk.ID,
		Module:     "alias@2",
		Seed:       seed,
		At:         at,
	}
}

func (c *contract) win(t *testing.T, st Store, tk *lottery.Take, award lottery.Award, seed uint64, at time.Time) *lottery.Order {
	t.Helper()
	o := c.order(tk, award, seed, at)
	if err := st.Draw(t.Context(), tk, o); err != nil {
		t.Fatalf("Draw(take %d, win %s): %v", tk.ID, award.ID, err)
	}
	return o
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

var (
	awardA = lottery.Award{ID: "A", Type: lottery.AwardCoupon, Name: "coupon A", Content: "A-content"}
	awardB = lottery.Award{ID: "B", Type: lottery.AwardRedeemCode, Name: "code B", Content: "B-content"}
)

func (c *contract) catalogRoundTrip(t *testing.T) {
	st := c.open(t)
	ctx := t.Context()
	s, a := testStrategy(7), testActivity(100, 7)
	if err := st.SaveActivity(ctx, a, s); err != nil {
		t.Fatal(err)
	}
	gotA, err := st.Activity(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotA, a) {
		t.Errorf("Activity = %+v\nwant %+v", gotA, a)
	}
	gotS, err := st.Strategy(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotS, s) {
		t.Errorf("Strategy = %+v\nwant %+v", gotS, s)
	}
	_, err = st.Activity(ctx, 101)
	wantErr(t, "Activity(unknown)", err, lottery.ErrNotFound)
	_, err = st.Strategy(ctx, 8)
	wantErr(t, "Strategy(unknown)", err, lottery.ErrNotFound)
}

func (c *contract) saveConflict(t *testing.T) {
	st := c.open(t)
	ctx := t.Context()
	if err := st.SaveActivity(ctx, testActivity(1, 7), testStrategy(7)); err != nil {
		t.Fatal(err)
	}
	dup := testActivity(1, 7)
	dup.Name = "another name"
	wantErr(t, "SaveActivity(same id)", st.SaveActivity(ctx, dup, testStrategy(7)), lottery.ErrConflict)
	if a, err := st.Activity(ctx, 1); err != nil || a.Name != testActivity(1, 7).Name {
		t.Fatalf("after a conflicting save, Activity = %+v, %v", a, err)
	}
	// A strategy shared with identical content is fine.
	if err := st.SaveActivity(ctx, testActivity(2, 7), testStrategy(7)); err != nil {
		t.Fatalf("SaveActivity(shared identical strategy): %v", err)
	}
	// The same strategy id with other content conflicts and saves nothing.
	other := testStrategy(7)
	other.Details[0].Rate++
	wantErr(t, "SaveActivity(changed strategy)", st.SaveActivity(ctx, testActivity(3, 7), other), lottery.ErrConflict)
	_, err := st.Activity(ctx, 3)
	wantErr(t, "Activity after a conflicting strategy", err, lottery.ErrNotFound)
	// Invalid input changes nothing.
	bad := testActivity(4, 7)
	bad.TakeCount = 0
	wantErr(t, "SaveActivity(invalid)", st.SaveActivity(ctx, bad, testStrategy(7)), lottery.ErrInvalid)
	wantErr(t, "SaveActivity(strategy id mismatch)", st.SaveActivity(ctx, testActivity(5, 8), testStrategy(7)), lottery.ErrInvalid)
	_, err = st.Activity(ctx, 4)
	wantErr(t, "Activity after an invalid save", err, lottery.ErrNotFound)
}

func (c *contract) moveState(t *testing.T) {
	st := c.open(t)
	ctx := t.Context()
	if err := st.SaveActivity(ctx, testActivity(1, 7), testStrategy(7)); err != nil {
		t.Fatal(err)
	}
	if err := st.MoveState(ctx, 1, lottery.StateEdit, lottery.StateArraigned); err != nil {
		t.Fatalf("MoveState(edit -> submitted): %v", err)
	}
	wantErr(t, "MoveState(stale from)", st.MoveState(ctx, 1, lottery.StateEdit, lottery.StateClose), lottery.ErrConflict)
	wantErr(t, "MoveState(unknown)", st.MoveState(ctx, 2, lottery.StateEdit, lottery.StateArraigned), lottery.ErrNotFound)
	a, err := st.Activity(ctx, 1)
	if err != nil || a.State != lottery.StateArraigned {
		t.Fatalf("Activity after moves = %+v, %v; want state submitted", a, err)
	}
}

func (c *contract) activitiesPaging(t *testing.T) {
	st := c.open(t)
	ctx := t.Context()
	const n = 250
	for i := range n {
		// Insert out of id order: paging must still be by id.
		id := int64((i*7)%n + 1)
		if err := st.SaveActivity(ctx, testActivity(id, 7), testStrategy(7)); err != nil {
			t.Fatal(err)
		}
	}
	var (
		seen  []int64
		after int64
		pages int
	)
	for {
		page, err := st.Activities(ctx, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 100 {
			t.Fatalf("page of %d activities, limit 100", len(page))
		}
		pages++
		for _, a := range page {
			seen = append(seen, a.ID)
		}
		after = page[len(page)-1].ID
	}
	if pages != 3 || len(seen) != n || !slices.IsSorted(seen) || seen[0] != 1 || seen[n-1] != n {
		t.Fatalf("paging saw %d activities in %d pages (sorted %v)", len(seen), pages, slices.IsSorted(seen))
	}
}

func (c *contract) setSurplus(t *testing.T) {
	st := c.open(t)
	ctx := t.Context()
	if err := st.SaveActivity(ctx, testActivity(1, 7), testStrategy(7)); err != nil {
		t.Fatal(err)
	}
	check := func(what string, stock int64, awards map[string]int64) {
		t.Helper()
		a, err := st.Activity(ctx, 1)
		if err != nil || a.StockSurplus != stock {
			t.Fatalf("%s: Activity = %+v, %v; want stock surplus %d", what, a, err, stock)
		}
		s, err := st.Strategy(ctx, 7)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, d := range s.Details {
			got[d.ID] = d.AwardSurplus
		}
		if !reflect.DeepEqual(got, awards) {
			t.Fatalf("%s: award surplus %v, want %v", what, got, awards)
		}
		// Nothing else moved.
		want := testStrategy(7)
		for i := range want.Details {
			want.Details[i].AwardSurplus = s.Details[i].AwardSurplus
		}
		if !reflect.DeepEqual(s, want) {
			t.Fatalf("%s: Strategy = %+v, want %+v", what, s, want)
		}
	}
	check("before", 9_999, map[string]int64{"B2": 90, "A1": 1, "C3": 0})
	if err := st.SetSurplus(ctx, 1, 1234, map[string]int64{"B2": 42, "A1": 0}); err != nil {
		t.Fatal(err)
	}
	check("after a set", 1234, map[string]int64{"B2": 42, "A1": 0, "C3": 0})
	if err := st.SetSurplus(ctx, 1, 10_000, nil); err != nil {
		t.Fatal(err)
	}
	check("after a set without awards", 10_000, map[string]int64{"B2": 42, "A1": 0, "C3": 0})
	wantErr(t, "SetSurplus(unknown activity)", st.SetSurplus(ctx, 2, 1, nil), lottery.ErrNotFound)
	for _, bad := range []struct {
		name   string
		stock  int64
		awards map[string]int64
	}{
		{"negative stock", -1, nil},
		{"stock above its count", 10_001, nil},
		{"unknown award", 5, map[string]int64{"B2": 1, "Z9": 1}},
		{"award above its count", 5, map[string]int64{"A1": 2}},
		{"negative award", 5, map[string]int64{"B2": -1}},
	} {
		wantErr(t, "SetSurplus("+bad.name+")", st.SetSurplus(ctx, 1, bad.stock, bad.awards), lottery.ErrInvalid)
	}
	check("after refused sets", 10_000, map[string]int64{"B2": 42, "A1": 0, "C3": 0})
}

func (c *contract) takeLimit(t *testing.T) {
	st := c.open(t)
	ctx := t.Context()
	for i := 1; i <= 3; i++ {
		tk := c.take(t, st, "alice", 1, 3)
		if tk.TakeCount != i || tk.State != lottery.TakeUnused {
			t.Fatalf("take %d: TakeCount %d, state %d", i, tk.TakeCount, tk.State)
		}
	}
	extra := &lottery.Take{ID: c.ids.Next(), UserID: "alice", ActivityID: 1, StrategyID: 7, At: base}
	wantErr(t, "4th Take", st.Take(ctx, extra, 3), lottery.ErrLimitReached)
	wantErr(t, "Draw of the refused take", st.Draw(ctx, extra, nil), lottery.ErrNotFound)
	u, err := st.Usage(ctx, 1)
	if err != nil || u.Takes != 3 {
		t.Fatalf("Usage = %+v, %v; want 3 takes", u, err)
	}
	us, err := st.UserState(ctx, "alice", 1)
	if err != nil || us.Left != 0 {
		t.Fatalf("UserState = %+v, %v; want left 0", us, err)
	}
	// Another activity and another user have their own counts.
	c.take(t, st, "alice", 2, 1)
	c.take(t, st, "bob", 1, 3)
	// A repeated take id conflicts.
	dup := &lottery.Take{ID: c.take(t, st, "carol", 1, 3).ID, UserID: "carol", ActivityID: 1, At: base}
	wantErr(t, "Take(repeated id)", st.Take(ctx, dup, 3), lottery.ErrConflict)
	if us, _ := st.UserState(ctx, "carol", 1); us.Left != 2 {
		t.Fatalf("a conflicting take changed the count: left %d, want 2", us.Left)
	}
}

func (c *contract) userState(t *testing.T) {
	st := c.open(t)
	ctx := t.Context()
	us, err := st.UserState(ctx, "dave", 1)
	if err != nil || us.Left != -1 || us.Unused != nil {
		t.Fatalf("UserState(new user) = %+v, %v; want left -1, no take", us, err)
	}
	t1 := c.take(t, st, "dave", 1, 5)
	us, err = st.UserState(ctx, "dave", 1)
	if err != nil || us.Left != 4 || !reflect.DeepEqual(us.Unused, t1) {
		t.Fatalf("UserState after a take = %+v (%+v), %v; want left 4, take %+v", us, us.Unused, err, t1)
	}
	t2 := c.take(t, st, "dave", 1, 5)
	if us, _ = st.UserState(ctx, "dave", 1); us.Left != 3 || us.Unused == nil || us.Unused.ID != min(t1.ID, t2.ID) {
		t.Fatalf("UserState after two takes = %+v; want left 3 and the lowest take", us)
	}
	if err := st.Draw(ctx, t1, nil); err != nil {
		t.Fatal(err)
	}
	if us, _ = st.UserState(ctx, "dave", 1); us.Unused == nil || us.Unused.ID != t2.ID {
		t.Fatalf("UserState after drawing the first = %+v; want take %d", us, t2.ID)
	}
	c.win(t, st, t2, awardA, 1, base)
	if us, _ = st.UserState(ctx, "dave", 1); us.Unused != nil || us.Left != 3 {
		t.Fatalf("UserState after drawing both = %+v; want no unused take, left 3", us)
	}
}

func (c *contract) drawWin(t *testing.T) {
	st := c.open(t)
	ctx := t.Context()
	seeds := []uint64{1<<63 + 12345, math.MaxUint64, 0, 42}
	var want []lottery.Order
	for i, seed := range seeds {
		tk := c.take(t, st, "erin", 1, 10)
		o := c.win(t, st, tk, awardA, seed, base.Add(time.Duration(i)*time.Second))
		if tk.State != lottery.TakeUsed || tk.AwardID != "A" || o.MQState != lottery.MQInit || o.GrantState != lottery.GrantPending {
			t.Fatalf("after Draw: take %+v, order %+v", tk, o)
		}
		want = append(want, *o)
	}
	slices.Reverse(want)
	got, err := st.UserOrders(ctx, "erin", 10)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("UserOrders =\n%+v\nwant\n%+v", got, want)
	}
	// A second draw on the same take fails and writes no order.
	tk := c.take(t, st, "erin", 1, 10)
	c.win(t, st, tk, awardA, 1, base)
	again := c.order(tk, awardB, 2, base)
	wantErr(t, "second Draw", st.Draw(ctx, tk, again), lottery.ErrTakeUsed)
	wantErr(t, "second Draw (lose)", st.Draw(ctx, tk, nil), lottery.ErrTakeUsed)
	if got, _ := st.UserOrders(ctx, "erin", 10); len(got) != len(seeds)+1 {
		t.Fatalf("%d orders after a repeated draw, want %d", len(got), len(seeds)+1)
	}
	u, _ := st.Usage(ctx, 1)
	if u.Awards["A"] != int64(len(seeds)+1) || u.Awards["B"] != 0 {
		t.Fatalf("Usage awards = %v", u.Awards)
	}
	// A repeated order id conflicts and leaves the take unused.
	tk2 := c.take(t, st, "erin", 1, 10)
	dup := c.order(tk2, awardB, 3, base)
	dup.ID = want[0].ID
	wantErr(t, "Draw(repeated order id)", st.Draw(ctx, tk2, dup), lottery.ErrConflict)
	if us, _ := st.UserState(ctx, "erin", 1); us.Unused == nil || us.Unused.ID != tk2.ID {
		t.Fatalf("a conflicting draw used the take: %+v", us)
	}
}

func (c *contract) drawLose(t *testing.T) {
	st := c.open(t)
	ctx := t.Context()
	tk := c.take(t, st, "frank", 1, 2)
	if err := st.Draw(ctx, tk, nil); err != nil {
		t.Fatal(err)
	}
	if tk.State != lottery.TakeUsed || tk.AwardID != "" {
		t.Fatalf("after a losing Draw: %+v", tk)
	}
	if us, _ := st.UserState(ctx, "frank", 1); us.Unused != nil || us.Left != 1 {
		t.Fatalf("UserState after a losing draw = %+v", us)
	}
	if got, _ := st.UserOrders(ctx, "frank", 10); len(got) != 0 {
		t.Fatalf("a losing draw wrote orders: %+v", got)
	}
	wantErr(t, "Draw after a loss", st.Draw(ctx, tk, c.order(tk, awardA, 1, base)), lottery.ErrTakeUsed)
	if got, _ := st.UserOrders(ctx, "frank", 10); len(got) != 0 {
		t.Fatalf("a refused draw wrote orders: %+v", got)
	}
	auditOK(t, st, 1, 1, 1, 0)
}

// takeDraw holds TakeDraw to Take and Draw in one: the take is stored used
// with its award and the order beside it, under the same limit, and a
// refusal writes nothing.
func (c *contract) takeDraw(t *testing.T) {
	st := c.open(t)
	ctx := t.Context()
	newTake := func(user string) *lottery.Take {
		return &lottery.Take{ID: c.ids.Next(), UserID: user, ActivityID: 1, StrategyID: 7, At: base}
	}
	// A win: the take is used, with the award, and the order is pending.
	tk := newTake("gina")
	o := c.order(tk, awardA, 1<<63+7, base)
	if err := st.TakeDraw(ctx, tk, 3, o); err != nil {
		t.Fatal(err)
	}
	if tk.TakeCount != 1 || tk.State != lottery.TakeUsed || tk.AwardID != "A" || !tk.At.Equal(base) {
		t.Fatalf("take after TakeDraw (win): %+v", tk)
	}
	if o.MQState != lottery.MQInit || o.GrantState != lottery.GrantPending || o.TakeID != tk.ID {
		t.Fatalf("order after TakeDraw: %+v", o)
	}
	got, err := st.UserOrders(ctx, "gina", 10)
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], *o) {
		t.Fatalf("UserOrders = %+v, %v; want %+v", got, err, *o)
	}
	if us, _ := st.UserState(ctx, "gina", 1); us.Unused != nil || us.Left != 2 {
		t.Fatalf("UserState after TakeDraw = %+v; want no unused take, left 2", us)
	}
	// The drawn take cannot be drawn again.
	wantErr(t, "Draw of a drawn take", st.Draw(ctx, tk, nil), lottery.ErrTakeUsed)
	// A loss: the take is used, without an award, and there is no order.
	lost := newTake("gina")
	if err := st.TakeDraw(ctx, lost, 3, nil); err != nil {
		t.Fatal(err)
	}
	if lost.TakeCount != 2 || lost.State != lottery.TakeUsed || lost.AwardID != "" {
		t.Fatalf("take after TakeDraw (lose): %+v", lost)
	}
	// Take and TakeDraw share the count: an unused take stays unused.
	unused := c.take(t, st, "gina", 1, 3)
	if unused.TakeCount != 3 {
		t.Fatalf("Take after two TakeDraws: TakeCount %d, want 3", unused.TakeCount)
	}
	over := newTake("gina")
	wantErr(t, "TakeDraw over the limit", st.TakeDraw(ctx, over, 3, c.order(over, awardB, 1, base)), lottery.ErrLimitReached)
	if us, _ := st.UserState(ctx, "gina", 1); us.Left != 0 || us.Unused == nil || us.Unused.ID != unused.ID {
		t.Fatalf("UserState after a refused TakeDraw = %+v; want left 0 and take %d unused", us, unused.ID)
	}
	if got, _ := st.UserOrders(ctx, "gina", 10); len(got) != 1 {
		t.Fatalf("a refused TakeDraw wrote an order: %+v", got)
	}
	// A repeated take id or order id conflicts and writes nothing.
	dupTake := newTake("hank")
	dupTake.ID = tk.ID
	wantErr(t, "TakeDraw(repeated take id)", st.TakeDraw(ctx, dupTake, 3, nil), lottery.ErrConflict)
	dupOrder := newTake("hank")
	od := c.order(dupOrder, awardB, 2, base)
	od.ID = o.ID
	wantErr(t, "TakeDraw(repeated order id)", st.TakeDraw(ctx, dupOrder, 3, od), lottery.ErrConflict)
	if us, _ := st.UserState(ctx, "hank", 1); us.Left > 0 && us.Left != 3 || us.Unused != nil {
		t.Fatalf("conflicting TakeDraws changed hank's state: %+v", us)
	}
	if got, _ := st.UserOrders(ctx, "hank", 10); len(got) != 0 {
		t.Fatalf("conflicting TakeDraws wrote orders: %+v", got)
	}
	// Bad input is refused.
	bad := newTake("hank")
	wantErr(t, "TakeDraw(takeCount 0)", st.TakeDraw(ctx, bad, 0, nil), lottery.ErrInvalid)
	ob := c.order(bad, lottery.Award{}, 1, base)
	wantErr(t, "TakeDraw(order without award)", st.TakeDraw(ctx, bad, 3, ob), lottery.ErrInvalid)
	auditOK(t, st, 1, 3, 2, 1)
}

// takeDrawHammer runs TakeDraws of many users at once, so backends that
// batch writes see them together: one user over its limit, one request
// with a repeated order id among them, and every limit exact.
func (c *contract) takeDrawHammer(t *testing.T) {
	st := c.open(t)
	ctx := t.Context()
	users, per, limit := 32, 6, 4
	if testing.Short() {
		users = 8
	}
	const dupLimit = 10
	first := c.order(c.take(t, st, "dup", 1, dupLimit), awardA, 1, base)
	if err := st.Draw(ctx, &lottery.Take{ID: first.TakeID, UserID: "dup"}, first); err != nil {
		t.Fatal(err)
	}
	var (
		wg                    sync.WaitGroup
		wins, limited, confls atomic.Int64
	)
	for u := range users {
		for i := range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tk := &lottery.Take{ID: c.ids.Next(), UserID: "u" + strconv.Itoa(u), ActivityID: 1, StrategyID: 7, At: base}
				o := c.order(tk, awardA, uint64(i), base)
				if u == 0 && i == 0 { // a user whose only request repeats an order id
					tk.UserID, o.UserID, o.ID = "dup", "dup", first.ID
				}
				n := limit
				if tk.UserID == "dup" {
					n = dupLimit
				}
				switch err := st.TakeDraw(ctx, tk, n, o); {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, lottery.ErrLimitReached):
					limited.Add(1)
				case errors.Is(err, lottery.ErrConflict) && u == 0 && i == 0:
					confls.Add(1)
				default:
					t.Errorf("TakeDraw(u%d, %d): %v", u, i, err)
				}
			}()
		}
	}
	wg.Wait()
	if wins.Load() != int64(users*limit) || confls.Load() != 1 || limited.Load() != int64(users*(per-limit)-1) {
		t.Fatalf("wins %d, limited %d, conflicts %d; want %d, %d, 1", wins.Load(), limited.Load(), confls.Load(), users*limit, users*(per-limit)-1)
	}
	if us, _ := st.UserState(ctx, "dup", 1); us.Left != dupLimit-1 || us.Unused != nil {
		t.Fatalf("a conflicting TakeDraw changed the user's state: %+v", us)
	}
	for u := range users {
		us, err := st.UserState(ctx, "u"+strconv.Itoa(u), 1)
		if err != nil || us.Left != 0 || us.Unused != nil {
			t.Fatalf("UserState(u%d) = %+v, %v; want left 0, no unused take", u, us, err)
		}
	}
	auditOK(t, st, 1, int64(users*limit+1), int64(users*limit+1), int64(users*limit+1))
}

func (c *contract) outbox(t *testing.T) {
	st := c.open(t)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	staleBefore := now.Add(-time.Hour)
	type row struct {
		o     *lottery.Order
		state lottery.MQState
		old   bool
	}
	var rows []row
	// 24 users spread over the shards; orders alternate old and fresh and
	// cycle through init, failed and sent.
	for i := range 24 {
		tk := c.take(t, st, "user-"+strconv.Itoa(i), 1, 1)
		old := i%2 == 0
		at := now
		if old {
			at = staleBefore.Add(-time.Duration(24-i) * time.Minute)
		}
		rows = append(rows, row{o: c.win(t, st, tk, awardA, uint64(i), at), state: lottery.MQState(i / 2 % 3), old: old})
	}
	for _, state := range []lottery.MQState{lottery.MQFailed, lottery.MQSent} {
		var refs []lottery.OrderRef
		for _, r := range rows {
			if r.state == state {
				refs = append(refs, lottery.OrderRef{UserID: r.o.UserID, OrderID: r.o.ID})
			}
		}
		if err := st.SetMQState(ctx, refs, state); err != nil {
			t.Fatal(err)
		}
	}
	var want []int64
	for _, r := range rows {
		if r.state == lottery.MQFailed || (r.state == lottery.MQInit && r.old) {
			want = append(want, r.o.ID)
		}
	}
	got, err := st.Pending(ctx, staleBefore, 100)
	if err != nil {
		t.Fatal(err)
	}
	var gotIDs []int64
	for i, o := range got {
		gotIDs = append(gotIDs, o.ID)
		if i > 0 && o.At.Before(got[i-1].At) {
			t.Errorf("Pending not oldest first at %d", i)
		}
		if (o.MQState == lottery.MQInit && !o.At.Before(staleBefore)) || o.MQState == lottery.MQSent {
			t.Errorf("Pending returned order %d with mq_state %d at %v", o.ID, o.MQState, o.At)
		}
	}
	slices.Sort(gotIDs)
	slices.Sort(want)
	if !slices.Equal(gotIDs, want) {
		t.Fatalf("Pending = %v\nwant %v", gotIDs, want)
	}
	if got, err := st.Pending(ctx, staleBefore, 3); err != nil || len(got) != 3 {
		t.Fatalf("Pending(limit 3) = %d orders, %v", len(got), err)
	}
	// Sent orders read back as sent.
	for _, r := range rows {
		os, err := st.UserOrders(ctx, r.o.UserID, 1)
		if err != nil || len(os) != 1 || os[0].MQState != r.state {
			t.Fatalf("UserOrders(%s) = %+v, %v; want mq_state %d", r.o.UserID, os, err, r.state)
		}
	}
	if err := st.SetMQState(ctx, nil, lottery.MQSent); err != nil {
		t.Fatalf("SetMQState(no refs): %v", err)
	}
	wantErr(t, "SetMQState(bad state)", st.SetMQState(ctx, []lottery.OrderRef{{UserID: "x", OrderID: 1}}, 9), lottery.ErrInvalid)
}

func (c *contract) grant(t *testing.T) {
	st := c.open(t)
	ctx := t.Context()
	o := c.win(t, st, c.take(t, st, "gina", 1, 1), awardB, 9, base)
	ref := lottery.OrderRef{UserID: o.UserID, OrderID: o.ID}
	for i, want := range []bool{true, false, false} {
		moved, err := st.Grant(ctx, ref)
		if err != nil || moved != want {
			t.Fatalf("Grant #%d = %v, %v; want %v", i+1, moved, err, want)
		}
	}
	// The grant proves the invoice was published: mq_state 1 too.
	os, _ := st.UserOrders(ctx, "gina", 1)
	if len(os) != 1 || os[0].GrantState != lottery.GrantDone || os[0].MQState != lottery.MQSent {
		t.Fatalf("UserOrders after Grant = %+v, want granted with mq_state 1", os)
	}
	_, err := st.Grant(ctx, lottery.OrderRef{UserID: "gina", OrderID: o.ID + 1})
	wantErr(t, "Grant(unknown)", err, lottery.ErrNotFound)

	// Several at once, each answered as Grant would: across shards, a
	// repeat in the same call, an order already granted, an unknown one.
	gb, ok := st.(lottery.GrantBatch)
	if !ok {
		t.Fatalf("%T does not implement lottery.GrantBatch", st)
	}
	var refs []lottery.OrderRef
	for i, user := range []string{"gb1", "gb2", "gb3"} {
		o := c.win(t, st, c.take(t, st, user, 1, 1), awardB, uint64(10+i), base)
		refs = append(refs, lottery.OrderRef{UserID: o.UserID, OrderID: o.ID})
	}
	refs = append(refs, refs[0], ref, lottery.OrderRef{UserID: "gb2", OrderID: refs[1].OrderID + 7})
	moved, errs := make([]bool, len(refs)), make([]error, len(refs))
	gb.GrantEach(ctx, refs, moved, errs)
	wantMoved := []bool{true, true, true, false, false, false}
	for i := range refs {
		if moved[i] != wantMoved[i] || (i < 5) != (errs[i] == nil) {
			t.Errorf("GrantEach #%d (%+v) = %v, %v; want moved %v", i, refs[i], moved[i], errs[i], wantMoved[i])
		}
	}
	wantErr(t, "GrantEach(unknown)", errs[5], lottery.ErrNotFound)
	for _, user := range []string{"gb1", "gb2", "gb3"} {
		if os, _ := st.UserOrders(ctx, user, 1); len(os) != 1 || os[0].GrantState != lottery.GrantDone || os[0].MQState != lottery.MQSent {
			t.Errorf("UserOrders(%s) after GrantEach = %+v", user, os)
		}
	}
}

func (c *contract) usage(t *testing.T) {
	st := c.open(t)
	ctx := t.Context()
	c.win(t, st, c.take(t, st, "h1", 1, 5), awardA, 1, base)
	c.win(t, st, c.take(t, st, "h2", 1, 5), awardA, 2, base)
	c.win(t, st, c.take(t, st, "h3", 1, 5), awardB, 3, base)
	if err := st.Draw(ctx, c.take(t, st, "h1", 1, 5), nil); err != nil {
		t.Fatal(err)
	}
	c.take(t, st, "h4", 1, 5)
	c.take(t, st, "h4", 2, 5) // another activity
	u, err := st.Usage(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := lottery.Usage{Takes: 5, Awards: map[string]int64{"A": 2, "B": 1}}
	if !reflect.DeepEqual(u, want) {
		t.Fatalf("Usage = %+v, want %+v", u, want)
	}
	if u, err := st.Usage(ctx, 3); err != nil || u.Takes != 0 || len(u.Awards) != 0 {
		t.Fatalf("Usage(empty) = %+v, %v", u, err)
	}
	auditOK(t, st, 1, 5, 4, 3)
}

func (c *contract) userOrders(t *testing.T) {
	st := c.open(t)
	ctx := t.Context()
	var ids []int64
	for i := range 3 {
		o := c.win(t, st, c.take(t, st, "ivan", int64(i+1), 1), awardA, uint64(i), base.Add(time.Duration(i)*time.Minute))
		ids = append(ids, o.ID)
	}
	c.win(t, st, c.take(t, st, "judy", 1, 1), awardA, 1, base)
	got, err := st.UserOrders(ctx, "ivan", 10)
	if err != nil || len(got) != 3 || got[0].ID != ids[2] || got[1].ID != ids[1] || got[2].ID != ids[0] {
		t.Fatalf("UserOrders = %+v, %v; want ids %v newest first", got, err, ids)
	}
	if got, _ := st.UserOrders(ctx, "ivan", 2); len(got) != 2 || got[0].ID != ids[2] {
		t.Fatalf("UserOrders(limit 2) = %+v", got)
	}
	if got, err := st.UserOrders(ctx, "nobody", 2); err != nil || len(got) != 0 {
		t.Fatalf("UserOrders(nobody) = %+v, %v", got, err)
	}
}

func (c *contract) hammerOneUser(t *testing.T) {
	st := c.open(t)
	ctx := t.Context()
	const takeCount = 5
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		counts []int
		limits atomic.Int32
	)
	for range 32 {
		wg.Go(func() {
			tk := &lottery.Take{ID: c.ids.Next(), UserID: "hot-user", ActivityID: 1, StrategyID: 7}
			switch err := st.Take(ctx, tk, takeCount); {
			case err == nil:
				mu.Lock()
				counts = append(counts, tk.TakeCount)
				mu.Unlock()
			case errors.Is(err, lottery.ErrLimitReached):
				limits.Add(1)
			default:
				t.Errorf("Take: %v", err)
			}
		})
	}
	wg.Wait()
	slices.Sort(counts)
	if !slices.Equal(counts, []int{1, 2, 3, 4, 5}) || limits.Load() != 32-takeCount {
		t.Fatalf("32 concurrent takes: counts %v and %d refusals; want 1..5 and %d", counts, limits.Load(), 32-takeCount)
	}
	if u, _ := st.Usage(ctx, 1); u.Takes != takeCount {
		t.Fatalf("Usage.Takes = %d, want %d", u.Takes, takeCount)
	}
}

// hammerManyUsers runs workers over many users: each user takes until the
// limit and draws every take, wins and losses mixed, and some takes are
// drawn twice at once (exactly one may win). The store's counts must then
// match what the workers saw.
func (c *contract) hammerManyUsers(t *testing.T) {
	st := c.open(t)
	ctx := t.Context()
	users, workers := 400, 16
	if testing.Short() {
		users, workers = 60, 8
	}
	const (
		activity  = 1
		takeCount = 3
	)
	var (
		takes, used, wins, lost atomic.Int64
		byAward                 [2]atomic.Int64
		next                    atomic.Int64
		wg                      sync.WaitGroup
	)
	awards := [2]lottery.Award{awardA, awardB}
	for range workers {
		wg.Go(func() {
			for {
				u := int(next.Add(1)) - 1
				if u >= users {
					return
				}
				user := fmt.Sprintf("hammer-%d", u)
				for n := 0; ; n++ {
					tk := &lottery.Take{ID: c.ids.Next(), UserID: user, ActivityID: activity, StrategyID: 7}
					err := st.Take(ctx, tk, takeCount)
					if errors.Is(err, lottery.ErrLimitReached) {
						if n != takeCount {
							t.Errorf("%s: limit after %d takes, want %d", user, n, takeCount)
						}
						break
					}
					if err != nil {
						t.Errorf("Take: %v", err)
						return
					}
					takes.Add(1)
					switch k := (u + n) % 4; k {
					case 0, 1: // a single draw: win (k 0) or lose (k 1)
						var o *lottery.Order
						if k == 0 {
							o = c.order(tk, awards[u%2], uint64(u), time.Now())
						}
						if err := st.Draw(ctx, tk, o); err != nil {
							t.Errorf("Draw: %v", err)
							return
						}
						used.Add(1)
						if k == 0 {
							wins.Add(1)
							byAward[u%2].Add(1)
						}
					case 2: // two concurrent winning draws of one take
						var (
							ok    atomic.Int32
							inner sync.WaitGroup
						)
						for range 2 {
							inner.Go(func() {
								mine := *tk
								err := st.Draw(ctx, &mine, c.order(&mine, awards[u%2], uint64(u), time.Now()))
								switch {
								case err == nil:
									ok.Add(1)
								case !errors.Is(err, lottery.ErrTakeUsed):
									t.Errorf("concurrent Draw: %v", err)
								}
							})
						}
						inner.Wait()
						if ok.Load() != 1 {
							t.Errorf("take %d: %d concurrent draws succeeded, want 1", tk.ID, ok.Load())
						}
						used.Add(1)
						wins.Add(1)
						byAward[u%2].Add(1)
					case 3: // left unused
						lost.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	u, err := st.Usage(ctx, activity)
	if err != nil {
		t.Fatal(err)
	}
	wantUsage := lottery.Usage{Takes: takes.Load(), Awards: map[string]int64{}}
	for i, a := range awards {
		if n := byAward[i].Load(); n > 0 {
			wantUsage.Awards[a.ID] = n
		}
	}
	if takes.Load() != int64(users*takeCount) || !reflect.DeepEqual(u, wantUsage) {
		t.Fatalf("Usage = %+v, want %+v (%d users x %d)", u, wantUsage, users, takeCount)
	}
	auditOK(t, st, activity, takes.Load(), used.Load(), wins.Load())
}

// auditOK checks the store's audit when it has one.
func auditOK(t *testing.T, st Store, activity, takes, used, wins int64) {
	t.Helper()
	au, ok := st.(Auditor)
	if !ok {
		return
	}
	a, err := au.Audit(t.Context(), activity)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Err(); err != nil {
		t.Fatalf("%v: %+v", err, a)
	}
	if a.Takes != takes || a.UsedTakes != used || a.WonTakes != wins || a.Orders != wins || a.ByMQState[lottery.MQInit] != wins {
		t.Fatalf("Audit = %+v; want %d takes, %d used, %d won", a, takes, used, wins)
	}
}
