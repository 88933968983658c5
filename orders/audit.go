package orders

import (
	"context"
	"fmt"
	"strings"

	"github.com/flashlottery/lottery/lottery"
)

// Audit is a consistency report of one activity's takes and orders across
// every shard, for crash drills and reconciliation. Each shard database is
// read in one snapshot; since a user's take, count and order live on the same
// shard and are written in one transaction, the invariants below hold within
// a shard whatever was interrupted, and so hold for the sum.
//
// Invariants of a consistent store (Err checks them):
//   - WonWithoutOrder, OrphanOrders, AwardMismatch and CountMismatch are 0;
//   - Orders == WonTakes and the sum of OrdersByAward is Orders;
//   - WonTakes <= UsedTakes <= Takes.
type Audit struct {
	// Takes counts takes in every state; UsedTakes the ones turned into a
	// draw; WonTakes the used ones with an award.
	Takes, UsedTakes, WonTakes int64
	// Orders counts orders; OrdersByAward splits them by award id.
	Orders        int64
	OrdersByAward map[string]int64
	// WonWithoutOrder counts used takes with an award but no order.
	WonWithoutOrder int64
	// OrphanOrders counts orders whose take is missing or unused.
	OrphanOrders int64
	// AwardMismatch counts orders whose award differs from their take's.
	AwardMismatch int64
	// CountMismatch counts users whose count row (total - left) differs from
	// their number of takes.
	CountMismatch int64
	// ByMQState and ByGrantState split the orders by outbox and grant state.
	ByMQState    map[lottery.MQState]int64
	ByGrantState map[lottery.GrantState]int64
}

// Err returns nil if the audit shows a consistent store, else an error
// listing every broken invariant.
func (a Audit) Err() error {
	var bad []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			bad = append(bad, fmt.Sprintf(format, args...))
		}
	}
	check(a.WonWithoutOrder == 0, "%d won takes without an order", a.WonWithoutOrder)
	check(a.OrphanOrders == 0, "%d orders without a used take", a.OrphanOrders)
	check(a.AwardMismatch == 0, "%d orders with another award than their take", a.AwardMismatch)
	check(a.CountMismatch == 0, "%d users whose count row disagrees with their takes", a.CountMismatch)
	check(a.Orders == a.WonTakes, "%d orders but %d won takes", a.Orders, a.WonTakes)
	var byAward int64
	for _, n := range a.OrdersByAward {
		byAward += n
	}
	check(byAward == a.Orders, "orders by award sum to %d, not %d", byAward, a.Orders)
	check(a.WonTakes <= a.UsedTakes && a.UsedTakes <= a.Takes, "won %d, used %d, takes %d out of order", a.WonTakes, a.UsedTakes, a.Takes)
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("orders: audit: %s", strings.Join(bad, "; "))
}

// Audit reads the consistency report of activityID. It scans the activity's
// rows (and the count tables in full), so it is for verifiers and
// reconciliation jobs, not for the draw path.
func (s *store) Audit(ctx context.Context, activityID int64) (Audit, error) {
	a := Audit{
		OrdersByAward: map[string]int64{},
		ByMQState:     map[lottery.MQState]int64{},
		ByGrantState:  map[lottery.GrantState]int64{},
	}
	for _, sh := range s.shards {
		if err := s.auditShard(ctx, sh, activityID, &a); err != nil {
			return Audit{}, fmt.Errorf("orders: audit activity %d in %s: %w", activityID, sh.name, unavailable(err))
		}
	}
	return a, nil
}

func (s *store) auditShard(ctx context.Context, sh *shard, activityID int64, a *Audit) error {
	// One read transaction: a snapshot of the whole shard database.
	tx, err := sh.rdb.BeginTx(ctx, s.d.snapshot)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	take := TableTake
	var takes, used, won, countBad int64
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(state = 1), 0), COALESCE(SUM(state = 1 AND award_id <> ''), 0)
		FROM `+take+` WHERE activity_id = ?`, activityID).Scan(&takes, &used, &won); err != nil {
		return err
	}
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+TableTakeCount+` c
		WHERE c.activity_id = ? AND c.total_count - c.left_count <>
			(SELECT COUNT(*) FROM `+take+` t WHERE t.activity_id = c.activity_id AND t.user_id = c.user_id)`,
		activityID).Scan(&countBad); err != nil {
		return err
	}
	a.Takes += takes
	a.UsedTakes += used
	a.WonTakes += won
	a.CountMismatch += countBad
	// A won take's order may be in any of the database's order tables (the
	// one its user routes to, which SQL cannot compute): count, table by
	// table, the orders of won takes, and take them from the won takes.
	// One query per table rather than one NOT EXISTS over all of them,
	// which at 64 tables would pass MariaDB's 61 tables of a join; a take
	// with two orders shows as Orders > WonTakes.
	var withOrder int64
	for tb := range s.router.TBCount {
		export := ShardTable(TableExport, tb)
		var orphan, mismatch, wonHere int64
		if err := tx.QueryRowContext(ctx, `SELECT
				COALESCE(SUM(t.take_id IS NULL OR t.state <> 1), 0),
				COALESCE(SUM(t.take_id IS NOT NULL AND t.state = 1 AND t.award_id <> o.award_id), 0),
				COALESCE(SUM(t.take_id IS NOT NULL AND t.state = 1 AND t.award_id <> ''), 0)
			FROM `+export+` o LEFT JOIN `+take+` t ON t.take_id = o.uuid AND t.user_id = o.user_id
			WHERE o.activity_id = ?`, activityID).Scan(&orphan, &mismatch, &wonHere); err != nil {
			return err
		}
		a.OrphanOrders += orphan
		a.AwardMismatch += mismatch
		withOrder += wonHere
		rows, err := tx.QueryContext(ctx, `SELECT award_id, mq_state, grant_state, COUNT(*) FROM `+export+`
			WHERE activity_id = ? GROUP BY award_id, mq_state, grant_state`, activityID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var (
				award string
				mq    lottery.MQState
				grant lottery.GrantState
				n     int64
			)
			if err := rows.Scan(&award, &mq, &grant, &n); err != nil {
				rows.Close()
				return err
			}
			a.Orders += n
			a.OrdersByAward[award] += n
			a.ByMQState[mq] += n
			a.ByGrantState[grant] += n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	a.WonWithoutOrder += max(won-withOrder, 0)
	return nil
}
