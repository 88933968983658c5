package analytics

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
)

var modules = []string{lottery.NativeModule, "promo-draw@3f9a1c2e", "promo-draw@77b0d4aa", "rules-only", ""}

// drawEvents returns randomEvents with the fields Modules and audits need
// filled in: a module version, a strategy mode, a user and an edge node.
func drawEvents(r *rand.Rand, n int, span time.Duration) []lottery.Event {
	events := randomEvents(r, n, span)
	for i := range events {
		e := &events[i]
		e.Module = modules[r.IntN(len(modules))]
		e.Mode = lottery.Mode(1 + r.IntN(2))
		e.UserID = "user-" + string(rune('a'+r.IntN(26))) + string(rune('a'+r.IntN(26)))
		e.Node = r.Int64N(4)
	}
	return events
}

// inWindow reports whether e counts in [lo, hi) for activity act.
func inWindow(e *lottery.Event, act, lo, hi int64) bool {
	s := e.At.Unix()
	return e.ActivityID == act && s >= lo && s < hi
}

func handAwards(events []lottery.Event, act int64, from, to time.Time) []AwardCount {
	counts := map[string]int64{}
	for i := range events {
		e := &events[i]
		if inWindow(e, act, from.Unix(), to.Unix()) && e.Outcome == lottery.OutcomeWin && e.AwardID != "" {
			counts[e.AwardID]++
		}
	}
	out := []AwardCount{}
	for id, n := range counts {
		out = append(out, AwardCount{AwardID: id, Count: n})
	}
	sortAwards(out)
	return out
}

func handTimeline(events []lottery.Event, act int64, from, to time.Time, step time.Duration) []TimelinePoint {
	w := window{act: act, lo: from.Unix(), hi: to.Unix()}
	st := int64(step / time.Second)
	pts := w.timeline(st)
	for i := range events {
		e := &events[i]
		if !inWindow(e, act, w.lo, w.hi) {
			continue
		}
		p := &pts[e.At.Unix()/st-w.lo/st]
		p.Draws++
		if e.Outcome == lottery.OutcomeWin {
			p.Wins++
		}
	}
	finishTimeline(w, st, pts)
	return pts
}

// handLatencies returns the sorted latencies in the window, clamped as
// ClickHouse stores them.
func handLatencies(events []lottery.Event, act int64, from, to time.Time) []int64 {
	var lat []int64
	for i := range events {
		e := &events[i]
		if inWindow(e, act, from.Unix(), to.Unix()) {
			lat = append(lat, min(max(e.LatencyUS, 0), math.MaxUint32))
		}
	}
	slices.Sort(lat)
	return lat
}

// exactQuantile is the ceil(q*n)-th smallest value, the rank both stores
// estimate.
func exactQuantile(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[max(int(math.Ceil(q*float64(len(sorted)))), 1)-1]
}

func handModules(events []lottery.Event, act int64, from, to time.Time) []ModuleOutcomes {
	groups := map[[2]string]map[string]int64{}
	for i := range events {
		e := &events[i]
		if !inWindow(e, act, from.Unix(), to.Unix()) {
			continue
		}
		name, version := SplitModule(e.Module)
		g := groups[[2]string{name, version}]
		if g == nil {
			g = map[string]int64{}
			groups[[2]string{name, version}] = g
		}
		g[string(e.Outcome)]++
	}
	return finishModules(groups)
}

// boundedWindows returns valid windows for the bounded queries over
// base..base+span: whole, sub-second bounds, single seconds, and windows
// past the data.
func boundedWindows(r *rand.Rand, span time.Duration) [][2]time.Time {
	w := [][2]time.Time{
		{base, base.Add(span)},
		{base.Add(-time.Hour), base.Add(span + time.Hour)},
		{base.Add(span), base.Add(span + time.Minute)},
		{base.Add(time.Second), base.Add(2 * time.Second)},
		{base.Add(1500 * time.Millisecond), base.Add(span - 300*time.Millisecond)},
	}
	for range 12 {
		a, b := time.Duration(r.Int64N(int64(span))), time.Duration(r.Int64N(int64(span)))
		if a > b {
			a, b = b, a
		}
		b += 2 * time.Second
		if r.IntN(2) == 0 {
			a, b = a.Truncate(time.Second), b.Truncate(time.Second)
		}
		w = append(w, [2]time.Time{base.Add(a), base.Add(b)})
	}
	return w
}

