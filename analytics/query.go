package analytics

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/flashlottery/lottery/lottery"
)

// Bounds of the named queries other than Summary. They keep every answer
// small and every query's cost bounded, whatever the caller asks.
const (
	// MaxWindow is the longest [from, to) window a query accepts.
	MaxWindow = 31 * 24 * time.Hour
	// MaxPoints is the most points Timeline returns, one per step that
	// overlaps the window.
	MaxPoints = 10_000
	// MaxGroups is the most awards Awards returns, and the most
	// (module version, outcome) pairs Modules counts, OtherName included:
	// names beyond the first MaxGroups-1 are folded under OtherName.
	MaxGroups = maxNamed
	// OtherName is the award or module name under which counts beyond
	// MaxGroups distinct names are folded.
	OtherName = otherName
)

// maxUnix is the last second a ClickHouse DateTime can hold; windows must
// lie in [0, maxUnix] so that both stores can answer them.
const maxUnix = math.MaxUint32

// AwardCount is how many draws of an activity won one award.
type AwardCount struct {
	AwardID string `json:"awardId"`
	Count   int64  `json:"count"`
}

// AwardRate compares the observed share of one award with its configured
// rate; CompareRates computes it.
type AwardRate struct {
	AwardID string `json:"awardId"`
	// Count is how many draws won the award.
	Count int64 `json:"count"`
	// Rate is the configured probability of the award per draw, in [0, 1].
	Rate float64 `json:"rate"`
	// Expected is Rate x draws: the count the rate predicts.
	Expected float64 `json:"expected"`
	// Observed is Count / draws: the award's observed share of the draws.
	Observed float64 `json:"observed"`
	// Deviation is Observed - Rate: positive when the award came out more
	// often than configured.
	Deviation float64 `json:"deviation"`
}

// TimelinePoint counts the draws of one step of a timeline, the step
// [At, At+step) clipped to the queried window. Steps are aligned to
// multiples of the step since the Unix epoch, in UTC (as Prometheus does),
// not to the window's start: a dashboard polling a sliding window sees the
// same steps every time, and the first and last steps may be cut short.
type TimelinePoint struct {
	At    time.Time `json:"at"`
	Draws int64     `json:"draws"`
	Wins  int64     `json:"wins"`
	// DrawsPerSecond is Draws divided by the seconds the step covers.
	DrawsPerSecond float64 `json:"drawsPerSecond"`
}

