package lottery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Deps are the ports a Service runs on. Every field is required except
// Events and Relay (nil means: no analytics, no invoice hand-off).
type Deps struct {
	Catalog CatalogAdmin
	Orders  Orders
	Ledger  Ledger
	Stock   Stock
	Admin   StockAdmin
	Drawer  Drawer
	Events  Events
	Relay   *Relay
	IDs     *Snowflake
}

// ServiceConfig tunes a Service.
type ServiceConfig struct {
	// CatalogTTL is how long a cached activity is served before it is read
	// again; when another process changed it, a draw may see the old one
	// for up to twice that (one draw reads it again while the others serve
	// the cached one). Changes made through this Service apply at once.
	CatalogTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Seed supplies the per-draw random seed; nil means math/rand/v2.
	Seed func() uint64
	// DrawTimeout bounds the store and stock calls of one draw (default 2s).
	// It starts after the checks that need no I/O, so a sold-out or closed
	// activity answers without arming a timer.
	DrawTimeout time.Duration
}

// Service runs the draw process and the activity administration over the
// ports. It is safe for concurrent use.
type Service struct {
	d   Deps
	cfg ServiceConfig
	// batch is d.Stock if it reserves several keys at once, else a loop
	// over its Reserve: the draw of a new take always goes through it.
	batch StockBatch
	cache sync.Map // activity id -> *entry
	// inflight holds the ids of the unused takes that draws of this process
	// are reusing.
	inflight sync.Map
	// spent holds the users known to have used up an activity's takes.
	spent *spentSet
	// leaks holds what the reconciliation saw of counters ahead of the
	// durable record (StockKey -> leakSeen).
	leaks sync.Map
}

type entry struct {
	act    *Activity
	strat  *Strategy
	loaded time.Time
	// refreshing is set by the one draw that reads an expired entry again;
	// the others serve it meanwhile.
	refreshing atomic.Bool
}

// NewService checks deps and returns a Service.
func NewService(d Deps, cfg ServiceConfig) (*Service, error) {
	if d.Catalog == nil || d.Orders == nil || d.Ledger == nil || d.Stock == nil || d.Admin == nil || d.Drawer == nil || d.IDs == nil {
		return nil, fmt.Errorf("%w: lottery service needs catalog, orders, ledger, stock, stock admin, drawer and ids", ErrInvalid)
	}
	if cfg.CatalogTTL <= 0 {
		cfg.CatalogTTL = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Seed == nil {
		cfg.Seed = rand.Uint64
	}
	if cfg.DrawTimeout <= 0 {
		cfg.DrawTimeout = 2 * time.Second
	}
	s := &Service{d: d, cfg: cfg, spent: newSpentSet(spentCapacity)}
	if b, ok := d.Stock.(StockBatch); ok {
		s.batch = b
	} else {
		s.batch = oneByOne{d.Stock}
	}
	return s, nil
}

// oneByOne is the StockBatch of a Stock that reserves one key at a time.
type oneByOne struct{ Stock }

func (o oneByOne) ReserveEach(ctx context.Context, keys []StockKey, res []Reservation, errs []error) {
	for i, key := range keys {
		res[i], errs[i] = o.Reserve(ctx, key)
	}
}

// ValidateUserID checks a user id: 1 to 64 bytes of printable UTF-8.
func ValidateUserID(id string) error {
	if id == "" || len(id) > 64 || !utf8.ValidString(id) {
		return fmt.Errorf("%w: userId must be 1 to 64 bytes of UTF-8", ErrInvalid)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: userId must not contain control characters", ErrInvalid)
		}
	}
	return nil
}

// Result is the answer of one draw.
type Result struct {
	Outcome  Outcome
	Activity *Activity
	Take     *Take
	Order    *Order // set on a win
	Mode     Mode
	Module   string
	Seed     uint64
}