// checkQueries runs every bounded query on q and compares it with a hand
// count of events. mid maps an exact latency to the store's estimate.
func checkQueries(t *testing.T, q Querier, events []lottery.Event, act int64, from, to time.Time, mid func(int64) int64) {
	t.Helper()
	ctx := context.Background()
	awards, err := q.Awards(ctx, act, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if want := handAwards(events, act, from, to); !reflect.DeepEqual(awards, want) {
		t.Fatalf("Awards(%d, %v, %v)\n got %+v\nwant %+v", act, from, to, awards, want)
	}
	for _, step := range []time.Duration{time.Second, 7 * time.Second, time.Minute} {
		if (window{lo: from.Unix(), hi: to.Unix()}).points(int64(step/time.Second)) > MaxPoints {
			continue
		}
		pts, err := q.Timeline(ctx, act, from, to, step)
		if err != nil {
			t.Fatal(err)
		}
		if want := handTimeline(events, act, from, to, step); !reflect.DeepEqual(pts, want) {
			t.Fatalf("Timeline(%d, %v, %v, %v) differs from the hand count", act, from, to, step)
		}
	}
	lat, err := q.Latency(ctx, act, from, to)
	if err != nil {
		t.Fatal(err)
	}
	sorted := handLatencies(events, act, from, to)
	want := Latency{ActivityID: act, From: from, To: to, Count: int64(len(sorted))}
	if len(sorted) > 0 {
		want.P50US = mid(exactQuantile(sorted, 0.50))
		want.P90US = mid(exactQuantile(sorted, 0.90))
		want.P99US = mid(exactQuantile(sorted, 0.99))
	}
	if lat != want {
		t.Fatalf("Latency(%d, %v, %v)\n got %+v\nwant %+v", act, from, to, lat, want)
	}
	mods, err := q.Modules(ctx, act, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if want := handModules(events, act, from, to); !reflect.DeepEqual(mods, want) {
		t.Fatalf("Modules(%d, %v, %v)\n got %+v\nwant %+v", act, from, to, mods, want)
	}
}

// embeddedMid is the embedded store's estimate of an exact latency.
func embeddedMid(v int64) int64 { return latMid(int(latBucket(v))) }

// clickhouseMid is the ClickHouse store's estimate of an exact latency.
func clickhouseMid(v int64) int64 { return latencyMid(latencyLow(uint32(v))) }

func TestEmbeddedQueriesMatchHandCount(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	const span = 10 * time.Minute
	events := drawEvents(r, 8000, span)
	dir := t.TempDir()
	e, err := OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	insertInBatches(t, e, r, events)
	check := func(e *Embedded) {
		t.Helper()
		for _, w := range boundedWindows(r, span)[:12] {
			for act := int64(1); act <= 4; act++ {
				checkQueries(t, e, events, act, w[0], w[1], embeddedMid)
			}
		}
	}
	check(e)
	// The module columns survive the log and a snapshot.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if e, err = OpenEmbedded(dir); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	check(e)
}

// TestQueryValidation checks that both stores refuse the same bad
// parameters with lottery.ErrInvalid.
func TestQueryValidation(t *testing.T) {
	e, _ := OpenEmbedded("")
	defer e.Close()
	stores := []Querier{e}
	if c := openTestClickHouse(t); c != nil {
		stores = append(stores, c)
	}
	for _, tc := range []struct {
		name     string
		act      int64
		from, to time.Time
		step     time.Duration
	}{
		{"zero activity", 0, base, base.Add(time.Hour), time.Minute},
		{"negative activity", -1, base, base.Add(time.Hour), time.Minute},
		{"no from", 1, time.Time{}, base, time.Minute},
		{"no to", 1, base, time.Time{}, time.Minute},
		{"inverted", 1, base.Add(time.Hour), base, time.Minute},
		{"empty", 1, base, base, time.Minute},
		{"empty to the second", 1, base.Add(100 * time.Millisecond), base.Add(900 * time.Millisecond), time.Minute},
		{"too long", 1, base, base.Add(MaxWindow + time.Second), time.Hour},
		{"before 1970", 1, time.Unix(-10, 0), base, time.Hour},
		{"after 2106", 1, base, time.Unix(maxUnix+1, 0), time.Hour},
	} {
		for _, q := range stores {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				_, err1 := q.Awards(ctx, tc.act, tc.from, tc.to)
				_, err2 := q.Timeline(ctx, tc.act, tc.from, tc.to, tc.step)
				_, err3 := q.Latency(ctx, tc.act, tc.from, tc.to)
				_, err4 := q.Modules(ctx, tc.act, tc.from, tc.to)
				for i, err := range []error{err1, err2, err3, err4} {
					if !errors.Is(err, lottery.ErrInvalid) {
						t.Fatalf("%T query %d: err = %v, want ErrInvalid", q, i, err)
					}
				}
			})
		}
	}
	for _, tc := range []struct {
		name string
		to   time.Time
		step time.Duration
	}{
		{"zero step", base.Add(time.Hour), 0},
		{"sub-second step", base.Add(time.Hour), 1500 * time.Millisecond},
		{"negative step", base.Add(time.Hour), -time.Second},
		{"too many points", base.Add(MaxPoints*time.Second + time.Second), time.Second},
		{"not whole minutes", base.Add(time.Hour), 90 * time.Second},
		{"fine step, long window", base.Add(MaxFineWindow + time.Hour), 59 * time.Second},
	} {
		for _, q := range stores {
			t.Run(tc.name, func(t *testing.T) {
				if _, err := q.Timeline(context.Background(), 1, base, tc.to, tc.step); !errors.Is(err, lottery.ErrInvalid) {
					t.Fatalf("%T: err = %v, want ErrInvalid", q, err)
				}
			})
		}
	}
	// The bounds themselves are accepted: MaxWindow, MaxPoints.
	for _, q := range stores {
		if pts, err := q.Timeline(context.Background(), 1, base, base.Add(MaxPoints*time.Second), time.Second); err != nil || len(pts) != MaxPoints {
			t.Fatalf("%T: Timeline at MaxPoints: %d points, err %v", q, len(pts), err)
		}
		if _, err := q.Latency(context.Background(), 1, base, base.Add(MaxWindow)); err != nil {
			t.Fatalf("%T: Latency over MaxWindow: %v", q, err)
		}
	}
}