// Latency holds percentiles of the draw latency of an activity over a
// window, in microseconds.
type Latency struct {
	ActivityID int64     `json:"activityId"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	// Count is the number of draws measured; the percentiles are 0 when
	// it is 0.
	Count int64 `json:"count"`
	P50US int64 `json:"p50Us"`
	P90US int64 `json:"p90Us"`
	P99US int64 `json:"p99Us"`
}

// ModuleOutcomes counts the outcomes of the draws decided by one version of
// a draw module. Name and Version are empty for attempts that ended before
// a module was run (sold out, limit reached, not active).
type ModuleOutcomes struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Draws   int64  `json:"draws"`
	Wins    int64  `json:"wins"`
	// WinRate is Wins / Draws.
	WinRate float64 `json:"winRate"`
	// Outcomes counts the draws by outcome.
	Outcomes map[string]int64 `json:"outcomes"`
}

// SplitModule splits the module of an event into its name and version:
// "name@version" splits at the last '@' (a registry module and the sha256
// prefix of its code), "name-v1" (or "name-v1.2") at its version suffix, as
// in lottery.NativeModule; anything else is a name without a version.
func SplitModule(module string) (name, version string) {
	if i := strings.LastIndexByte(module, '@'); i >= 0 {
		return module[:i], module[i+1:]
	}
	if i := strings.LastIndex(module, "-v"); i > 0 && i+2 < len(module) {
		v := module[i+2:]
		if v[0] >= '0' && v[0] <= '9' && strings.Trim(v, "0123456789.") == "" {
			return module[:i], module[i+1:]
		}
	}
	return module, ""
}

// CompareRates sets the observed award counts of an activity against the
// configured rates (award id to probability per draw, as RatesOf returns).
// draws is the number of attempts that reached the draw, usually
// Summary.Outcomes["win"] + Summary.Outcomes["lose"]: attempts refused
// before drawing (sold out, limit reached, not active) had no chance to
// win. Every award of either counts or rates gets one entry, ordered by
// award id; with no draws the shares are 0.
func CompareRates(counts []AwardCount, draws int64, rates map[string]float64) []AwardRate {
	byID := make(map[string]int, len(counts)+len(rates))
	out := make([]AwardRate, 0, len(counts)+len(rates))
	entry := func(id string) *AwardRate {
		i, ok := byID[id]
		if !ok {
			i = len(out)
			byID[id] = i
			out = append(out, AwardRate{AwardID: id})
		}
		return &out[i]
	}
	for _, c := range counts {
		entry(c.AwardID).Count += c.Count
	}
	for id, r := range rates {
		entry(id).Rate = r
	}
	for i := range out {
		a := &out[i]
		a.Expected = a.Rate * float64(draws)
		if draws > 0 {
			a.Observed = float64(a.Count) / float64(draws)
		}
		a.Deviation = a.Observed - a.Rate
	}
	slices.SortFunc(out, func(a, b AwardRate) int { return strings.Compare(a.AwardID, b.AwardID) })
	return out
}

// RatesOf returns the configured probability per draw of each award of a
// strategy: its rate in single-item mode, its share of the rate sum in
// total-rate mode. Both assume every award has stock: once an award is sold
// out, single-item mode misses instead and total-rate mode renormalises
// over the rest.
func RatesOf(s *lottery.Strategy) map[string]float64 {
	rates := make(map[string]float64, len(s.Details))
	scale := float64(lottery.RateScale)
	if s.Mode == lottery.ModeTotal {
		var sum int64
		for _, d := range s.Details {
			sum += d.Rate
		}
		scale = float64(sum)
	}
	for _, d := range s.Details {
		if scale > 0 {
			rates[d.ID] = float64(d.Rate) / scale
		}
	}
	return rates
}

// summaryBounds returns Summary's window in whole seconds, [lo, hi): a
// zero from or to leaves that end unbounded.
func summaryBounds(from, to time.Time) (lo, hi int64) {
	lo, hi = math.MinInt64, math.MaxInt64
	if !from.IsZero() {
		lo = from.Unix()
	}
	if !to.IsZero() {
		hi = to.Unix()
	}
	return lo, hi
}

// window is a validated query window in whole seconds: [lo, hi).
type window struct {
	act    int64
	lo, hi int64
}

// checkWindow validates the parameters shared by the bounded queries:
// a positive activity id and a window [from, to), taken to the whole second,
// that is not empty, lies between 1970 and 2106 (what a ClickHouse DateTime
// holds) and spans at most MaxWindow. The activity id's problem and the
// window's first are reported, wrapped in lottery.ErrInvalid.
func checkWindow(activityID int64, from, to time.Time) (window, error) {
	w := window{act: activityID, lo: from.Unix(), hi: to.Unix()}
	var errs []string
	if activityID <= 0 {
		errs = append(errs, "activityId must be positive")
	}
	switch {
	case from.IsZero() || to.IsZero():
		errs = append(errs, "from and to are required")
	case w.lo < 0 || w.hi > maxUnix:
		errs = append(errs, "from and to must lie between 1970 and 2106")
	case w.lo >= w.hi:
		errs = append(errs, "from must be before to (to the second)")
	case w.hi-w.lo > int64(MaxWindow/time.Second):
		errs = append(errs, fmt.Sprintf("the window must span at most %v", MaxWindow))
	}
	return w, invalid(errs)
}

// MaxFineWindow is the longest window a timeline with steps under a minute
// may span; finer steps over longer windows would read a row per second
// of it.
const MaxFineWindow = 6 * time.Hour

// checkStep validates a timeline step for a valid window: whole seconds,
// at least one; whole minutes from a minute up; under a minute only over a
// window of at most MaxFineWindow; and at most MaxPoints steps. It returns
// the step in seconds.
func checkStep(w window, step time.Duration) (int64, error) {
	st := int64(step / time.Second)
	switch {
	case step < time.Second || step%time.Second != 0:
		return 0, invalid([]string{"step must be a whole number of seconds, at least 1s"})
	case st >= minute && st%minute != 0:
		return 0, invalid([]string{"a step of a minute or more must be a whole number of minutes"})
	case st < minute && w.hi-w.lo > int64(MaxFineWindow/time.Second):
		return 0, invalid([]string{fmt.Sprintf("a step under a minute needs a window of at most %v", MaxFineWindow)})
	case w.points(st) > MaxPoints:
		return 0, invalid([]string{fmt.Sprintf("the window holds more than %d steps: use a longer step", MaxPoints)})
	}
	return st, nil
}

// Widths of the ClickHouse rollup rows, in seconds; timeline steps of a
// minute or more are whole minutes so that rollup rows fit in them.
const (
	minute = 60
	hour   = 3600
)

// points returns the number of steps of step seconds, aligned to multiples
// of step since the epoch, that cover the window.
func (w window) points(step int64) int64 {
	return (w.hi+step-1)/step - w.lo/step
}

// timeline returns the empty points of a window cut into steps.
func (w window) timeline(step int64) []TimelinePoint {
	pts := make([]TimelinePoint, w.points(step))
	first := w.lo / step * step
	for i := range pts {
		pts[i].At = time.Unix(first+int64(i)*step, 0).UTC()
	}
	return pts
}

// finishTimeline sets the rate of every point from its draws and the
// seconds of the window it covers (the first and last steps may be cut).
func finishTimeline(w window, step int64, pts []TimelinePoint) {
	for i := range pts {
		start := pts[i].At.Unix()
		secs := min(start+step, w.hi) - max(start, w.lo)
		pts[i].DrawsPerSecond = float64(pts[i].Draws) / float64(secs)
	}
}

// invalid joins problems into one error wrapping lottery.ErrInvalid, or nil.
func invalid(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: analytics: %s", lottery.ErrInvalid, strings.Join(problems, "; "))
}

// moduleGroups counts draws per (module name, version) and outcome, as both
// stores' Modules gather them before finishModules.
type moduleGroups map[[2]string]map[string]int64

// add counts n draws of the module version with the outcome.
func (g moduleGroups) add(name, version, outcome string, n int64) {
	k := [2]string{name, version}
	m := g[k]
	if m == nil {
		m = make(map[string]int64)
		g[k] = m
	}
	m[outcome] += n
}

// finishModules computes the totals of each module version and orders them
// by name and version.
func finishModules(groups moduleGroups) []ModuleOutcomes {
	out := make([]ModuleOutcomes, 0, len(groups))
	for k, outcomes := range groups {
		m := ModuleOutcomes{Name: k[0], Version: k[1], Outcomes: outcomes}
		for o, n := range outcomes {
			m.Draws += n
			if o == string(lottery.OutcomeWin) {
				m.Wins += n
			}
		}
		m.WinRate = winRate(m.Wins, m.Draws)
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b ModuleOutcomes) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	return out
}

// sortAwards orders award counts by award id.
func sortAwards(a []AwardCount) {
	slices.SortFunc(a, func(x, y AwardCount) int { return strings.Compare(x.AwardID, y.AwardID) })
}
