package lottery_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/orders"
	"github.com/flashlottery/lottery/stock"
)

// The tests of this file run the draw process of lottery.Service on the real
// embedded adapters: the in-memory sliding stock and the sharded SQLite store
// (the seed's 2 databases x 4 tables), with the native drawer.

// env is a Service on the embedded adapters. Orders and Stock may be wrapped.
type env struct {
	store *orders.SQLite
	mem   *stock.Memory
	ids   *lottery.Snowflake
	svc   *lottery.Service
}

type envOption func(*lottery.Deps, *lottery.ServiceConfig)

func withOrders(o lottery.Orders) envOption {
	return func(d *lottery.Deps, _ *lottery.ServiceConfig) { d.Orders = o }
}

func withEvents(e lottery.Events) envOption {
	return func(d *lottery.Deps, _ *lottery.ServiceConfig) { d.Events = e }
}

func withClock(now func() time.Time) envOption {
	return func(_ *lottery.Deps, c *lottery.ServiceConfig) { c.Now = now }
}

// newStore opens the SQLite store in a fresh directory, closed at cleanup.
func newStore(t testing.TB) *orders.SQLite {
	t.Helper()
	router, err := orders.NewRouter(2, 4)
	if err != nil {
		t.Fatal(err)
	}
	s, err := orders.OpenSQLite(t.TempDir(), router)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	e := &env{store: newStore(t), mem: stock.NewMemory()}
	var err error
	if e.ids, err = lottery.NewSnowflake(1); err != nil {
		t.Fatal(err)
	}
	deps := lottery.Deps{
		Catalog: e.store, Orders: e.store, Ledger: e.store, Stock: e.mem, Admin: e.mem,
		Drawer: &lottery.NativeDrawer{}, IDs: e.ids,
	}
	var cfg lottery.ServiceConfig
	for _, o := range opts {
		o(&deps, &cfg)
	}
	if e.svc, err = lottery.NewService(deps, cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

// award is an award definition: count units at rate (a probability).
type award struct {
	id    string
	count int64
	rate  float64
}

// activityDef describes an activity to deploy; zero fields take defaults.
type activityDef struct {
	id         int64
	stock      int64
	takeCount  int
	state      lottery.State
	mode       lottery.Mode
	awards     []award
	begin, end time.Time
}

// deploy stores and provisions an activity (running, from an hour ago to an
// hour from now unless told otherwise) with a strategy of the same id.
func (e *env) deploy(t testing.TB, d activityDef) (*lottery.Activity, *lottery.Strategy) {
	t.Helper()
	now := time.Now()
	if d.state == 0 {
		d.state = lottery.StateDoing
	}
	if d.mode == 0 {
		d.mode = lottery.ModeTotal
	}
	if d.takeCount == 0 {
		d.takeCount = 1
	}
	if d.begin.IsZero() {
		d.begin = now.Add(-time.Hour)
	}
	if d.end.IsZero() {
		d.end = now.Add(time.Hour)
	}
	if len(d.awards) == 0 {
		d.awards = []award{{id: "A", count: d.stock, rate: 1}}
	}
	st := &lottery.Strategy{ID: d.id, Mode: d.mode, GrantType: lottery.GrantImmediate}
	for i, a := range d.awards {
		st.Details = append(st.Details, lottery.StrategyDetail{
			Award:      lottery.Award{ID: a.id, Type: lottery.AwardType(1 + i%4), Name: "award " + a.id, Content: "content of " + a.id},
			AwardCount: a.count, Rate: lottery.RateFromFloat(a.rate),
		})
	}
	act := &lottery.Activity{
		ID: d.id, Name: "activity " + strconv.FormatInt(d.id, 10), BeginAt: d.begin, EndAt: d.end,
		StockCount: d.stock, TakeCount: d.takeCount, StrategyID: d.id, State: d.state,
	}
	if err := e.svc.Deploy(t.Context(), act, st); err != nil {
		t.Fatalf("deploy activity %d: %v", d.id, err)
	}
	return act, st
}

func (e *env) left(t testing.TB, activityID int64, awardID string) int64 {
	t.Helper()
	n, err := e.mem.Left(context.Background(), lottery.StockKey{Activity: activityID, Award: awardID})
	if err != nil {
		t.Fatalf("left of activity %d award %q: %v", activityID, awardID, err)
	}
	return n
}

func (e *env) audit(t testing.TB, activityID int64) orders.Audit {
	t.Helper()
	a, err := e.store.Audit(context.Background(), activityID)
	if err != nil {
		t.Fatalf("audit activity %d: %v", activityID, err)
	}
	if err := a.Err(); err != nil {
		t.Errorf("audit activity %d: %v", activityID, err)
	}
	return a
}

// outcome names what a Draw answered.
func outcome(res *lottery.Result, err error) lottery.Outcome {
	if err != nil {
		return lottery.OutcomeOf(err)
	}
	return res.Outcome
}

// ---- the hammers ----

func TestOversellHammer(t *testing.T) {
	workers, draws, stockCount := 64, 3000, int64(300)
	if testing.Short() {
		workers, draws, stockCount = 16, 600, 60
	}
	for _, tc := range []struct {
		name      string
		mode      lottery.Mode
		takeCount int
		users     int
		awards    []award
	}{
		// Total rate: awards without stock are removed and the rest
		// renormalised; award counts sum below the stock so they run out.
		{"total/take1", lottery.ModeTotal, 1, draws, []award{{"gold", stockCount / 30, 0.1}, {"silver", stockCount / 10, 0.3}, {"bronze", stockCount / 5, 0.6}}},
		{"total/take3", lottery.ModeTotal, 3, draws / 4, []award{{"gold", stockCount / 30, 0.1}, {"silver", stockCount / 10, 0.3}, {"bronze", stockCount / 5, 0.6}}},
		// Single-item rate: 40% miss, a drawn award without stock is a miss.
		{"single/take2", lottery.ModeSingle, 2, draws / 3, []award{{"gold", stockCount / 30, 0.1}, {"silver", stockCount / 10, 0.2}, {"bronze", stockCount / 5, 0.3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			const id = 7001
			e.deploy(t, activityDef{id: id, stock: stockCount, takeCount: tc.takeCount, mode: tc.mode, awards: tc.awards})
			if demand := min(draws, tc.users*tc.takeCount); int64(demand) < 2*stockCount {
				t.Fatalf("bad test: demand %d is not far above stock %d", demand, stockCount)
			}
			var (
				next     atomic.Int64
				mu       sync.Mutex
				outcomes = map[lottery.Outcome]int{}
				wins     = map[string]int64{}
				perUser  = map[string]int{}
				takes    = map[int64]bool{}
				firstErr error
				wg       sync.WaitGroup
			)
			start := time.Now()
			for range workers {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(draws) {
							return
						}
						user := "user-" + strconv.Itoa(int(i)%tc.users)
						res, err := e.svc.Draw(t.Context(), user, id)
						oc := outcome(res, err)
						mu.Lock()
						outcomes[oc]++
						switch oc {
						case lottery.OutcomeWin, lottery.OutcomeLose:
							perUser[user]++
							if takes[res.Take.ID] {
								t.Errorf("take %d accepted twice", res.Take.ID)
							}
							takes[res.Take.ID] = true
							if oc == lottery.OutcomeWin {
								wins[res.Order.Award.ID]++
							}
						case lottery.OutcomeSoldOut, lottery.OutcomeLimitReached:
						default:
							if firstErr == nil {
								firstErr = fmt.Errorf("draw %d of %s: outcome %s: %w", i, user, oc, err)
							}
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			t.Logf("%d draws by %d goroutines over %d users in %s: %v, wins by award %v",
				draws, workers, tc.users, time.Since(start).Round(time.Millisecond), outcomes, wins)
			if firstErr != nil {
				t.Errorf("%d draws answered an outcome other than win, lose, sold_out or limit_reached; first: %v",
					draws-outcomes[lottery.OutcomeWin]-outcomes[lottery.OutcomeLose]-outcomes[lottery.OutcomeSoldOut]-outcomes[lottery.OutcomeLimitReached], firstErr)
			}
			accepted := int64(outcomes[lottery.OutcomeWin] + outcomes[lottery.OutcomeLose])
			if accepted != stockCount {
				t.Errorf("accepted draws = %d, want exactly the stock %d", accepted, stockCount)
			}
			for u, n := range perUser {
				if n > tc.takeCount {
					t.Errorf("user %s had %d accepted draws, takeCount %d", u, n, tc.takeCount)
				}
			}
			var totalWins int64
			for _, a := range tc.awards {
				totalWins += wins[a.id]
				if wins[a.id] > a.count {
					t.Errorf("award %s won %d times, count %d", a.id, wins[a.id], a.count)
				}
				if left := e.left(t, id, a.id); left != a.count-wins[a.id] {
					t.Errorf("award %s: stock left %d, want count %d - wins %d", a.id, left, a.count, wins[a.id])
				}
			}
			if int64(outcomes[lottery.OutcomeWin]) != totalWins {
				t.Errorf("%d wins but %d by award", outcomes[lottery.OutcomeWin], totalWins)
			}
			if left := e.left(t, id, ""); left != 0 {
				t.Errorf("activity stock left %d, want 0", left)
			}
			au := e.audit(t, id)
			if au.Takes != stockCount || au.UsedTakes != stockCount {
				t.Errorf("audit: takes %d, used %d, want both %d", au.Takes, au.UsedTakes, stockCount)
			}
			if au.Orders != totalWins {
				t.Errorf("audit: %d orders, the draws won %d", au.Orders, totalWins)
			}
			for _, a := range tc.awards {
				if au.OrdersByAward[a.id] != wins[a.id] {
					t.Errorf("audit: award %s has %d orders, the draws won %d", a.id, au.OrdersByAward[a.id], wins[a.id])
				}
			}
			if au.ByMQState[lottery.MQInit] != au.Orders {
				t.Errorf("audit: mq states %v, want every order at 0 (no relay)", au.ByMQState)
			}
		})
	}
}

// TestPerUserLimitHammer has each of several users press "draw" 32 times at
// once in an activity allowing 3 draws per user: each user gets exactly 3
// accepted draws and 29 limit_reached answers, never anything else.
func TestPerUserLimitHammer(t *testing.T) {
	e := newEnv(t)
	const (
		id        = 7002
		takeCount = 3
		attempts  = 32
		stockN    = 10000
	)
	users := 16
	if testing.Short() {
		users = 4
	}
	e.deploy(t, activityDef{id: id, stock: stockN, takeCount: takeCount, mode: lottery.ModeSingle,
		awards: []award{{"A", stockN, 0.5}}})
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		outcomes = make([]map[lottery.Outcome]int, users)
		errs     []error
		wins     int64
		gate     = make(chan struct{})
	)
	for u := range users {
		outcomes[u] = map[lottery.Outcome]int{}
		user := "alice-" + strconv.Itoa(u)
		for range attempts {
			wg.Go(func() {
				<-gate
				res, err := e.svc.Draw(t.Context(), user, id)
				oc := outcome(res, err)
				mu.Lock()
				defer mu.Unlock()
				outcomes[u][oc]++
				switch oc {
				case lottery.OutcomeWin:
					wins++
				case lottery.OutcomeLose, lottery.OutcomeLimitReached:
				default:
					errs = append(errs, fmt.Errorf("%s: outcome %s: %w", user, oc, err))
				}
			})
		}
	}
	close(gate)
	wg.Wait()
	for u, oc := range outcomes {
		if got := oc[lottery.OutcomeWin] + oc[lottery.OutcomeLose]; got != takeCount || oc[lottery.OutcomeLimitReached] != attempts-takeCount {
			t.Errorf("user alice-%d: outcomes of %d concurrent draws %v, want %d accepted and %d limit_reached",
				u, attempts, oc, takeCount, attempts-takeCount)
		}
	}
	for i, err := range errs {
		if i == 3 {
			t.Errorf("... %d unexpected answers in all", len(errs))
			break
		}
		t.Errorf("unexpected answer: %v", err)
	}
	accepted := int64(users * takeCount)
	if left := e.left(t, id, ""); left != stockN-accepted {
		t.Errorf("activity stock left %d, want %d (refused takes give their unit back)", left, stockN-accepted)
	}
	au := e.audit(t, id)
	if au.Takes != accepted || au.UsedTakes != accepted {
		t.Errorf("audit: takes %d, used %d, want %d", au.Takes, au.UsedTakes, accepted)
	}
	if left := e.left(t, id, "A"); au.Orders != wins || left != stockN-wins {
		t.Errorf("audit: %d orders, award left %d, for %d wins", au.Orders, left, wins)
	}
}

// ---- failures after stock was reserved ----

var errInjected = errors.New("injected failure")

// flakyOrders is the real store with Take and Draw failing on demand, and
// UserState counted.
type flakyOrders struct {
	*orders.SQLite
	failTake, failDraw atomic.Bool
	failReuse          atomic.Bool // Draw only: the draw of a reused take
	// lostCommit makes TakeDraw answer an unknown outcome, after writing
	// (true) or without writing (false is the zero: unset).
	lostCommit    atomic.Bool
	lostCommitted atomic.Bool
	userStates    atomic.Int64
	takes, draws  atomic.Int64
	takeDraws     atomic.Int64
}

func (f *flakyOrders) UserState(ctx context.Context, userID string, activityID int64) (lottery.UserState, error) {
	f.userStates.Add(1)
	return f.SQLite.UserState(ctx, userID, activityID)
}

func (f *flakyOrders) Take(ctx context.Context, t *lottery.Take, takeCount int) error {
	f.takes.Add(1)
	if f.failTake.Load() {
		return fmt.Errorf("take: %w", errInjected)
	}
	return f.SQLite.Take(ctx, t, takeCount)
}

func (f *flakyOrders) Draw(ctx context.Context, t *lottery.Take, o *lottery.Order) error {
	f.draws.Add(1)
	if f.failDraw.Load() || f.failReuse.Load() {
		return fmt.Errorf("draw: %w", errInjected)
	}
	return f.SQLite.Draw(ctx, t, o)
}

// TakeDraw fails when a take or a draw would.
func (f *flakyOrders) TakeDraw(ctx context.Context, t *lottery.Take, takeCount int, o *lottery.Order) error {
	f.takeDraws.Add(1)
	if f.failTake.Load() || f.failDraw.Load() {
		return fmt.Errorf("take and draw: %w", errInjected)
	}
	if f.lostCommit.Load() {
		if f.lostCommitted.Load() {
			if err := f.SQLite.TakeDraw(ctx, t, takeCount, o); err != nil {
				return err
			}
		}
		return fmt.Errorf("take and draw: commit unanswered: %w: %w", lottery.ErrUnavailable, lottery.ErrOutcomeUnknown)
	}
	return f.SQLite.TakeDraw(ctx, t, takeCount, o)
}

// flakyStock is the memory stock with award reservations failing on demand
// (a Redis outage, say: not sold out, just unavailable).
type flakyStock struct {
	*stock.Memory
	failAward atomic.Bool
}

func (f *flakyStock) Reserve(ctx context.Context, key lottery.StockKey) (lottery.Reservation, error) {
	if key.Award != "" && f.failAward.Load() {
		return lottery.Reservation{}, fmt.Errorf("stock: %w: %w", lottery.ErrUnavailable, errInjected)
	}
	return f.Memory.Reserve(ctx, key)
}

// ReserveEach goes through Reserve, so the failures apply to it too.
func (f *flakyStock) ReserveEach(ctx context.Context, keys []lottery.StockKey, res []lottery.Reservation, errs []error) {
	for i, key := range keys {
		res[i], errs[i] = f.Reserve(ctx, key)
	}
}

func TestReleaseOnFailure(t *testing.T) {
	ctx := t.Context()
	mem := stock.NewMemory()
	fs := &flakyStock{Memory: mem}
	var fo *flakyOrders
	e := newEnv(t, func(d *lottery.Deps, _ *lottery.ServiceConfig) {
		fo = &flakyOrders{SQLite: d.Catalog.(*orders.SQLite)}
		d.Orders, d.Stock, d.Admin = fo, fs, mem
	})
	e.mem = mem
	const id = 7003
	// takeCount 1: once the user's take exists, only its reuse lets the user draw.
	e.deploy(t, activityDef{id: id, stock: 10, takeCount: 1, awards: []award{{"A", 5, 1}}})

	// A failed write of a new take and its draw gives both units back and
	// records nothing.
	for _, flag := range []*atomic.Bool{&fo.failTake, &fo.failDraw} {
		flag.Store(true)
		_, err := e.svc.Draw(ctx, "bob", id)
		if !errors.Is(err, errInjected) || lottery.OutcomeOf(err) != lottery.OutcomeError {
			t.Fatalf("draw with a failing write: %v, want the injected error", err)
		}
		if left, award := e.left(t, id, ""), e.left(t, id, "A"); left != 10 || award != 5 {
			t.Errorf("after a failed write: activity stock left %d, award %d; want 10 and 5", left, award)
		}
		if au := e.audit(t, id); au.Takes != 0 {
			t.Errorf("after a failed write: %d takes stored", au.Takes)
		}
		flag.Store(false)
	}

	// An unavailable award stock fails the draw and gives the activity unit
	// back; nothing is recorded.
	fs.failAward.Store(true)
	if _, err := e.svc.Draw(ctx, "bob", id); !errors.Is(err, lottery.ErrUnavailable) {
		t.Fatalf("draw with award stock unavailable: %v, want ErrUnavailable", err)
	}
	if got := e.left(t, id, ""); got != 10 {
		t.Errorf("after an award-stock failure: activity stock left %d, want 10", got)
	}
	if au := e.audit(t, id); au.Takes != 0 {
		t.Errorf("after an award-stock failure: %d takes stored", au.Takes)
	}
	fs.failAward.Store(false)

	// An unused take (one an older edge recorded before its draw failed)
	// is reused: a failed draw of it gives the award unit back and leaves
	// the take unused.
	if _, err := mem.Reserve(ctx, lottery.StockKey{Activity: id}); err != nil {
		t.Fatal(err)
	}
	old := &lottery.Take{ID: e.ids.Next(), UserID: "bob", ActivityID: id, StrategyID: id, At: time.Now()}
	if err := fo.SQLite.Take(ctx, old, 1); err != nil {
		t.Fatal(err)
	}
	failedTake := old.ID
	// bob's count is used up, so the draw's new take is refused by the
	// store and the draw goes on through the store read to the unused take.
	fo.failReuse.Store(true)
	res, err := e.svc.Draw(ctx, "bob", id)
	if !errors.Is(err, errInjected) {
		t.Fatalf("draw with a failing record: %v, want the injected error", err)
	}
	if res == nil || res.Take == nil || res.Take.ID != failedTake {
		t.Fatalf("draw with a failing record: result %+v, want the unused take %d", res, failedTake)
	}
	if got, want := e.left(t, id, ""), int64(9); got != want {
		t.Errorf("after a failed draw: activity stock left %d, want %d (the take holds one)", got, want)
	}
	if left := e.left(t, id, "A"); left != 5 {
		t.Errorf("after a failed draw: award stock left %d, want 5 (released)", left)
	}
	if au := e.audit(t, id); au.Takes != 1 || au.UsedTakes != 0 || au.Orders != 0 {
		t.Errorf("after a failed draw: takes %d, used %d, orders %d; want 1, 0, 0", au.Takes, au.UsedTakes, au.Orders)
	}
	fo.failReuse.Store(false)

	// An unavailable award stock fails the draw of a reused take too, and
	// the take stays unused.
	fs.failAward.Store(true)
	res, err = e.svc.Draw(ctx, "bob", id)
	if !errors.Is(err, lottery.ErrUnavailable) {
		t.Fatalf("draw with award stock unavailable: %v, want ErrUnavailable", err)
	}
	if res == nil || res.Take == nil || res.Take.ID != failedTake {
		t.Errorf("draw with award stock unavailable: result %+v, want the unused take %d reused", res, failedTake)
	}
	if got := e.left(t, id, ""); got != 9 {
		t.Errorf("after an award-stock failure: activity stock left %d, want 9 (no new take)", got)
	}
	fs.failAward.Store(false)

	// The next draw reuses the unused take: no new activity stock, no new take.
	takesBefore := fo.takes.Load() + fo.takeDraws.Load()
	res, err = e.svc.Draw(ctx, "bob", id)
	if err != nil {
		t.Fatalf("draw after the failures: %v", err)
	}
	if res.Outcome != lottery.OutcomeWin || res.Take.ID != failedTake {
		t.Errorf("draw after the failures: outcome %s take %d, want a win on the reused take %d", res.Outcome, res.Take.ID, failedTake)
	}
	if fo.takes.Load()+fo.takeDraws.Load() != takesBefore {
		t.Errorf("draw after the failures recorded a new take")
	}
	if got := e.left(t, id, ""); got != 9 {
		t.Errorf("after the reuse: activity stock left %d, want 9", got)
	}
	if got := e.left(t, id, "A"); got != 4 {
		t.Errorf("after the win: award stock left %d, want 4", got)
	}
	au := e.audit(t, id)
	if au.Takes != 1 || au.UsedTakes != 1 || au.Orders != 1 || au.OrdersByAward["A"] != 1 {
		t.Errorf("after the reuse: takes %d, used %d, orders %v; want 1, 1, A=1", au.Takes, au.UsedTakes, au.OrdersByAward)
	}
	// takeCount 1 is now used up.
	if _, err := e.svc.Draw(ctx, "bob", id); !errors.Is(err, lottery.ErrLimitReached) {
		t.Errorf("a second draw with takeCount 1: %v, want limit reached", err)
	}

	// A failed draw of a losing take (no award reserved) also leaves the take
	// for the next draw.
	const lose = 7004
	e.deploy(t, activityDef{id: lose, stock: 3, takeCount: 1, mode: lottery.ModeSingle, awards: []award{{"N", 3, 0}}})
	fo.failDraw.Store(true)
	if _, err := e.svc.Draw(ctx, "carol", lose); !errors.Is(err, errInjected) {
		t.Fatalf("losing draw with a failing record: %v", err)
	}
	fo.failDraw.Store(false)
	res, err = e.svc.Draw(ctx, "carol", lose)
	if err != nil || res.Outcome != lottery.OutcomeLose {
		t.Fatalf("losing draw after the failure: %+v, %v", res, err)
	}
	if got := e.left(t, lose, ""); got != 2 {
		t.Errorf("losing activity stock left %d, want 2", got)
	}
	if au := e.audit(t, lose); au.Takes != 1 || au.UsedTakes != 1 || au.Orders != 0 {
		t.Errorf("losing activity: takes %d, used %d, orders %d; want 1, 1, 0", au.Takes, au.UsedTakes, au.Orders)
	}
}

// ---- refusals ----

// eventLog records analytics events.
type eventLog struct {
	mu     sync.Mutex
	events []lottery.Event
}

func (l *eventLog) Record(e lottery.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) take() []lottery.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.events
	l.events = nil
	return out
}

func TestNotActive(t *testing.T) {
	ctx := t.Context()
	var fo *flakyOrders
	events := &eventLog{}
	e := newEnv(t, withEvents(events), func(d *lottery.Deps, _ *lottery.ServiceConfig) {
		fo = &flakyOrders{SQLite: d.Catalog.(*orders.SQLite)}
		d.Orders = fo
	})
	now := time.Now()
	for _, tc := range []struct {
		name string
		def  activityDef
	}{
		{"approved", activityDef{id: 1, state: lottery.StatePass}},
		{"edit", activityDef{id: 2, state: lottery.StateEdit}},
		{"closed", activityDef{id: 3, state: lottery.StateClose}},
		{"reopened", activityDef{id: 4, state: lottery.StateOpen}},
		{"not begun", activityDef{id: 5, begin: now.Add(time.Hour), end: now.Add(2 * time.Hour)}},
		{"ended", activityDef{id: 6, begin: now.Add(-2 * time.Hour), end: now.Add(-time.Second)}},
	} {
		tc.def.stock = 10
		e.deploy(t, tc.def)
		_, err := e.svc.Draw(ctx, "dave", tc.def.id)
		if !errors.Is(err, lottery.ErrNotActive) || lottery.OutcomeOf(err) != lottery.OutcomeNotActive {
			t.Errorf("%s: draw: %v, want not active", tc.name, err)
		}
		if left := e.left(t, tc.def.id, ""); left != 10 {
			t.Errorf("%s: stock left %d, want 10", tc.name, left)
		}
		if au := e.audit(t, tc.def.id); au.Takes != 0 {
			t.Errorf("%s: %d takes stored", tc.name, au.Takes)
		}
		if evs := events.take(); len(evs) != 1 || evs[0].Outcome != lottery.OutcomeNotActive || evs[0].ActivityID != tc.def.id {
			t.Errorf("%s: events %+v, want one not_active event", tc.name, evs)
		}
	}
	if n := fo.userStates.Load(); n != 0 {
		t.Errorf("inactive activities cost %d user-state reads, want none", n)
	}
}

func TestUnknownActivity(t *testing.T) {
	ctx := t.Context()
	events := &eventLog{}
	e := newEnv(t, withEvents(events))
	e.deploy(t, activityDef{id: 1, stock: 10})
	if _, err := e.svc.Draw(ctx, "erin", 424242); !errors.Is(err, lottery.ErrNotFound) {
		t.Errorf("draw in an unknown activity: %v, want not found", err)
	}
	for _, user := range []string{"", "bad\x00user", string(make([]byte, 65)), "\xff\xfe"} {
		if _, err := e.svc.Draw(ctx, user, 1); !errors.Is(err, lottery.ErrInvalid) {
			t.Errorf("draw by user %q: %v, want invalid", user, err)
		}
	}
	if evs := events.take(); len(evs) != 0 {
		t.Errorf("refused requests made %d analytics events: %+v", len(evs), evs)
	}
	if left := e.left(t, 1, ""); left != 10 {
		t.Errorf("stock left %d, want 10", left)
	}
}

func TestSoldOutFastPath(t *testing.T) {
	ctx := t.Context()
	var fo *flakyOrders
	e := newEnv(t, func(d *lottery.Deps, _ *lottery.ServiceConfig) {
		fo = &flakyOrders{SQLite: d.Catalog.(*orders.SQLite)}
		d.Orders = fo
	})
	const id = 7005
	e.deploy(t, activityDef{id: id, stock: 5, awards: []award{{"A", 2, 1}}})
	for i := range 5 {
		if _, err := e.svc.Draw(ctx, "fred"+strconv.Itoa(i), id); err != nil {
			t.Fatalf("draw %d: %v", i, err)
		}
	}
	// The first refused reservation sets the sold-out flag.
	if _, err := e.svc.Draw(ctx, "fred5", id); !errors.Is(err, lottery.ErrSoldOut) {
		t.Fatalf("draw over the stock: %v, want sold out", err)
	}
	states, takes, draws, takeDraws := fo.userStates.Load(), fo.takes.Load(), fo.draws.Load(), fo.takeDraws.Load()
	for i := range 100 {
		_, err := e.svc.Draw(ctx, "late"+strconv.Itoa(i), id)
		if !errors.Is(err, lottery.ErrSoldOut) || lottery.OutcomeOf(err) != lottery.OutcomeSoldOut {
			t.Fatalf("late draw %d: %v, want sold out", i, err)
		}
	}
	if d := fo.userStates.Load() - states + fo.takes.Load() - takes + fo.draws.Load() - draws + fo.takeDraws.Load() - takeDraws; d != 0 {
		t.Errorf("100 draws on a sold-out activity made %d store calls, want none", d)
	}
	au := e.audit(t, id)
	if au.Takes != 5 || au.Orders != 2 || e.left(t, id, "") != 0 || e.left(t, id, "A") != 0 {
		t.Errorf("takes %d, orders %d, stock left %d, award left %d; want 5, 2, 0, 0",
			au.Takes, au.Orders, e.left(t, id, ""), e.left(t, id, "A"))
	}
}

// A user's first draw reads nothing from the store: the take's own write
// checks the count. A user known to have used up the takes goes through the
// store read and reserves no stock; one who used them up on another edge
// costs one refused take, whose units come back, and is known from then on.
func TestNewTakeWithoutRead(t *testing.T) {
	ctx := t.Context()
	var fo *flakyOrders
	var deps lottery.Deps
	e := newEnv(t, func(d *lottery.Deps, _ *lottery.ServiceConfig) {
		fo = &flakyOrders{SQLite: d.Catalog.(*orders.SQLite)}
		d.Orders = fo
		deps = *d
	})
	const id = 7008
	e.deploy(t, activityDef{id: id, stock: 100, takeCount: 2, awards: []award{{"A", 100, 1}}})
	calls := func() (states, takeDraws int64) { return fo.userStates.Load(), fo.takeDraws.Load() }

	for i := range 2 {
		if res, err := e.svc.Draw(ctx, "gina", id); err != nil || res.Outcome != lottery.OutcomeWin {
			t.Fatalf("draw %d: %+v, %v; want a win", i, res, err)
		}
	}
	if states, takeDraws := calls(); states != 0 || takeDraws != 2 {
		t.Errorf("two first draws: %d user-state reads, %d take-and-draw writes; want 0 and 2", states, takeDraws)
	}
	// The second take used the count up: the third draw reads and stops.
	if _, err := e.svc.Draw(ctx, "gina", id); !errors.Is(err, lottery.ErrLimitReached) {
		t.Fatalf("third draw: %v, want limit reached", err)
	}
	if states, takeDraws := calls(); states != 1 || takeDraws != 2 {
		t.Errorf("after the third draw: %d user-state reads, %d take-and-draw writes; want 1 and 2", states, takeDraws)
	}

	// Another edge (a second service on the same store) does not know.
	other, err := lottery.NewService(deps, lottery.ServiceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct{ states, takeDraws int64 }{{2, 3}, {3, 3}} {
		if _, err := other.Draw(ctx, "gina", id); !errors.Is(err, lottery.ErrLimitReached) {
			t.Fatalf("draw %d on the other edge: %v, want limit reached", i, err)
		}
		if states, takeDraws := calls(); states != want.states || takeDraws != want.takeDraws {
			t.Errorf("draw %d on the other edge: %d user-state reads, %d take-and-draw writes in all; want %d and %d", i, states, takeDraws, want.states, want.takeDraws)
		}
	}
	if left, award := e.left(t, id, ""), e.left(t, id, "A"); left != 98 || award != 98 {
		t.Errorf("stock left %d, award %d; want 98 and 98 (the refused take gave its units back)", left, award)
	}
	if au := e.audit(t, id); au.Takes != 2 || au.Orders != 2 || au.Err() != nil {
		t.Errorf("audit: takes %d, orders %d, %v; want 2, 2, consistent", au.Takes, au.Orders, au.Err())
	}
}

// A user whose unused take already holds the activity's last unit draws
// with it: the new take the stock refuses sends the draw through the read.
func TestSoldOutReusesUnusedTake(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t)
	const id = 7011
	e.deploy(t, activityDef{id: id, stock: 1, takeCount: 2, awards: []award{{"A", 1, 1}}})
	if _, err := e.mem.Reserve(ctx, lottery.StockKey{Activity: id}); err != nil {
		t.Fatal(err)
	}
	old := &lottery.Take{ID: e.ids.Next(), UserID: "hal", ActivityID: id, StrategyID: id, At: time.Now()}
	if err := e.store.Take(ctx, old, 2); err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.Draw(ctx, "hal", id)
	if err != nil || res.Outcome != lottery.OutcomeWin || res.Take == nil || res.Take.ID != old.ID {
		t.Fatalf("draw: %+v, %v; want a win on the unused take %d", res, err, old.ID)
	}
	if au := e.audit(t, id); au.Takes != 1 || au.UsedTakes != 1 || au.Orders != 1 || au.Err() != nil {
		t.Errorf("audit: takes %d, used %d, orders %d, %v; want 1, 1, 1", au.Takes, au.UsedTakes, au.Orders, au.Err())
	}
	if _, err := e.svc.Draw(ctx, "ivy", id); !errors.Is(err, lottery.ErrSoldOut) {
		t.Errorf("another user's draw: %v, want sold out", err)
	}
}

// A take whose commit went unanswered keeps its stock: had it committed,
// giving the units back would sell them twice. If it did not commit, the
// reconciliation gives them back.
func TestUnknownOutcomeKeepsStock(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	var fo *flakyOrders
	e := newEnv(t, withClock(func() time.Time { return now }), func(d *lottery.Deps, _ *lottery.ServiceConfig) {
		fo = &flakyOrders{SQLite: d.Catalog.(*orders.SQLite)}
		d.Orders = fo
	})
	const id = 7012
	e.deploy(t, activityDef{id: id, stock: 10, awards: []award{{"A", 5, 1}}, begin: now.Add(-time.Hour), end: now.Add(time.Hour)})
	fo.lostCommit.Store(true)
	for _, committed := range []bool{true, false} {
		fo.lostCommitted.Store(committed)
		_, err := e.svc.Draw(ctx, fmt.Sprintf("lost-%v", committed), id)
		if !errors.Is(err, lottery.ErrUnavailable) || !errors.Is(err, lottery.ErrOutcomeUnknown) {
			t.Fatalf("draw with an unanswered commit (committed %v): %v, want unavailable, outcome unknown", committed, err)
		}
	}
	fo.lostCommit.Store(false)
	// Both draws keep their units; one of them is recorded.
	if left, award := e.left(t, id, ""), e.left(t, id, "A"); left != 8 || award != 3 {
		t.Errorf("after two unanswered commits: stock left %d, award %d; want 8 and 3 (units kept)", left, award)
	}
	if au := e.audit(t, id); au.Takes != 1 || au.Orders != 1 {
		t.Errorf("audit: takes %d, orders %d; want 1 and 1", au.Takes, au.Orders)
	}
	// The reconciliation gives back the units of the draw that did not
	// commit, once the difference has stood for two draw timeouts.
	log := &surplusLog{stock: map[int64]int64{}, award: map[int64]map[string]int64{}}
	for range 2 {
		if _, err := e.svc.Reconcile(ctx, log); err != nil {
			t.Fatal(err)
		}
		now = now.Add(5 * time.Second)
	}
	if left, award := e.left(t, id, ""), e.left(t, id, "A"); left != 9 || award != 4 {
		t.Errorf("after reconciling: stock left %d, award %d; want 9 and 4", left, award)
	}
}

// countingCatalog counts the activity reads of the draw path.
type countingCatalog struct {
	lottery.CatalogAdmin
	reads atomic.Int64
}

func (c *countingCatalog) Activity(ctx context.Context, id int64) (*lottery.Activity, error) {
	c.reads.Add(1)
	return c.CatalogAdmin.Activity(ctx, id)
}

// When the cached activity expires, one draw reads the catalog again and
// the draws beside it go on with the cached entry.
func TestCatalogExpiryReadsOnce(t *testing.T) {
	ctx := t.Context()
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	var cat *countingCatalog
	e := newEnv(t, withClock(func() time.Time { return time.Unix(0, clock.Load()) }), func(d *lottery.Deps, c *lottery.ServiceConfig) {
		cat = &countingCatalog{CatalogAdmin: d.Catalog}
		d.Catalog = cat
		c.CatalogTTL = time.Second
	})
	const id = 7010
	e.deploy(t, activityDef{id: id, stock: 1000, awards: []award{{"A", 1000, 1}}})
	if _, err := e.svc.Draw(ctx, "first", id); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		clock.Add(int64(1500 * time.Millisecond)) // past the TTL, within twice it
		before := cat.reads.Load()
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				if _, err := e.svc.Draw(ctx, fmt.Sprintf("u%d-%d", round, i), id); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := cat.reads.Load() - before; n != 1 {
			t.Errorf("round %d: 50 draws after the expiry read the activity %d times, want 1", round, n)
		}
	}
}

// ---- the activity-state job ----

func TestStateJobPages(t *testing.T) {
	ctx := t.Context()
	var clock atomic.Int64
	wall := time.Now()
	clock.Store(wall.UnixNano())
	e := newEnv(t, withClock(func() time.Time { return time.Unix(0, clock.Load()) }))
	const n = 250 // three pages of 100
	begin, end := wall.Add(-time.Hour), wall.Add(time.Hour)
	start := time.Now()
	for i := range n {
		e.deploy(t, activityDef{id: int64(1000 + i), stock: 5, state: lottery.StatePass, begin: begin, end: end})
	}
	t.Logf("deployed %d activities in %s", n, time.Since(start).Round(time.Millisecond))
	last := int64(1000 + n - 1)
	// Cached as approved: the job must make the change visible to draws.
	if _, err := e.svc.Draw(ctx, "gina", last); !errors.Is(err, lottery.ErrNotActive) {
		t.Fatalf("draw before the job: %v, want not active", err)
	}

	states := func() map[lottery.State]int {
		t.Helper()
		got := map[lottery.State]int{}
		var after int64
		for {
			page, err := e.store.Activities(ctx, after, 64)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range page {
				got[a.State]++
			}
			if len(page) == 0 {
				return got
			}
			after = page[len(page)-1].ID
		}
	}

	moved, err := e.svc.AdvanceStates(ctx)
	if err != nil || moved != n {
		t.Errorf("advance at start: moved %d, %v; want %d", moved, err, n)
	}
	if got := states(); got[lottery.StateDoing] != n {
		t.Errorf("after the start: states %v, want all %d running", got, n)
	}
	if res, err := e.svc.Draw(ctx, "gina", last); err != nil {
		t.Errorf("draw in the last activity after the job: %v", err)
	} else if res.Outcome != lottery.OutcomeWin {
		t.Errorf("draw in the last activity: %s, want a win", res.Outcome)
	}
	if moved, err := e.svc.AdvanceStates(ctx); err != nil || moved != 0 {
		t.Errorf("second advance: moved %d, %v; want 0", moved, err)
	}

	clock.Store(end.Add(time.Minute).UnixNano())
	moved, err = e.svc.AdvanceStates(ctx)
	if err != nil || moved != n {
		t.Errorf("advance after the end: moved %d, %v; want %d", moved, err, n)
	}
	if got := states(); got[lottery.StateClose] != n {
		t.Errorf("after the end: states %v, want all %d closed", got, n)
	}
	if _, err := e.svc.Draw(ctx, "gina", last); !errors.Is(err, lottery.ErrNotActive) {
		t.Errorf("draw after the end: %v, want not active", err)
	}
}

// ---- the outbox relay and the compensation scan ----

// fakePublisher acknowledges invoices, or fails them all while fail is set.
type fakePublisher struct {
	fail  atomic.Bool
	mu    sync.Mutex
	acked map[int64]int // order id -> acknowledgements
	calls int
	sizes []int // invoices per call
}

var errBroker = fmt.Errorf("fake broker down: %w", lottery.ErrUnavailable)

func (p *fakePublisher) Publish(_ context.Context, invs []lottery.Invoice) []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	p.sizes = append(p.sizes, len(invs))
	errs := make([]error, len(invs))
	for i, inv := range invs {
		if p.fail.Load() {
			errs[i] = errBroker
			continue
		}
		p.acked[inv.OrderID]++
	}
	return errs
}

func (p *fakePublisher) ackedOnce(ids []int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		if p.acked[id] != 1 {
			return fmt.Errorf("order %d acknowledged %d times, want 1", id, p.acked[id])
		}
	}
	return nil
}

