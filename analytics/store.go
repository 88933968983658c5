package analytics

import (
	"context"
	"time"

	"github.com/flashlottery/lottery/lottery"
)

// Store is where the Sink delivers batches of draw events: the embedded store
// by default, ClickHouse in production.
//
// Insert stores the whole batch or nothing and returns an error if it did not;
// the Sink then retries the same events. A store whose failures can hide a
// write that happened (a lost answer from a server) must recognise the retry
// and not store the batch twice: ClickHouse does it with a batch id (see
// ClickHouse.Insert). Insert must honour ctx: the Sink bounds every call with a
// timeout and relies on the call returning once ctx is done. Insert must not
// retain events after it returns: the Sink reuses the slice.
type Store interface {
	Insert(ctx context.Context, events []lottery.Event) error
}

// Querier answers the named analytics queries. The embedded store and
// ClickHouse implement it with the same answers: counts are equal, and
// latency percentiles estimate the same rank, within 12.5% of it in the
// embedded store and 1/64 in ClickHouse.
//
// Every query counts the events of one activity whose time lies in
// [from, to), both taken to the whole second (the resolution of a ClickHouse
// DateTime and of the embedded store's buckets).
//
// Summary answers draws, wins, outcomes, awards and the median and 99th
// percentile latency. A zero from means since the first event, a zero to
// means up to the last one.
//
// The other queries are bounded: they need an activityID above zero, a
// non-empty window within MaxWindow between 1970 and 2106, and answer an
// error wrapping lottery.ErrInvalid otherwise. Awards counts the won draws
// per award, ordered by award id (see CompareRates). Timeline counts draws
// and wins per step, every step present, steps aligned to multiples of the
// step since the epoch (see TimelinePoint); a step is whole seconds under
// a minute (over a window of at most MaxFineWindow) and whole minutes from
// a minute up, and a window holds at most MaxPoints steps. Latency answers
// the 50th, 90th and 99th percentiles. Modules counts the outcomes per
// draw module version, ordered by name and version. Awards and Modules
// fold names beyond MaxGroups under OtherName.
type Querier interface {
	Summary(ctx context.Context, activityID int64, from, to time.Time) (Summary, error)
	Awards(ctx context.Context, activityID int64, from, to time.Time) ([]AwardCount, error)
	Timeline(ctx context.Context, activityID int64, from, to time.Time, step time.Duration) ([]TimelinePoint, error)
	Latency(ctx context.Context, activityID int64, from, to time.Time) (Latency, error)
	Modules(ctx context.Context, activityID int64, from, to time.Time) ([]ModuleOutcomes, error)
}

// Summary is the outcome of the draws of one activity over a time window.
type Summary struct {
	ActivityID int64 `json:"activityId"`
	// Draws counts every draw attempt, whatever its outcome.
	Draws int64 `json:"draws"`
	// Wins counts the attempts whose outcome is lottery.OutcomeWin.
	Wins int64 `json:"wins"`
	// WinRate is Wins / Draws, 0 when there were no draws.
	WinRate float64 `json:"winRate"`
	// Outcomes counts attempts by outcome (win, lose, sold_out, ...).
	Outcomes map[string]int64 `json:"outcomes"`
	// Awards counts won draws by award id.
	Awards map[string]int64 `json:"awards"`
	// LatencyP50US and LatencyP99US are the median and 99th percentile of
	// the draw latency in microseconds, estimated from a histogram: within
	// 12.5% in the embedded store, within 1/64 in ClickHouse.
	LatencyP50US int64 `json:"latencyP50Us"`
	LatencyP99US int64 `json:"latencyP99Us"`
	// From and To echo the queried window; zero means unbounded.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
}

// winRate returns wins / draws, 0 for no draws.
func winRate(wins, draws int64) float64 {
	if draws == 0 {
		return 0
	}
	return float64(wins) / float64(draws)
}
