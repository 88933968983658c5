package lottery

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Deploy validates and stores an activity with its strategy and provisions
// their stock. The activity starts in the state it carries (zero means edit);
// the HTTP edge only lets operators deploy in edit. Nothing is stored when
// validation fails.
func (s *Service) Deploy(ctx context.Context, a *Activity, st *Strategy) error {
	if a.State == 0 {
		a.State = StateEdit
	}
	if a.StrategyID == 0 {
		a.StrategyID = st.ID
	}
	a.StockSurplus = a.StockCount
	for i := range st.Details {
		st.Details[i].AwardSurplus = st.Details[i].AwardCount
	}
	if err := errors.Join(a.Validate(), st.Validate()); err != nil {
		return err
	}
	if a.StrategyID != st.ID {
		return fmt.Errorf("%w: activity strategyId %d differs from the strategy's %d", ErrInvalid, a.StrategyID, st.ID)
	}
	if err := s.d.Catalog.SaveActivity(ctx, a, st); err != nil {
		return fmt.Errorf("deploy activity %d: %w", a.ID, err)
	}
	s.Forget(a.ID)
	return s.provision(ctx, a, st)
}

// provision sets the stock counters of an activity from its definition and
// the durable usage (takes and orders), so a restart resumes where it stopped.
func (s *Service) provision(ctx context.Context, a *Activity, st *Strategy) error {
	u, err := s.d.Ledger.Usage(ctx, a.ID)
	if err != nil {
		return fmt.Errorf("provision activity %d: usage: %w", a.ID, err)
	}
	if err := s.d.Admin.Provision(ctx, StockKey{Activity: a.ID}, a.StockCount, u.Takes); err != nil {
		return fmt.Errorf("provision activity %d: %w", a.ID, err)
	}
	for _, d := range st.Details {
		if err := s.d.Admin.Provision(ctx, StockKey{Activity: a.ID, Award: d.ID}, d.AwardCount, u.Awards[d.ID]); err != nil {
			return fmt.Errorf("provision activity %d award %s: %w", a.ID, d.ID, err)
		}
	}
	return nil
}

// Restore provisions the stock of every stored activity from the durable
// record. The server calls it at start, before it takes draws.
func (s *Service) Restore(ctx context.Context) (int, error) {
	n := 0
	err := s.eachActivity(ctx, func(a *Activity) error {
		st, err := s.d.Catalog.Strategy(ctx, a.StrategyID)
		if err != nil {
			return fmt.Errorf("restore activity %d: %w", a.ID, err)
		}
		n++
		return s.provision(ctx, a, st)
	})
	return n, err
}

// pageSize is how many activities a scan reads at a time.
const pageSize = 100

// eachActivity pages through every activity (all pages, not only the first).
func (s *Service) eachActivity(ctx context.Context, fn func(*Activity) error) error {
	var after int64
	for {
		page, err := s.d.Catalog.Activities(ctx, after, pageSize)
		if err != nil {
			return fmt.Errorf("list activities after %d: %w", after, err)
		}
		for i := range page {
			if err := fn(&page[i]); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

// Move applies an action to an activity's state as a compare-and-set.
func (s *Service) Move(ctx context.Context, id int64, action Action) (*Activity, error) {
	a, err := s.d.Catalog.Activity(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("activity %d: %w", id, err)
	}
	to, err := Target(a.State, action)
	if err != nil {
		return nil, fmt.Errorf("activity %d: %w", id, err)
	}
	if err := s.d.Catalog.MoveState(ctx, id, a.State, to); err != nil {
		return nil, fmt.Errorf("activity %d: %s: %w", id, action, err)
	}
	s.Forget(id)
	a.State = to
	return a, nil
}

// ActivityView is an activity with its strategy and live stock.
type ActivityView struct {
	Activity
	StockLeft int64            `json:"stockLeft"`
	Strategy  *Strategy        `json:"strategy,omitempty"`
	AwardLeft map[string]int64 `json:"awardLeft,omitempty"`
}

// Activities lists activities after afterID (at most limit) with live stock left.
func (s *Service) Activities(ctx context.Context, afterID int64, limit int) ([]ActivityView, error) {
	page, err := s.d.Catalog.Activities(ctx, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("list activities: %w", err)
	}
	out := make([]ActivityView, len(page))
	for i := range page {
		left, err := s.d.Admin.Left(ctx, StockKey{Activity: page[i].ID})
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("stock of activity %d: %w", page[i].ID, err)
		}
		out[i] = ActivityView{Activity: page[i], StockLeft: left}
	}
	return out, nil
}

// Activity returns one activity with its strategy and live stock per award.
func (s *Service) Activity(ctx context.Context, id int64) (*ActivityView, error) {
	a, err := s.d.Catalog.Activity(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("activity %d: %w", id, err)
	}
	st, err := s.d.Catalog.Strategy(ctx, a.StrategyID)
	if err != nil {
		return nil, fmt.Errorf("activity %d: strategy: %w", id, err)
	}
	v := &ActivityView{Activity: *a, Strategy: st, AwardLeft: make(map[string]int64, len(st.Details))}
	if v.StockLeft, err = s.d.Admin.Left(ctx, StockKey{Activity: id}); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("activity %d: stock: %w", id, err)
	}
	for _, d := range st.Details {
		left, err := s.d.Admin.Left(ctx, StockKey{Activity: id, Award: d.ID})
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("activity %d: award %s stock: %w", id, d.ID, err)
		}
		v.AwardLeft[d.ID] = left
	}
	return v, nil
}