// A relay worker with a linger waits for more invoices before it
// publishes, and publishes at once when its batch is full.
func TestRelayLinger(t *testing.T) {
	store := newStore(t)
	pub := &fakePublisher{acked: map[int64]int{}}
	relay := lottery.NewRelay(pub, store, lottery.RelayConfig{Batch: 8, Workers: 1, Linger: 300 * time.Millisecond, Timeout: 5 * time.Second, ConfirmEvery: time.Hour})
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); relay.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-ran })
	sizes := func() []int {
		pub.mu.Lock()
		defer pub.mu.Unlock()
		return append([]int(nil), pub.sizes...)
	}
	waitSent := func(n uint64, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for relay.Stats().Sent < n {
			if time.Now().After(deadline) {
				t.Fatalf("sent %d within %v, want %d; batches %v", relay.Stats().Sent, within, n, sizes())
			}
			time.Sleep(time.Millisecond)
		}
	}
	inv := func(id int64) lottery.Invoice { return lottery.Invoice{OrderID: id, UserID: "u", ActivityID: 1} }
	relay.Enqueue(inv(1))
	time.Sleep(30 * time.Millisecond)
	for id := int64(2); id <= 5; id++ {
		relay.Enqueue(inv(id))
	}
	waitSent(5, 5*time.Second)
	if got := sizes(); len(got) != 1 || got[0] != 5 {
		t.Fatalf("batches %v, want one of 5 (the linger gathers what arrives)", got)
	}
	// A full batch does not wait for the linger.
	start := time.Now()
	for id := int64(10); id < 18; id++ {
		relay.Enqueue(inv(id))
	}
	waitSent(13, 5*time.Second)
	if got := sizes(); len(got) != 2 || got[1] != 8 {
		t.Fatalf("batches %v, want a second of 8", got)
	}
	if d := time.Since(start); d >= 250*time.Millisecond {
		t.Fatalf("a full batch waited %v", d)
	}
}

