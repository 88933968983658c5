package lottery

import "time"

// TakeState is the seed's user_take_activity.state.
type TakeState int8

// Take states.
const (
	TakeUnused TakeState = 0
	TakeUsed   TakeState = 1
)

// Take is one participation of a user in an activity: a unit of activity
// stock that the user holds until it is turned into a draw (the seed's
// user_take_activity).
type Take struct {
	ID         int64     `json:"takeId"`
	UserID     string    `json:"userId"`
	ActivityID int64     `json:"activityId"`
	StrategyID int64     `json:"strategyId"`
	TakeCount  int       `json:"takeCount"` // the n-th take of this user in this activity, from 1
	State      TakeState `json:"state"`
	// AwardID is the award the take was drawn into; empty while unused and
	// for a draw that lost.
	AwardID string    `json:"awardId,omitempty"`
	At      time.Time `json:"takeTime"`
}

// MQState is the outbox state of an order (the seed's mq_state).
type MQState int8

// Outbox states.
const (
	MQInit   MQState = 0
	MQSent   MQState = 1
	MQFailed MQState = 2
)

// GrantState says whether the prize was delivered.
type GrantState int8

// Grant states.
const (
	GrantPending GrantState = 0
	GrantDone    GrantState = 1
)

// Order is a won prize (the seed's user_strategy_export). Its UUID is the
// take id, so one take can never become two orders.
type Order struct {
	ID         int64      `json:"orderId,string"`
	UserID     string     `json:"userId"`
	ActivityID int64      `json:"activityId"`
	StrategyID int64      `json:"strategyId"`
	Mode       Mode       `json:"strategyMode"`
	GrantType  GrantType  `json:"grantType"`
	GrantDate  time.Time  `json:"grantDate,omitzero"`
	GrantState GrantState `json:"grantState"`
	Award      Award      `json:"award"`
	TakeID     int64      `json:"takeId,string"`
	MQState    MQState    `json:"mqState"`
	// Module and Seed make the draw reproducible: (module version, input, seed).
	Module string    `json:"module"`
	Seed   uint64    `json:"seed,string"`
	At     time.Time `json:"orderTime"`
}

// Invoice is the message that asks the distributor to deliver a prize.
type Invoice struct {
	OrderID    int64     `json:"orderId"`
	TakeID     int64     `json:"takeId"`
	UserID     string    `json:"userId"`
	ActivityID int64     `json:"activityId"`
	Award      Award     `json:"award"`
	At         time.Time `json:"orderTime"`
}

// InvoiceOf builds the invoice for an order.
func InvoiceOf(o *Order) Invoice {
	return Invoice{OrderID: o.ID, TakeID: o.TakeID, UserID: o.UserID, ActivityID: o.ActivityID, Award: o.Award, At: o.At}
}

// Outcome is the result of one draw attempt as the API reports it.
type Outcome string

// Outcomes.
const (
	OutcomeWin          Outcome = "win"
	OutcomeLose         Outcome = "lose"
	OutcomeSoldOut      Outcome = "sold_out"
	OutcomeLimitReached Outcome = "limit_reached"
	OutcomeNotActive    Outcome = "not_active"
	OutcomeError        Outcome = "error"
)

// Event is one draw attempt for analytics, won or not.
type Event struct {
	At         time.Time
	ActivityID int64
	UserID     string
	Mode       Mode
	Module     string
	Outcome    Outcome
	AwardID    string
	LatencyUS  int64
	Node       int64
	Seed       uint64
}