// TestTimelineSteps checks that steps align to the epoch, not to from,
// and that the cut first and last steps have the right rates.
func TestTimelineSteps(t *testing.T) {
	w := window{act: 1, lo: 1, hi: 20001}
	if n := w.points(2); n != 10001 {
		t.Fatalf("points of [1, 20001) in steps of 2 = %d, want 10001 (steps from 0)", n)
	}
	if _, err := checkStep(w, 2*time.Second); !errors.Is(err, lottery.ErrInvalid) {
		t.Fatalf("checkStep over 10001 aligned steps = %v", err)
	}
	w = window{act: 1, lo: 90, hi: 250}
	pts := w.timeline(60)
	pts[0].Draws, pts[1].Draws, pts[2].Draws = 30, 60, 10
	finishTimeline(w, 60, pts)
	want := []TimelinePoint{
		{At: time.Unix(60, 0).UTC(), Draws: 30, DrawsPerSecond: 1},  // [90, 120)
		{At: time.Unix(120, 0).UTC(), Draws: 60, DrawsPerSecond: 1}, // [120, 180)
		{At: time.Unix(180, 0).UTC(), Draws: 10, DrawsPerSecond: 10.0 / 60},
		{At: time.Unix(240, 0).UTC(), DrawsPerSecond: 0}, // [240, 250)
	}
	if !reflect.DeepEqual(pts, want) {
		t.Fatalf("timeline\n got %+v\nwant %+v", pts, want)
	}
}

func TestCompareRates(t *testing.T) {
	counts := []AwardCount{{"b", 30}, {"a", 10}, {"unconfigured", 1}}
	rates := map[string]float64{"a": 0.1, "b": 0.2, "never": 0.05}
	got := CompareRates(counts, 100, rates)
	observed, rate := 0.3, 0.2 // at run time: 0.3 - 0.2 is not 0.1 in float64
	want := []AwardRate{
		{AwardID: "a", Count: 10, Rate: 0.1, Expected: 10, Observed: 0.1, Deviation: 0},
		{AwardID: "b", Count: 30, Rate: 0.2, Expected: 20, Observed: 0.3, Deviation: observed - rate},
		{AwardID: "never", Count: 0, Rate: 0.05, Expected: 5, Observed: 0, Deviation: -0.05},
		{AwardID: "unconfigured", Count: 1, Rate: 0, Expected: 0, Observed: 0.01, Deviation: 0.01},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("CompareRates\n got %+v\nwant %+v", got, want)
	}
	for _, a := range CompareRates(counts, 0, rates) {
		if a.Observed != 0 || a.Expected != 0 || math.IsNaN(a.Deviation) {
			t.Fatalf("with no draws: %+v", a)
		}
	}
}

func TestRatesOf(t *testing.T) {
	s := &lottery.Strategy{Mode: lottery.ModeSingle, Details: []lottery.StrategyDetail{
		{Award: lottery.Award{ID: "a"}, Rate: 100_000}, {Award: lottery.Award{ID: "b"}, Rate: 300_000},
	}}
	if got := RatesOf(s); got["a"] != 0.1 || got["b"] != 0.3 {
		t.Fatalf("single-item rates = %v", got)
	}
	s.Mode = lottery.ModeTotal
	if got := RatesOf(s); got["a"] != 0.25 || got["b"] != 0.75 {
		t.Fatalf("total rates = %v", got)
	}
}