// Draw runs the whole draw process for a user in an activity: partake
// (reuse an unused take, or check and reserve stock for a new one), draw
// over the awards with stock, reserve the award, record the outcome and the
// order in one transaction (with a new take in the same one), hand the
// invoice to the relay, and record the analytics event. Business outcomes
// other than win and lose come back as errors wrapping ErrSoldOut,
// ErrLimitReached or ErrNotActive.
func (s *Service) Draw(ctx context.Context, userID string, activityID int64) (*Result, error) {
	start := s.cfg.Now()
	res, err := s.draw(ctx, userID, activityID, start)
	// A concurrent draw of the same user on another edge reused the same
	// unused take and won: go again. Each lost race used up one of the
	// user's takes, so this ends; the bound only guards against a store that
	// misbehaves. (A new take is stored already used, so only a reused one
	// can race.)
	for i := 0; errors.Is(err, ErrTakeUsed) && ctx.Err() == nil && i < 64; i++ {
		res, err = s.draw(ctx, userID, activityID, start)
	}
	if s.d.Events != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotFound) {
		s.d.Events.Record(s.event(start, userID, activityID, res, err))
	}
	return res, err
}

func (s *Service) event(start time.Time, userID string, activityID int64, res *Result, err error) Event {
	now := s.cfg.Now()
	e := Event{At: now, ActivityID: activityID, UserID: userID, Outcome: OutcomeOf(err), LatencyUS: now.Sub(start).Microseconds(), Node: s.d.IDs.Node()}
	if res != nil {
		if err == nil {
			e.Outcome = res.Outcome
		}
		e.Mode, e.Module, e.Seed = res.Mode, res.Module, res.Seed
		if res.Order != nil {
			e.AwardID = res.Order.Award.ID
		}
	}
	return e
}

// OutcomeOf names the outcome an error stands for (OutcomeError for a
// failure that is not a business outcome).
func OutcomeOf(err error) Outcome {
	switch {
	case err == nil:
		return OutcomeLose
	case errors.Is(err, ErrSoldOut):
		return OutcomeSoldOut
	case errors.Is(err, ErrLimitReached):
		return OutcomeLimitReached
	case errors.Is(err, ErrNotActive):
		return OutcomeNotActive
	}
	return OutcomeError
}

func (s *Service) draw(ctx context.Context, userID string, activityID int64, now time.Time) (*Result, error) {
	if err := ValidateUserID(userID); err != nil {
		return nil, err
	}
	act, strat, err := s.load(ctx, activityID, now)
	if err != nil {
		return nil, err
	}
	res := &Result{Activity: act, Mode: strat.Mode}
	if !act.Open(now) {
		return res, fmt.Errorf("activity %d is %s: %w", act.ID, act.State, ErrNotActive)
	}
	if s.d.Stock.SoldOut(StockKey{Activity: act.ID}) {
		// A sold-out activity costs no store round trip, no timer and no
		// allocation but the Result.
		// A user holding an unused take loses nothing: that take waits until
		// stock frees up or the reconciliation sees it.
		return res, ErrSoldOut
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DrawTimeout)
	defer cancel()
	// A user not known to have used up the activity's takes draws a new take
	// at once; the store's count decides. Should it refuse (the takes were
	// used on another edge, or before this one started), the units are given
	// back and the draw goes again through the store read, which may find an
	// unused take to reuse; so does a new take the activity's stock refused,
	// since an unused take already holds its unit.
	spentKey := s.spent.key(act.ID, userID) // hashed once, for has and add
	read := s.spent.has(spentKey)
	for {
		take, isNew, err := s.partake(ctx, userID, act, now, read)
		if err != nil {
			return res, err
		}
		if !isNew { // a reused take, already recorded
			res.Take = take
		}
		err = s.drawTake(ctx, res, strat, take, isNew, now)
		if !isNew {
			s.inflight.Delete(take.ID)
			return res, err
		}
		limit := errors.Is(err, ErrLimitReached)
		if limit || err == nil && take.TakeCount >= act.TakeCount {
			s.spent.add(spentKey)
		}
		// A new take that fails only reserves the activity's unit, so a
		// sold-out answer here is the activity's.
		if read || !limit && !errors.Is(err, ErrSoldOut) {
			return res, err
		}
		read = true
		res.Module, res.Seed = "", 0 // that draw was not recorded
	}
}

