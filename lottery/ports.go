package lottery

import (
	"context"
	"time"
)

// StockKey names one stock counter: an activity's stock when Award is empty,
// else the stock of one award of that activity's strategy.
type StockKey struct {
	Activity int64
	Award    string
}

// Reservation is a unit of stock held by a draw. Slot is the sliding-stock
// slot (the used count after the reservation, from 1); adapters that lock
// slots use it, others may leave it zero.
type Reservation struct {
	Key  StockKey
	Slot int64
}

// Stock reserves stock without ever overselling. Reserve answers ErrSoldOut
// when nothing is left; Release gives a reservation back after a later step
// failed; Settle tells the adapter that the reservation became a committed
// take or order (a slot lock may be dropped). SoldOut is a local hint that
// costs no I/O, so a sold-out activity answers without a round trip.
type Stock interface {
	Reserve(ctx context.Context, key StockKey) (Reservation, error)
	Release(ctx context.Context, r Reservation) error
	Settle(ctx context.Context, r Reservation) error
	SoldOut(key StockKey) bool
}

// StockBatch is a Stock that reserves several keys in one call (the Redis
// adapter sends them in one round trip). Each key is reserved, refused or
// failed on its own, as Reserve would; res and errs have len(keys). The
// draw of a new take uses it to reserve the activity unit and the drawn
// award's unit together; a Stock without it gets a loop over Reserve.
type StockBatch interface {
	ReserveEach(ctx context.Context, keys []StockKey, res []Reservation, errs []error)
}

// UserState is what partake needs to know about a user in an activity.
type UserState struct {
	// Unused is the user's unused take, if any.
	Unused *Take
	// Left is how many takes the user has left; -1 if the user never took part.
	Left int
}

// Orders stores takes and orders on the user's shard, as the draw process
// uses them. TakeDraw records a new take and its draw in one transaction:
// it decrements the user's left count (starting from takeCount), answering
// ErrLimitReached with nothing written when none is left, and inserts the
// take already used, beside the order of a win (mq_state 0). Draw marks an
// unused take used (ErrTakeUsed if it already was) and, for a win, inserts
// the order in the same transaction: the process calls it only for an
// unused take it reuses, one recorded alone by the stores' Take (the seed's
// two-step take, kept in the adapters and their contract suite).
type Orders interface {
	UserState(ctx context.Context, userID string, activityID int64) (UserState, error)
	Draw(ctx context.Context, t *Take, o *Order) error
	TakeDraw(ctx context.Context, t *Take, takeCount int, o *Order) error
}

// Outbox is the orders store seen by the invoice relay and the compensation
// scan: set the outbox state of orders and find the ones left behind.
type Outbox interface {
	SetMQState(ctx context.Context, refs []OrderRef, state MQState) error
	// Pending returns orders with mq_state failed, or init and older than
	// staleBefore, across every shard, at most limit of them, oldest first per shard.
	Pending(ctx context.Context, staleBefore time.Time, limit int) ([]Order, error)
}

// OrderRef locates an order: the user id selects the shard.
type OrderRef struct {
	UserID  string
	OrderID int64
}

// Granter records a delivery: it moves the order's grant_state 0 -> 1 and
// reports whether this call made the move (false on a repeat delivery).
// The move also sets mq_state 1: a delivered invoice was published, so the
// relay's own confirmation of it, which comes later, writes nothing.
type Granter interface {
	Grant(ctx context.Context, ref OrderRef) (bool, error)
}

// GrantBatch is a Granter that records several deliveries in one call (the
// invoice consumer's batch): moved[i] and errs[i] are what Grant of refs[i]
// would answer. Both order stores implement it with one write per shard
// database.
type GrantBatch interface {
	GrantEach(ctx context.Context, refs []OrderRef, moved []bool, errs []error)
}

// Catalog reads activity configuration.
type Catalog interface {
	Activity(ctx context.Context, id int64) (*Activity, error)
	Strategy(ctx context.Context, id int64) (*Strategy, error)
}

// Publisher sends invoices to the broker. Publish blocks until each invoice
// is acknowledged or failed and returns one error (nil on ack) per invoice.
type Publisher interface {
	Publish(ctx context.Context, invs []Invoice) []error
}

// Events receives one analytics event per draw attempt. Record must never
// block a draw: a full buffer drops and counts.
type Events interface {
	Record(e Event)
}

// DrawRequest is the input of a draw algorithm: the strategy, which awards
// still have stock (parallel to Strategy.Details), the random seed and the
// time of the draw. Seed and Time are recorded on the order (Order.Seed,
// Order.At to the millisecond), so a draw can be replayed from them and the
// module version.
type DrawRequest struct {
	Strategy *Strategy
	InStock  []bool
	Seed     uint64
	Time     time.Time // zero: the drawer uses its own clock
}

// DrawResult is the chosen award index into Strategy.Details, or -1 for none,
// and the algorithm (module name and version) that decided.
type DrawResult struct {
	Index  int
	Module string
}

// Drawer picks an award. Implementations must be deterministic in
// (strategy, InStock, Seed).
type Drawer interface {
	Draw(ctx context.Context, req DrawRequest) (DrawResult, error)
}

// StockAdmin sets up and reads stock counters. Provision sets a counter's
// total and its used count (the durable count of takes or orders, so a
// restarted in-memory stock resumes where it stopped); Left reads what is
// left (total - used, never below zero).
type StockAdmin interface {
	Provision(ctx context.Context, key StockKey, total, used int64) error
	Left(ctx context.Context, key StockKey) (int64, error)
}

// CatalogAdmin stores activity configuration. SaveActivity inserts an
// activity with its strategy (ErrConflict if either id exists); MoveState is a
// compare-and-set on the state (ErrConflict if the state is no longer from);
// Activities pages through activities by id (afterID exclusive).
type CatalogAdmin interface {
	Catalog
	SaveActivity(ctx context.Context, a *Activity, s *Strategy) error
	MoveState(ctx context.Context, id int64, from, to State) error
	Activities(ctx context.Context, afterID int64, limit int) ([]Activity, error)
}

// Usage is the durable record of how much of an activity's stock is used:
// the number of takes, and the number of orders per award.
type Usage struct {
	Takes  int64
	Awards map[string]int64
}

// Ledger reads durable usage and a user's orders across every shard.
type Ledger interface {
	Usage(ctx context.Context, activityID int64) (Usage, error)
	UserOrders(ctx context.Context, userID string, limit int) ([]Order, error)
}

// SurplusWriter brings the database's view of stock (stock_surplus_count and
// award_surplus_count) in line with the stock port, the authority.
type SurplusWriter interface {
	SetSurplus(ctx context.Context, activityID int64, stockSurplus int64, awardSurplus map[string]int64) error
}

// StockTrimmer gives back units a stock port counts beyond the durable
// record (reservations of a crashed edge): Trim sets the used count of key
// to toUsed if it is still expectUsed and reports whether it did. Being a
// compare-and-set, several edges reconciling at once give the units back once.
type StockTrimmer interface {
	Trim(ctx context.Context, key StockKey, expectUsed, toUsed int64) (bool, error)
}