// Acknowledgements wait for the relay's confirmation write, which goes
// out every ConfirmEvery and when Run stops.
func TestOutboxConfirmsTogether(t *testing.T) {
	ctx := t.Context()
	store := newStore(t)
	pub := &fakePublisher{acked: map[int64]int{}}
	relay := lottery.NewRelay(pub, store, lottery.RelayConfig{Batch: 4, Timeout: 5 * time.Second, ConfirmEvery: time.Hour})
	mem := stock.NewMemory()
	ids, err := lottery.NewSnowflake(4)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := lottery.NewService(lottery.Deps{Catalog: store, Orders: store, Ledger: store, Stock: mem, Admin: mem, Drawer: &lottery.NativeDrawer{}, IDs: ids, Relay: relay}, lottery.ServiceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); relay.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-ran })

	e := &env{store: store, mem: mem, ids: ids, svc: svc}
	const id = 7009
	e.deploy(t, activityDef{id: id, stock: 100, awards: []award{{"A", 100, 1}}})
	for i := range 6 {
		if res, err := svc.Draw(ctx, "c"+strconv.Itoa(i), id); err != nil || res.Outcome != lottery.OutcomeWin {
			t.Fatalf("draw %d: %+v, %v", i, res, err)
		}
	}
	// Sent counts an acknowledgement a moment before it joins the waiting
	// confirmations: wait for both.
	deadline := time.Now().Add(10 * time.Second)
	for st := relay.Stats(); st.Sent < 6 || st.Confirming < 6; st = relay.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("relay stats %+v, want 6 sent and waiting", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st, au := relay.Stats(), e.audit(t, id); st.Confirming != 6 || au.ByMQState[lottery.MQInit] != 6 {
		t.Fatalf("acknowledged: %d confirming, mq states %v; want 6 waiting at 0", st.Confirming, au.ByMQState)
	}
	stop()
	<-ran
	if st, au := relay.Stats(), e.audit(t, id); st.Confirming != 0 || au.ByMQState[lottery.MQSent] != 6 {
		t.Fatalf("after Run: %d confirming, mq states %v; want 6 at 1", st.Confirming, au.ByMQState)
	}
}

