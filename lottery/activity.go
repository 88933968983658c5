package lottery

import (
	"fmt"
	"time"
)

// State is an activity's life-cycle state, numbered as in the seed's tables.
type State int8

// The eight activity states of the seed.
const (
	StateEdit      State = 1 // being edited
	StateArraigned State = 2 // submitted for review
	StateRevoked   State = 3 // review revoked (kept for the seed's numbering; revoke returns to edit)
	StatePass      State = 4 // approved
	StateDoing     State = 5 // running
	StateRefuse    State = 6 // rejected
	StateClose     State = 7 // closed
	StateOpen      State = 8 // reopened
)

var stateNames = [...]string{"", "edit", "submitted", "revoked", "approved", "running", "rejected", "closed", "reopened"}

// String returns the state's lower-case name, as the HTTP API shows it.
func (s State) String() string {
	if s >= 1 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", int8(s))
}

// Valid reports whether s is one of the eight states.
func (s State) Valid() bool { return s >= StateEdit && s <= StateOpen }

// Action names a state move an operator (or a job) asks for.
type Action string

// The actions of the state machine.
const (
	ActionSubmit  Action = "submit"
	ActionApprove Action = "approve"
	ActionReject  Action = "reject"
	ActionRevoke  Action = "revoke"
	ActionStart   Action = "start"
	ActionClose   Action = "close"
	ActionReopen  Action = "reopen"
)

// Actions lists every action, in a stable order, for help texts and tests.
var Actions = []Action{ActionSubmit, ActionApprove, ActionReject, ActionRevoke, ActionStart, ActionClose, ActionReopen}

// moves is the seed's transition table: from -> allowed targets.
// 1->2|7, 2->4|6|1, 4->5|6|7, 6->1|7, 5->7, 7->8, 8->5|7.
var moves = map[State][]State{
	StateEdit:      {StateArraigned, StateClose},
	StateArraigned: {StatePass, StateRefuse, StateEdit},
	StatePass:      {StateDoing, StateRefuse, StateClose},
	StateRefuse:    {StateEdit, StateClose},
	StateDoing:     {StateClose},
	StateClose:     {StateOpen},
	StateOpen:      {StateDoing, StateClose},
}

// CanMove reports whether the state machine allows from -> to.
func CanMove(from, to State) bool {
	for _, t := range moves[from] {
		if t == to {
			return true
		}
	}
	return false
}

// actionTarget is the state an action leads to. Revoke leads back to edit
// (from submitted or from rejected).
var actionTarget = map[Action]State{
	ActionSubmit:  StateArraigned,
	ActionApprove: StatePass,
	ActionReject:  StateRefuse,
	ActionRevoke:  StateEdit,
	ActionStart:   StateDoing,
	ActionClose:   StateClose,
	ActionReopen:  StateOpen,
}

// Target returns the state that action leads to from `from`, or an error
// wrapping ErrBadTransition (or ErrInvalid for an unknown action).
func Target(from State, a Action) (State, error) {
	to, ok := actionTarget[a]
	if !ok {
		return 0, fmt.Errorf("%w: unknown action %q", ErrInvalid, a)
	}
	if !CanMove(from, to) {
		return 0, fmt.Errorf("%w: %s from %s", ErrBadTransition, a, from)
	}
	return to, nil
}

// Activity is a lottery campaign (the seed's `activity` table).
type Activity struct {
	ID      int64     `json:"activityId"`
	Name    string    `json:"name"`
	Desc    string    `json:"desc,omitempty"`
	BeginAt time.Time `json:"beginTime"`
	EndAt   time.Time `json:"endTime"`
	// StockCount is the total number of accepted draws (win or lose).
	StockCount int64 `json:"stockCount"`
	// StockSurplus is the database's view of the stock left; the stock port is
	// the authority and a job brings this column in line.
	StockSurplus int64 `json:"stockSurplusCount"`
	// TakeCount is how many draws one user may make.
	TakeCount  int   `json:"takeCount"`
	StrategyID int64 `json:"strategyId"`
	State      State `json:"state"`
}

// Validate checks an activity definition before it is stored.
func (a *Activity) Validate() error {
	var errs []string
	if a.ID <= 0 {
		errs = append(errs, "activityId must be positive")
	}
	if a.Name == "" || len(a.Name) > 128 {
		errs = append(errs, "name must be 1 to 128 bytes")
	}
	if len(a.Desc) > 1024 {
		errs = append(errs, "desc must be at most 1024 bytes")
	}
	if a.BeginAt.IsZero() || a.EndAt.IsZero() || !a.EndAt.After(a.BeginAt) {
		errs = append(errs, "beginTime and endTime are required and endTime must be after beginTime")
	}
	if a.StockCount <= 0 || a.StockCount > MaxStock {
		errs = append(errs, fmt.Sprintf("stockCount must be in 1..%d", MaxStock))
	}
	if a.TakeCount <= 0 || a.TakeCount > MaxTakeCount {
		errs = append(errs, fmt.Sprintf("takeCount must be in 1..%d", MaxTakeCount))
	}
	if a.StrategyID <= 0 {
		errs = append(errs, "strategyId must be positive")
	}
	if !a.State.Valid() {
		errs = append(errs, "state must be in 1..8")
	}
	return joinInvalid(errs)
}

// Open reports whether a draw may be taken at now: running (or reopened and
// started) and inside the time window.
func (a *Activity) Open(now time.Time) bool {
	return a.State == StateDoing && !now.Before(a.BeginAt) && now.Before(a.EndAt)
}

// Limits on definitions, so untrusted admin input stays bounded.
const (
	MaxStock     = 1 << 40
	MaxTakeCount = 1_000_000
	MaxAwards    = 64
)

func joinInvalid(errs []string) error {
	if len(errs) == 0 {
		return nil
	}
	msg := errs[0]
	for _, e := range errs[1:] {
		msg += "; " + e
	}
	return fmt.Errorf("%w: %s", ErrInvalid, msg)
}
