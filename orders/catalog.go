package orders

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/flashlottery/lottery/lottery"
)

// The catalog (activity, strategy, strategy_detail, award) lives in the base
// database; it is small and written by operators, so it uses plain
// transactions on the base write pool, not group commit. Callers may cache
// what they read (the draw process does, for a second).

const activityColumns = `activity_id, activity_name, activity_desc, begin_date_time, end_date_time,
	stock_count, stock_surplus_count, take_count, strategy_id, state`

func scanActivity(sc interface{ Scan(...any) error }) (lottery.Activity, error) {
	var (
		a          lottery.Activity
		begin, end int64
	)
	err := sc.Scan(&a.ID, &a.Name, &a.Desc, &begin, &end, &a.StockCount, &a.StockSurplus, &a.TakeCount, &a.StrategyID, &a.State)
	a.BeginAt, a.EndAt = fromMS(begin), fromMS(end)
	return a, err
}

// Activity returns the activity, or ErrNotFound.
func (s *store) Activity(ctx context.Context, id int64) (*lottery.Activity, error) {
	a, err := scanActivity(s.baseR.QueryRowContext(ctx, `SELECT `+activityColumns+` FROM activity WHERE activity_id = ?`, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("orders: activity %d: %w", id, lottery.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("orders: activity %d: %w", id, unavailable(err))
	}
	return &a, nil
}

// Strategy returns the strategy with its details (award fields included, in
// the order they were saved), or ErrNotFound.
func (s *store) Strategy(ctx context.Context, id int64) (*lottery.Strategy, error) {
	st, err := loadStrategy(ctx, s.baseR, id)
	switch {
	case errors.Is(err, lottery.ErrNotFound):
		return nil, fmt.Errorf("orders: strategy %d: %w", id, err)
	case err != nil:
		return nil, fmt.Errorf("orders: strategy %d: %w", id, unavailable(err))
	}
	return st, nil
}

// loadStrategy reads a strategy and its details; a missing one is the bare
// lottery.ErrNotFound.
func loadStrategy(ctx context.Context, q querier, id int64) (*lottery.Strategy, error) {
	st := &lottery.Strategy{ID: id}
	var grantDate int64
	err := q.QueryRowContext(ctx, `SELECT strategy_desc, strategy_mode, grant_type, grant_date, draw_module
		FROM strategy WHERE strategy_id = ?`, id).Scan(&st.Desc, &st.Mode, &st.GrantType, &grantDate, &st.Module)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lottery.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	st.GrantDate = fromMS(grantDate)
	rows, err := q.QueryContext(ctx, `SELECT d.award_id, a.award_type, a.award_name, a.award_content,
			d.award_count, d.award_surplus_count, d.award_rate
		FROM strategy_detail d JOIN award a ON a.strategy_id = d.strategy_id AND a.award_id = d.award_id
		WHERE d.strategy_id = ? ORDER BY d.award_index`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var d lottery.StrategyDetail
		if err := rows.Scan(&d.ID, &d.Type, &d.Name, &d.Content, &d.AwardCount, &d.AwardSurplus, &d.Rate); err != nil {
			return nil, err
		}
		st.Details = append(st.Details, d)
	}
	return st, rows.Err()
}

// SaveActivity validates and inserts the activity and its strategy in one
// transaction. The activity id must be new (else ErrConflict). A strategy
// may be shared by several activities: if its id exists with identical
// content (times compared to the millisecond) it is reused, otherwise the
// save is ErrConflict; strategies are never updated in place, since orders
// and reproducible draws refer to them. a.StrategyID must be s.ID.
func (s *store) SaveActivity(ctx context.Context, a *lottery.Activity, st *lottery.Strategy) error {
	if a == nil || st == nil {
		return fmt.Errorf("orders: save activity: %w: activity and strategy are required", lottery.ErrInvalid)
	}
	if err := errors.Join(a.Validate(), st.Validate()); err != nil {
		return fmt.Errorf("orders: save activity %d: %w", a.ID, err)
	}
	if a.StrategyID != st.ID {
		return fmt.Errorf("orders: save activity %d: %w: strategyId %d differs from the strategy's %d",
			a.ID, lottery.ErrInvalid, a.StrategyID, st.ID)
	}
	if err := s.saveActivity(ctx, a, st); err != nil {
		return fmt.Errorf("orders: save activity %d: %w", a.ID, err)
	}
	return nil
}

func (s *store) saveActivity(ctx context.Context, a *lottery.Activity, st *lottery.Strategy) error {
	tx, err := s.baseW.BeginTx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	defer func() { _ = tx.Rollback() }()
	now := toMS(time.Now())
	old, err := loadStrategy(ctx, tx, st.ID)
	switch {
	case errors.Is(err, lottery.ErrNotFound):
		// A concurrent save of the same new strategy makes this insert a
		// duplicate: ErrConflict, and the caller may save again.
		if err := s.insertStrategy(ctx, tx, st, now); err != nil {
			return s.storeErr(err)
		}
	case err != nil:
		return unavailable(err)
	case !sameStrategy(old, st):
		return fmt.Errorf("%w: strategy %d exists with other content", lottery.ErrConflict, st.ID)
	}
	if _, err = tx.ExecContext(ctx, `INSERT INTO activity (`+activityColumns+`, create_time, update_time)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.Name, a.Desc, toMS(a.BeginAt), toMS(a.EndAt), a.StockCount, a.StockSurplus, a.TakeCount, a.StrategyID, a.State, now, now); err != nil {
		return s.storeErr(err)
	}
	if err := tx.Commit(); err != nil {
		return unavailable(err)
	}
	return nil
}

func (s *store) insertStrategy(ctx context.Context, tx *sql.Tx, st *lottery.Strategy, now int64) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO strategy
		(strategy_id, strategy_desc, strategy_mode, grant_type, grant_date, draw_module, create_time, update_time)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		st.ID, st.Desc, st.Mode, st.GrantType, toMS(st.GrantDate), st.Module, now, now); err != nil {
		return err
	}
	for i, d := range st.Details {
		if _, err := tx.ExecContext(ctx, `INSERT INTO strategy_detail
			(strategy_id, award_id, award_index, award_count, award_surplus_count, award_rate, create_time, update_time)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			st.ID, d.ID, i, d.AwardCount, d.AwardSurplus, d.Rate, now, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO award
			(strategy_id, award_id, award_type, award_name, award_content, create_time, update_time)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			st.ID, d.ID, d.Type, d.Name, d.Content, now, now); err != nil {
			return err
		}
	}
	return nil
}

// sameStrategy compares two strategies as stored (times to the millisecond).
func sameStrategy(a, b *lottery.Strategy) bool {
	return a.ID == b.ID && a.Desc == b.Desc && a.Mode == b.Mode && a.GrantType == b.GrantType &&
		toMS(a.GrantDate) == toMS(b.GrantDate) && a.Module == b.Module && slices.Equal(a.Details, b.Details)
}

// MoveState is a compare-and-set on the activity's state: from -> to only if
// the state is still from (one UPDATE ... WHERE state = from). It answers ErrNotFound for an unknown activity and
// ErrConflict when the state has moved. Whether the move is allowed is the
// caller's rule (lottery.Target, lottery.CanMove); the store only checks that
// both states exist.
func (s *store) MoveState(ctx context.Context, id int64, from, to lottery.State) error {
	if !from.Valid() || !to.Valid() {
		return fmt.Errorf("orders: move activity %d: %w: states %d -> %d", id, lottery.ErrInvalid, from, to)
	}
	res, err := s.baseW.ExecContext(ctx, `UPDATE activity SET state = ?, update_time = ? WHERE activity_id = ? AND state = ?`,
		to, toMS(time.Now()), id, from)
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err != nil {
		return fmt.Errorf("orders: move activity %d %s -> %s: %w", id, from, to, unavailable(err))
	}
	if n == 1 {
		return nil
	}
	var state lottery.State
	err = s.baseW.QueryRowContext(ctx, `SELECT state FROM activity WHERE activity_id = ?`, id).Scan(&state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("orders: move activity %d: %w", id, lottery.ErrNotFound)
	case err != nil:
		return fmt.Errorf("orders: move activity %d %s -> %s: %w", id, from, to, unavailable(err))
	}
	return fmt.Errorf("orders: move activity %d %s -> %s: %w: state is %s", id, from, to, lottery.ErrConflict, state)
}

// Activities returns up to limit activities with ids above afterID, by id;
// pass the last id of a page to get the next one, until a page is empty.
func (s *store) Activities(ctx context.Context, afterID int64, limit int) ([]lottery.Activity, error) {
	if limit < 1 {
		return nil, fmt.Errorf("orders: activities: %w: limit %d", lottery.ErrInvalid, limit)
	}
	rows, err := s.baseR.QueryContext(ctx, `SELECT `+activityColumns+` FROM activity
		WHERE activity_id > ? ORDER BY activity_id LIMIT ?`, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("orders: activities after %d: %w", afterID, unavailable(err))
	}
	defer rows.Close()
	var out []lottery.Activity
	for rows.Next() {
		a, err := scanActivity(rows)
		if err != nil {
			return nil, fmt.Errorf("orders: activities after %d: %w", afterID, unavailable(err))
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("orders: activities after %d: %w", afterID, unavailable(err))
	}
	return out, nil
}

// SetSurplus writes the stock the stock port says is left into the
// database's view of it: activity.stock_surplus_count to stockSurplus, and
// strategy_detail.award_surplus_count of each award in awardSurplus (awards
// not listed keep theirs), in one transaction. The reconciliation job calls
// it; the stock port stays the authority. Each value must be in 0..its
// count (stock_count, award_count) and each award one of the activity's
// strategy, else ErrInvalid and nothing changes; an unknown activity is
// ErrNotFound. Award surplus is kept per strategy, as in the seed, so for a
// strategy that several activities share the last activity written wins.
func (s *store) SetSurplus(ctx context.Context, activityID int64, stockSurplus int64, awardSurplus map[string]int64) error {
	if err := s.setSurplus(ctx, activityID, stockSurplus, awardSurplus); err != nil {
		return fmt.Errorf("orders: set surplus of activity %d: %w", activityID, err)
	}
	return nil
}

func (s *store) setSurplus(ctx context.Context, activityID int64, stockSurplus int64, awardSurplus map[string]int64) error {
	tx, err := s.baseW.BeginTx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	defer func() { _ = tx.Rollback() }()
	var strategyID, stockCount int64
	err = tx.QueryRowContext(ctx, `SELECT strategy_id, stock_count FROM activity WHERE activity_id = ?`, activityID).
		Scan(&strategyID, &stockCount)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return lottery.ErrNotFound
	case err != nil:
		return unavailable(err)
	}
	counts := map[string]int64{}
	if len(awardSurplus) > 0 {
		rows, err := tx.QueryContext(ctx, `SELECT award_id, award_count FROM strategy_detail WHERE strategy_id = ?`, strategyID)
		if err != nil {
			return unavailable(err)
		}
		for rows.Next() {
			var (
				id string
				n  int64
			)
			if err := rows.Scan(&id, &n); err != nil {
				rows.Close()
				return unavailable(err)
			}
			counts[id] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return unavailable(err)
		}
	}
	var bad []string
	if stockSurplus < 0 || stockSurplus > stockCount {
		bad = append(bad, fmt.Sprintf("stock surplus %d is outside 0..%d", stockSurplus, stockCount))
	}
	ids := slices.Sorted(maps.Keys(awardSurplus))
	for _, id := range ids {
		n, ok := counts[id]
		switch v := awardSurplus[id]; {
		case !ok:
			bad = append(bad, fmt.Sprintf("award %q is not in strategy %d", id, strategyID))
		case v < 0 || v > n:
			bad = append(bad, fmt.Sprintf("award %q surplus %d is outside 0..%d", id, v, n))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", lottery.ErrInvalid, strings.Join(bad, "; "))
	}
	now := toMS(time.Now())
	if _, err := tx.ExecContext(ctx, `UPDATE activity SET stock_surplus_count = ?, update_time = ? WHERE activity_id = ?`,
		stockSurplus, now, activityID); err != nil {
		return unavailable(err)
	}
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `UPDATE strategy_detail SET award_surplus_count = ?, update_time = ?
			WHERE strategy_id = ? AND award_id = ?`, awardSurplus[id], now, strategyID, id); err != nil {
			return unavailable(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return unavailable(err)
	}
	return nil
}