func TestSplitModule(t *testing.T) {
	for _, tc := range []struct{ in, name, version string }{
		{lottery.NativeModule, "native/alias", "v1"},
		{"promo@3f9a1c2e", "promo", "3f9a1c2e"},
		{"a@b@c", "a@b", "c"},
		{"draw-v1.2", "draw", "v1.2"},
		{"draw-vx", "draw-vx", ""},
		{"draw-v", "draw-v", ""},
		{"-v1", "-v1", ""},
		{"plain", "plain", ""},
		{"", "", ""},
	} {
		if name, version := SplitModule(tc.in); name != tc.name || version != tc.version {
			t.Errorf("SplitModule(%q) = %q, %q; want %q, %q", tc.in, name, version, tc.name, tc.version)
		}
	}
}

func TestModuleKeyRoundTrip(t *testing.T) {
	for _, tc := range [][3]string{{"", "", ""}, {"a\x00b", "v\x01", "win"}, {strings.Repeat("n", 300), "v", "lose"}} {
		name, version, outcome, ok := parseModuleKey(moduleKey(tc[0], tc[1], tc[2]))
		if !ok || name != tc[0] || version != tc[1] || outcome != tc[2] {
			t.Fatalf("round trip of %q = %q %q %q %v", tc, name, version, outcome, ok)
		}
	}
	if _, _, _, ok := parseModuleKey("\x05ab"); ok {
		t.Fatal("a truncated key parsed")
	}
}

func TestEmbeddedCapsModules(t *testing.T) {
	e, _ := OpenEmbedded("")
	defer e.Close()
	var events []lottery.Event
	for i := range MaxGroups + 10 {
		events = append(events, lottery.Event{At: base, ActivityID: 1, Outcome: lottery.OutcomeLose, Module: "m@" + string(rune(0x4e00+i))})
	}
	if err := e.Insert(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	mods, err := e.Modules(context.Background(), 1, base, base.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var total, other int64
	for _, m := range mods {
		total += m.Draws
		if m.Name == OtherName {
			other = m.Outcomes["lose"]
		}
	}
	if len(mods) > MaxGroups || total != int64(len(events)) || other != 11 {
		t.Fatalf("%d modules, %d draws, %d under %q; want at most %d modules, every draw, 11 folded", len(mods), total, other, OtherName, MaxGroups)
	}
}

func TestLatencyLow(t *testing.T) {
	prev := uint32(0)
	for _, v := range []uint32{0, 1, 2, 63, 64, 65, 66, 127, 128, 131, 132, 1000, 1 << 20, 1<<31 + 12345, math.MaxUint32} {
		lo := latencyLow(v)
		if lo > v || lo < prev {
			t.Fatalf("latencyLow(%d) = %d", v, lo)
		}
		prev = lo
		if mid := latencyMid(lo); math.Abs(float64(mid)-float64(v)) > float64(v)/64 {
			t.Fatalf("latencyMid(latencyLow(%d)) = %d, more than 1/64 off", v, mid)
		}
		if v < 64 && latencyMid(lo) != int64(v) {
			t.Fatalf("latency %d us not exact", v)
		}
	}
}

// TestWindowPlan checks that the ClickHouse tiers tile a window exactly,
// with rows aligned to their tier and, for a timeline, never straddling a
// step.
func TestWindowPlan(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	for range 2000 {
		lo := r.Int64N(10 * 24 * hour)
		w := window{act: 1, lo: lo, hi: lo + 1 + r.Int64N([]int64{100, 2 * hour, 3 * 24 * hour}[r.IntN(3)])}
		var step int64
		switch r.IntN(4) {
		case 1:
			step = 1 + r.Int64N(59)
		case 2:
			step = minute * (1 + r.Int64N(200))
		case 3:
			step = hour * (1 + r.Int64N(30))
		}
		for _, tiers := range [][]tier{countTiers, latencyTiers} {
			at := w.lo
			for _, p := range w.plan(tiers, step) {
				if p.from != at || p.from >= p.to || p.from%p.tier.width != 0 || p.to%p.tier.width != 0 && p.to != w.hi {
					t.Fatalf("window %+v step %d: part %+v after %d", w, step, p, at)
				}
				if step > 0 && step%p.tier.width != 0 {
					t.Fatalf("window %+v step %d: part %+v straddles steps", w, step, p)
				}
				if p.tier.width > 1 && p.to%p.tier.width != 0 {
					t.Fatalf("window %+v: coarse part %+v ends inside a row", w, p)
				}
				at = p.to
			}
			if at != w.hi {
				t.Fatalf("window %+v step %d: plan ends at %d", w, step, at)
			}
		}
	}
	// A month-long window in hours reads hours, and a few minutes and
	// seconds at its ragged edges.
	w := window{act: 1, lo: 10*hour + 61, hi: 30*24*hour + 30}
	var got []string
	for _, p := range w.plan(countTiers, 0) {
		got = append(got, p.tier.col)
	}
	if want := []string{"at", "at_minute", "at_hour", "at"}; !slices.Equal(got, want) {
		t.Fatalf("plan of a ragged month = %v, want %v", got, want)
	}
}