// UserOrders lists a user's orders, newest first.
func (s *Service) UserOrders(ctx context.Context, userID string, limit int) ([]Order, error) {
	if err := ValidateUserID(userID); err != nil {
		return nil, err
	}
	return s.d.Ledger.UserOrders(ctx, userID, limit)
}

// AdvanceStates is the activity-state job: approved activities whose start
// has come move to running, running ones past their end move to closed. It
// pages through every activity and returns how many it moved. A lost
// compare-and-set (someone else moved it) is skipped, not an error.
func (s *Service) AdvanceStates(ctx context.Context) (int, error) {
	now := s.cfg.Now()
	moved := 0
	err := s.eachActivity(ctx, func(a *Activity) error {
		var to State
		switch {
		case (a.State == StatePass || a.State == StateOpen) && !now.Before(a.BeginAt) && now.Before(a.EndAt):
			to = StateDoing
		case (a.State == StateDoing || a.State == StateOpen || a.State == StatePass) && !now.Before(a.EndAt):
			to = StateClose
		default:
			return nil
		}
		err := s.d.Catalog.MoveState(ctx, a.ID, a.State, to)
		if errors.Is(err, ErrConflict) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("advance activity %d to %s: %w", a.ID, to, err)
		}
		s.Forget(a.ID)
		moved++
		return nil
	})
	return moved, err
}

// Reconcile is the reconciliation job. For every activity in a sale it
//   - provisions the stock counters again when the stock port lost them;
//   - gives back units the stock port counts as used but the durable record
//     does not (reservations of an edge killed mid-draw), once the difference
//     has stood still, with no new take or order, for two draw timeouts (a
//     live reservation is turned into a take or released well within one),
//     through a compare-and-set (StockTrimmer) so that edges reconciling at
//     once give them back once;
//   - writes what is left into the database's surplus columns, so reports
//     read from the database agree with the stock that decides.
//
// It returns how many activities it updated.
func (s *Service) Reconcile(ctx context.Context, w SurplusWriter) (int, error) {
	n := 0
	now := s.cfg.Now()
	err := s.eachActivity(ctx, func(a *Activity) error {
		if a.State != StateDoing && a.State != StateOpen && a.State != StatePass {
			return nil // nothing moves outside a sale
		}
		st, err := s.d.Catalog.Strategy(ctx, a.StrategyID)
		if err != nil {
			return fmt.Errorf("reconcile activity %d: %w", a.ID, err)
		}
		if _, err := s.d.Admin.Left(ctx, StockKey{Activity: a.ID}); errors.Is(err, ErrNotFound) {
			if err := s.provision(ctx, a, st); err != nil {
				return fmt.Errorf("reconcile activity %d: %w", a.ID, err)
			}
		}
		u, err := s.d.Ledger.Usage(ctx, a.ID)
		if err != nil {
			return fmt.Errorf("reconcile activity %d: usage: %w", a.ID, err)
		}
		if err := s.releaseLeaks(ctx, StockKey{Activity: a.ID}, a.StockCount, u.Takes, now); err != nil {
			return fmt.Errorf("reconcile activity %d: %w", a.ID, err)
		}
		for _, d := range st.Details {
			if err := s.releaseLeaks(ctx, StockKey{Activity: a.ID, Award: d.ID}, d.AwardCount, u.Awards[d.ID], now); err != nil {
				return fmt.Errorf("reconcile activity %d award %s: %w", a.ID, d.ID, err)
			}
		}
		v, err := s.Activity(ctx, a.ID)
		if err != nil {
			return fmt.Errorf("reconcile activity %d: %w", a.ID, err)
		}
		if err := w.SetSurplus(ctx, a.ID, v.StockLeft, v.AwardLeft); err != nil {
			return fmt.Errorf("reconcile activity %d: %w", a.ID, err)
		}
		n++
		return nil
	})
	return n, err
}

// leakSeen is what the reconciliation saw of one counter: the units the
// stock port counted beyond the durable record, and since when.
type leakSeen struct {
	used, durable int64
	since         time.Time
}

// releaseLeaks gives back the units of key the stock port counts as used
// beyond the durable record, when that difference has not moved for two
// draw timeouts.
func (s *Service) releaseLeaks(ctx context.Context, key StockKey, total, durable int64, now time.Time) error {
	left, err := s.d.Admin.Left(ctx, key)
	if err != nil {
		return err
	}
	used := total - left
	if used <= durable {
		s.leaks.Delete(key)
		return nil
	}
	seen := leakSeen{used: used, durable: durable, since: now}
	if v, ok := s.leaks.Load(key); ok {
		if old := v.(leakSeen); old.used == used && old.durable == durable {
			seen.since = old.since
		}
	}
	if now.Sub(seen.since) < 2*s.cfg.DrawTimeout {
		s.leaks.Store(key, seen)
		return nil
	}
	s.leaks.Delete(key)
	t, ok := s.d.Admin.(StockTrimmer)
	if !ok {
		return nil // a port without compare-and-set: leave the units (undersold, never oversold)
	}
	if _, err := t.Trim(ctx, key, used, durable); err != nil {
		return fmt.Errorf("give back leaked stock: %w", err)
	}
	return nil
}
