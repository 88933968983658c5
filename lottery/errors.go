package lottery

import "errors"

// Sentinel errors of the domain. Adapters wrap driver errors into these so the
// draw process and the HTTP edge can decide on them with errors.Is.
var (
	// ErrSoldOut means the activity (or, internally, an award) has no stock left.
	ErrSoldOut = errors.New("sold out")
	// ErrLimitReached means the user has used every draw the activity allows.
	ErrLimitReached = errors.New("draw limit reached")
	// ErrNotActive means the activity is not running or is outside its time window.
	ErrNotActive = errors.New("activity not active")
	// ErrNotFound means the activity, strategy, take or order does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalid means the input breaks a rule of the domain; the wrapping error says which.
	ErrInvalid = errors.New("invalid input")
	// ErrConflict means a compare-and-set lost: the state moved underneath the caller,
	// or a record with the same identity already exists.
	ErrConflict = errors.New("conflict")
	// ErrBadTransition means the requested state move is not allowed from the current state.
	ErrBadTransition = errors.New("state move not allowed")
	// ErrUnavailable means a dependency (store, stock, broker, module) cannot answer now.
	ErrUnavailable = errors.New("dependency unavailable")
	// ErrTakeUsed means the take was already turned into a draw (a concurrent draw won).
	ErrTakeUsed = errors.New("take already used")
	// ErrOutcomeUnknown comes with ErrUnavailable when a store's commit went
	// unanswered (the server died or the connection broke at the COMMIT):
	// the write may have happened. The draw keeps the stock it reserved for
	// it, since giving it back could sell a unit twice; if the write did not
	// happen, the reconciliation gives the units back (Reconcile).
	ErrOutcomeUnknown = errors.New("outcome unknown")
)