func TestOutboxRelayAndCompensation(t *testing.T) {
	ctx := t.Context()
	store := newStore(t)
	pub := &fakePublisher{acked: map[int64]int{}}
	relay := lottery.NewRelay(pub, store, lottery.RelayConfig{Queue: 64, Batch: 4, Timeout: 5 * time.Second})
	mem := stock.NewMemory()
	ids, err := lottery.NewSnowflake(3)
	if err != nil {
		t.Fatal(err)
	}
	deps := lottery.Deps{Catalog: store, Orders: store, Ledger: store, Stock: mem, Admin: mem, Drawer: &lottery.NativeDrawer{}, IDs: ids, Relay: relay}
	svc, err := lottery.NewService(deps, lottery.ServiceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// A second service on the same store without a relay leaves orders at
	// mq_state 0, as a crash between commit and publish does.
	deps.Relay = nil
	noRelay, err := lottery.NewService(deps, lottery.ServiceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { relay.Run(runCtx) })
	t.Cleanup(func() { stop(); wg.Wait() }) // before the store closes (cleanups run last first)

	e := &env{store: store, mem: mem, ids: ids, svc: svc}
	const id = 7006
	e.deploy(t, activityDef{id: id, stock: 100, awards: []award{{"A", 100, 1}}})

	var orderIDs []int64
	win := func(s *lottery.Service, user string) {
		t.Helper()
		res, err := s.Draw(ctx, user, id)
		if err != nil || res.Outcome != lottery.OutcomeWin {
			t.Fatalf("draw of %s: %+v, %v; want a win", user, res, err)
		}
		orderIDs = append(orderIDs, res.Order.ID)
	}
	waitMQ := func(want map[lottery.MQState]int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			au := e.audit(t, id)
			ok := true
			for st, n := range want {
				ok = ok && au.ByMQState[st] == n
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("mq states %v, want %v", au.ByMQState, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// Acknowledged invoices end at mq_state 1.
	for i := range 10 {
		win(svc, "ok"+strconv.Itoa(i))
	}
	waitMQ(map[lottery.MQState]int64{lottery.MQSent: 10})

	// Failed invoices end at 2.
	pub.fail.Store(true)
	for i := range 5 {
		win(svc, "fail"+strconv.Itoa(i))
	}
	waitMQ(map[lottery.MQState]int64{lottery.MQSent: 10, lottery.MQFailed: 5})

	// Never handed to a relay: 0.
	for i := range 3 {
		win(noRelay, "lost"+strconv.Itoa(i))
	}
	waitMQ(map[lottery.MQState]int64{lottery.MQSent: 10, lottery.MQFailed: 5, lottery.MQInit: 3})

	// The scan with the broker still down re-sends nothing and loses nothing.
	n, err := relay.Compensate(ctx, time.Now(), time.Hour)
	if err != nil || n != 0 {
		t.Errorf("compensate with the broker down: %d, %v; want 0, nil", n, err)
	}
	waitMQ(map[lottery.MQState]int64{lottery.MQSent: 10, lottery.MQFailed: 5, lottery.MQInit: 3})

	// The broker is back: the failed ones are re-sent; the fresh 0s are not
	// stale yet, so they wait.
	pub.fail.Store(false)
	n, err = relay.Compensate(ctx, time.Now(), time.Hour)
	if err != nil || n != 5 {
		t.Errorf("compensate failed invoices: %d, %v; want 5, nil", n, err)
	}
	waitMQ(map[lottery.MQState]int64{lottery.MQSent: 15, lottery.MQFailed: 0, lottery.MQInit: 3})

	// Once they are stale, the 0s are re-sent too.
	n, err = relay.Compensate(ctx, time.Now().Add(2*time.Second), time.Second)
	if err != nil || n != 3 {
		t.Errorf("compensate stale invoices: %d, %v; want 3, nil", n, err)
	}
	waitMQ(map[lottery.MQState]int64{lottery.MQSent: 18, lottery.MQFailed: 0, lottery.MQInit: 0})
	if n, err := relay.Compensate(ctx, time.Now().Add(time.Hour), time.Second); err != nil || n != 0 {
		t.Errorf("compensate with nothing left: %d, %v; want 0", n, err)
	}

	if err := pub.ackedOnce(orderIDs); err != nil {
		t.Error(err)
	}
	st := relay.Stats()
	t.Logf("relay stats %+v, publisher calls %d", st, pub.calls)
	if st.Compensated != 8 || st.Sent != 18 || st.Failed != 9 || st.Dropped != 0 {
		t.Errorf("relay stats %+v, want sent 18, failed 9 (5 by the relay, one page of 4 by the refused scan), compensated 8, dropped 0", st)
	}
}