// partake is the seed's template: reuse the user's unused take, else check
// the user's count for a new take (stock was checked by its sold-out flag).
// Without read it skips the store and answers a new take: the first draw of
// a user, the common case, costs no read, and the take's own write checks
// the count. A new take comes back unrecorded and holding no stock:
// drawTake reserves its activity unit together with the drawn award's
// (StockBatch) and records it together with its draw (Orders.TakeDraw),
// one write instead of two.
func (s *Service) partake(ctx context.Context, userID string, act *Activity, now time.Time, read bool) (take *Take, isNew bool, err error) {
	if !read {
		return s.newTake(userID, act, now), true, nil
	}
	us, err := s.d.Orders.UserState(ctx, userID, act.ID)
	if err != nil {
		return nil, false, fmt.Errorf("partake: user state: %w", err)
	}
	// Reuse an unused take unless a draw in this process holds it: taking
	// over a take in flight would make both draws race for it. (A draw on
	// another edge may still hold it; the loser sees ErrTakeUsed and retries.)
	if us.Unused != nil {
		if _, busy := s.inflight.LoadOrStore(us.Unused.ID, struct{}{}); !busy {
			return us.Unused, false, nil
		}
	}
	if us.Left == 0 {
		return nil, false, fmt.Errorf("user %q in activity %d: %w", userID, act.ID, ErrLimitReached)
	}
	return s.newTake(userID, act, now), true, nil
}

func (s *Service) newTake(userID string, act *Activity, now time.Time) *Take {
	return &Take{ID: s.d.IDs.Next(), UserID: userID, ActivityID: act.ID, StrategyID: act.StrategyID, State: TakeUnused, At: now}
}

// reservePair reserves the activity unit of a new take together with the
// unit of the drawn award: one round trip on a stock port that
// batches. If the activity is refused, a reserved award unit is given back
// and the activity's error returned as actErr; if only the award is
// refused, the activity stays reserved and the award's error comes back as
// awardErr. A key the port lost (ErrNotFound) is reserved again one at a
// time through reserve, which provisions it.
func (s *Service) reservePair(ctx context.Context, act *Activity, award StockKey) (actRes, awardRes Reservation, actErr, awardErr error) {
	// One value for the three arrays: they escape through the interface
	// call, and one allocation is cheaper than three.
	var b struct {
		keys [2]StockKey
		res  [2]Reservation
		errs [2]error
	}
	b.keys = [2]StockKey{{Activity: act.ID}, award}
	s.batch.ReserveEach(ctx, b.keys[:], b.res[:], b.errs[:])
	for i := range b.keys {
		if errors.Is(b.errs[i], ErrNotFound) {
			b.res[i], b.errs[i] = s.reserve(ctx, b.keys[i], act)
		}
	}
	if b.errs[0] != nil {
		if b.errs[1] == nil {
			if rerr := s.d.Stock.Release(context.WithoutCancel(ctx), b.res[1]); rerr != nil {
				b.errs[0] = errors.Join(b.errs[0], fmt.Errorf("release award stock: %w", rerr))
			}
		}
		return Reservation{}, Reservation{}, fmt.Errorf("activity %d: %w", act.ID, b.errs[0]), nil
	}
	return b.res[0], b.res[1], nil, b.errs[1]
}

// drawTake draws the award for a take, reserves its stock and records the
// outcome; a win becomes an order and its invoice is handed to the relay.
// A new take (isNew) also gets its activity unit, reserved with the first
// award drawn (reservePair), or alone when none is, and is recorded with
// its outcome in one write; any failure gives that unit back too, leaving
// nothing behind.
func (s *Service) drawTake(ctx context.Context, res *Result, strat *Strategy, take *Take, isNew bool, now time.Time) (err error) {
	// The units this draw holds, given back if it fails.
	var (
		actResv, resv      Reservation
		heldAct, heldAward bool
	)
	defer func() {
		// A write whose outcome is unknown may have recorded the take and
		// the order: their units stay reserved (the reconciliation gives
		// them back if it did not).
		if err == nil || errors.Is(err, ErrOutcomeUnknown) {
			return
		}
		rctx := context.WithoutCancel(ctx)
		if heldAward {
			if rerr := s.d.Stock.Release(rctx, resv); rerr != nil {
				err = errors.Join(err, fmt.Errorf("release award stock: %w", rerr))
			}
		}
		if heldAct {
			if rerr := s.d.Stock.Release(rctx, actResv); rerr != nil {
				err = errors.Join(err, fmt.Errorf("release activity stock: %w", rerr))
			}
		}
	}()
	inStock := make([]bool, len(strat.Details))
	for i := range strat.Details {
		inStock[i] = !s.d.Stock.SoldOut(StockKey{Activity: take.ActivityID, Award: strat.Details[i].ID})
	}
	seed := s.cfg.Seed()
	var (
		pick   = -1
		module string
	)
	for range len(strat.Details) + 1 {
		dr, err := s.d.Drawer.Draw(ctx, DrawRequest{Strategy: strat, InStock: inStock, Seed: seed, Time: now})
		if err != nil {
			return fmt.Errorf("draw: %w", err)
		}
		module = dr.Module
		if dr.Index < 0 {
			break
		}
		if dr.Index >= len(strat.Details) {
			return fmt.Errorf("draw: %w: module %s chose award %d of %d", ErrUnavailable, dr.Module, dr.Index, len(strat.Details))
		}
		key := StockKey{Activity: take.ActivityID, Award: strat.Details[dr.Index].ID}
		var r Reservation
		if isNew && !heldAct {
			var actErr error
			actResv, r, actErr, err = s.reservePair(ctx, res.Activity, key)
			if actErr != nil {
				return actErr // nothing is held
			}
			heldAct = true
		} else {
			r, err = s.reserve(ctx, key, res.Activity)
		}
		if err == nil {
			pick, resv, heldAward = dr.Index, r, true
			break
		}
		if !errors.Is(err, ErrSoldOut) {
			return fmt.Errorf("draw: reserve award: %w", err)
		}
		if strat.Mode == ModeSingle { // single-item rate: a drawn award without stock is a miss
			break
		}
		inStock[dr.Index] = false // total rate: renormalise over what is left, same seed stream
		seed = SplitMix64(seed)
	}
	if isNew && !heldAct { // no award drawn: the activity unit alone
		r, err := s.reserve(ctx, StockKey{Activity: take.ActivityID}, res.Activity)
		if err != nil {
			return fmt.Errorf("activity %d: %w", res.Activity.ID, err) // nothing is held
		}
		actResv, heldAct = r, true
	}
	res.Module, res.Seed = module, seed
	var order *Order
	if pick >= 0 {
		d := strat.Details[pick]
		take.AwardID = d.ID
		order = &Order{
			ID: s.d.IDs.Next(), UserID: take.UserID, ActivityID: take.ActivityID, StrategyID: strat.ID,
			Mode: strat.Mode, GrantType: strat.GrantType, GrantDate: strat.GrantDate, Award: d.Award,
			TakeID: take.ID, MQState: MQInit, Module: module, Seed: seed, At: now,
		}
	}
	if isNew {
		err = s.d.Orders.TakeDraw(ctx, take, res.Activity.TakeCount, order)
	} else {
		err = s.d.Orders.Draw(ctx, take, order)
	}
	if err != nil {
		take.AwardID = ""
		if isNew {
			return fmt.Errorf("partake and record draw: %w", err)
		}
		return fmt.Errorf("record draw: %w", err)
	}
	take.State = TakeUsed
	if isNew {
		res.Take = take
		_ = s.d.Stock.Settle(ctx, actResv) // best effort: a slot lock expires by itself
	}
	if order == nil {
		res.Outcome = OutcomeLose
		return nil
	}
	_ = s.d.Stock.Settle(ctx, resv)
	res.Outcome, res.Order = OutcomeWin, order
	if s.d.Relay != nil {
		s.d.Relay.Enqueue(InvoiceOf(order)) // a full queue leaves mq_state 0 for the compensation scan
	}
	return nil
}

// reserve reserves a unit of key. A stock port that lost the key (a Redis
// restarted without persistence) answers ErrNotFound for an activity that
// exists: the activity's counters are provisioned again from the durable
// record and the reservation tried once more; a failure then is a 503, not
// a 404.
func (s *Service) reserve(ctx context.Context, key StockKey, act *Activity) (Reservation, error) {
	r, err := s.d.Stock.Reserve(ctx, key)
	if !errors.Is(err, ErrNotFound) {
		return r, err
	}
	strat, serr := s.d.Catalog.Strategy(ctx, act.StrategyID)
	if serr != nil {
		return r, fmt.Errorf("%w: stock of activity %d is missing and its strategy cannot be read: %v", ErrUnavailable, act.ID, serr)
	}
	if perr := s.provision(ctx, act, strat); perr != nil {
		return r, fmt.Errorf("%w: stock of activity %d is missing and cannot be provisioned again: %v", ErrUnavailable, act.ID, perr)
	}
	r, err = s.d.Stock.Reserve(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return r, fmt.Errorf("%w: stock of activity %d is missing after provisioning", ErrUnavailable, act.ID)
	}
	return r, err
}

// load returns the activity and its strategy, cached for CatalogTTL. When
// the entry expires, one draw reads the catalog again while the others go
// on with the entry they have (at most twice the TTL old): without that,
// every draw in flight at the expiry read the catalog, some hundred reads a
// second at a few thousand draws a second.
func (s *Service) load(ctx context.Context, id int64, now time.Time) (*Activity, *Strategy, error) {
	var owner *entry // the entry whose refresh this draw runs
	if v, ok := s.cache.Load(id); ok {
		old := v.(*entry)
		age := now.Sub(old.loaded)
		if age < s.cfg.CatalogTTL {
			return old.act, old.strat, nil
		}
		if old.refreshing.CompareAndSwap(false, true) {
			owner = old
		} else if age < 2*s.cfg.CatalogTTL {
			return old.act, old.strat, nil
		}
	}
	act, strat, err := s.read(ctx, id)
	if err != nil {
		if owner != nil {
			owner.refreshing.Store(false) // the next draw tries again
		}
		return nil, nil, err
	}
	return act, s.remember(id, act, strat, now), nil
}

// read reads activity id and its strategy from the catalog.
func (s *Service) read(ctx context.Context, id int64) (*Activity, *Strategy, error) {
	act, err := s.d.Catalog.Activity(ctx, id)
	if err != nil {
		return nil, nil, fmt.Errorf("activity %d: %w", id, err)
	}
	strat, err := s.d.Catalog.Strategy(ctx, act.StrategyID)
	if err != nil {
		return nil, nil, fmt.Errorf("activity %d: strategy %d: %w", id, act.StrategyID, err)
	}
	return act, strat, nil
}

// remember caches act and strat as the entry of activity id and returns
// the strategy cached.
func (s *Service) remember(id int64, act *Activity, strat *Strategy, now time.Time) *Strategy {
	// Keep the cached strategy pointer when nothing changed, so drawers keep
	// their prepared tables.
	if v, ok := s.cache.Load(id); ok {
		if old := v.(*entry); old.strat != nil && sameStrategy(old.strat, strat) {
			strat = old.strat
		}
	}
	s.cache.Store(id, &entry{act: act, strat: strat, loaded: now})
	return strat
}

func sameStrategy(a, b *Strategy) bool {
	if a.ID != b.ID || a.Mode != b.Mode || a.GrantType != b.GrantType || !a.GrantDate.Equal(b.GrantDate) || a.Module != b.Module || len(a.Details) != len(b.Details) {
		return false
	}
	for i := range a.Details {
		x, y := a.Details[i], b.Details[i]
		if x.Award != y.Award || x.AwardCount != y.AwardCount || x.Rate != y.Rate {
			return false
		}
	}
	return true
}

// Forget drops an activity from the cache so the next draw reads it again.
func (s *Service) Forget(id int64) { s.cache.Delete(id) }
