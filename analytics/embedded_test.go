package analytics

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
)

var (
	base     = time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	outcomes = []lottery.Outcome{lottery.OutcomeWin, lottery.OutcomeLose, lottery.OutcomeSoldOut, lottery.OutcomeLimitReached, lottery.OutcomeNotActive, lottery.OutcomeError}
	awards   = []string{"a1", "a2", "a3", "coupon-10", "phone"}
)

// randomEvents returns n events of activities 1..3 spread over span from
// base, at sub-second times, with random outcomes, awards and latencies.
func randomEvents(r *rand.Rand, n int, span time.Duration) []lottery.Event {
	events := make([]lottery.Event, n)
	for i := range events {
		e := lottery.Event{
			At:         base.Add(time.Duration(r.Int64N(int64(span)))),
			ActivityID: 1 + r.Int64N(3),
			UserID:     "u",
			Outcome:    outcomes[r.IntN(len(outcomes))],
			LatencyUS:  int64(r.ExpFloat64() * 800),
			Seed:       uint64(i),
		}
		if r.IntN(50) == 0 {
			e.LatencyUS = r.Int64N(3_000_000)
		}
		// The draw process sets the award of a won order; an error after
		// the order keeps it: only wins count.
		if e.Outcome == lottery.OutcomeWin || e.Outcome == lottery.OutcomeError && r.IntN(2) == 0 {
			e.AwardID = awards[r.IntN(len(awards))]
		}
		events[i] = e
	}
	return events
}

// handSummary counts by hand what Summary must answer.
func handSummary(events []lottery.Event, act int64, from, to time.Time) Summary {
	want := Summary{ActivityID: act, Outcomes: map[string]int64{}, Awards: map[string]int64{}, From: from, To: to}
	var lat []int64
	for _, e := range events {
		if e.ActivityID != act || !from.IsZero() && e.At.Unix() < from.Unix() || !to.IsZero() && e.At.Unix() >= to.Unix() {
			continue
		}
		want.Draws++
		want.Outcomes[string(e.Outcome)]++
		if e.Outcome == lottery.OutcomeWin {
			want.Wins++
			want.Awards[e.AwardID]++
		}
		lat = append(lat, e.LatencyUS)
	}
	want.WinRate = winRate(want.Wins, want.Draws)
	slices.Sort(lat)
	want.LatencyP50US = exactBucketQuantile(lat, 0.50)
	want.LatencyP99US = exactBucketQuantile(lat, 0.99)
	return want
}

// exactBucketQuantile is the histogram's answer computed from the sorted
// values: the midpoint of the bucket of the ceil(q*n)-th smallest value.
func exactBucketQuantile(sorted []int64, q float64) int64 {
	return embeddedMid(exactQuantile(sorted, q))
}

func insertInBatches(t testing.TB, s Store, r *rand.Rand, events []lottery.Event) {
	t.Helper()
	for len(events) > 0 {
		n := min(1+r.IntN(700), len(events))
		if err := s.Insert(context.Background(), events[:n]); err != nil {
			t.Fatal(err)
		}
		events = events[n:]
	}
}

func checkSummary(t *testing.T, q Querier, act int64, from, to time.Time, events []lottery.Event) {
	t.Helper()
	got, err := q.Summary(context.Background(), act, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if want := handSummary(events, act, from, to); !reflect.DeepEqual(got, want) {
		t.Fatalf("Summary(%d, %v, %v)\n got %+v\nwant %+v", act, from, to, got, want)
	}
}

// windows returns query windows over base..base+span: unbounded, empty,
// inverted, whole-second and sub-second bounds.
func windows(r *rand.Rand, span time.Duration) [][2]time.Time {
	w := [][2]time.Time{
		{},
		{base, time.Time{}},
		{time.Time{}, base.Add(span / 2)},
		{base.Add(span), base},
		{base.Add(-time.Hour), base},
		{base.Add(span + time.Second), time.Time{}},
	}
	for range 20 {
		a, b := time.Duration(r.Int64N(int64(span))), time.Duration(r.Int64N(int64(span)))
		if a > b {
			a, b = b, a
		}
		if r.IntN(2) == 0 {
			a, b = a.Truncate(time.Second), b.Truncate(time.Second)
		}
		w = append(w, [2]time.Time{base.Add(a), base.Add(b)})
	}
	return w
}

func TestEmbeddedSummaryMatchesHandCount(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const span = 10 * time.Minute
	events := randomEvents(r, 20000, span)
	e, err := OpenEmbedded("")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	insertInBatches(t, e, r, events)
	for _, w := range windows(r, span) {
		for act := int64(0); act <= 3; act++ {
			checkSummary(t, e, act, w[0], w[1], events)
		}
	}
}

func TestEmbeddedOutOfOrderAndPreEpoch(t *testing.T) {
	e, _ := OpenEmbedded("")
	defer e.Close()
	var events []lottery.Event
	for _, at := range []time.Time{base.Add(5 * time.Second), base, base.Add(3 * time.Second), time.Unix(-10, 500), {}, base.Add(3 * time.Second)} {
		events = append(events, lottery.Event{At: at, ActivityID: 7, Outcome: lottery.OutcomeLose})
	}
	for i := range events { // one event per Insert: every row arrives out of order
		if err := e.Insert(context.Background(), events[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range [][2]time.Time{{}, {time.Unix(-10, 0), time.Unix(0, 0)}, {base, base.Add(4 * time.Second)}, {base.Add(time.Second), time.Time{}}} {
		checkSummary(t, e, 7, w[0], w[1], events)
	}
}

func TestEmbeddedWidensPastMaxRows(t *testing.T) {
	const n = maxRows + 1000 // one event per second: more seconds than rows
	events := make([]lottery.Event, n)
	for i := range events {
		events[i] = lottery.Event{At: base.Add(time.Duration(i) * time.Second), ActivityID: 1, Outcome: lottery.OutcomeWin, AwardID: "a1", LatencyUS: 100}
	}
	dir := t.TempDir()
	e, err := OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Insert(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	check := func(e *Embedded) {
		t.Helper()
		s := e.acts[1]
		if s.width != 2 || len(s.secs) > maxRows {
			t.Fatalf("width %d with %d rows, want width 2 and at most %d rows", s.width, len(s.secs), maxRows)
		}
		checkSummary(t, e, 1, time.Time{}, time.Time{}, events)
		// Windows aligned to the bucket width stay exact.
		checkSummary(t, e, 1, base.Add(1000*time.Second), base.Add(3000*time.Second), events)
	}
	check(e)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e, err = OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	check(e)
}

func TestEmbeddedCapsNames(t *testing.T) {
	e, _ := OpenEmbedded("")
	defer e.Close()
	var events []lottery.Event
	for i := range maxNamed + 10 {
		events = append(events, lottery.Event{At: base, ActivityID: 1, Outcome: lottery.OutcomeWin, AwardID: "award-" + string(rune('A'+i%26)) + string(rune('a'+i/26%26)) + string(rune('0'+i/676))})
	}
	if err := e.Insert(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	got, _ := e.Summary(context.Background(), 1, time.Time{}, time.Time{})
	var total int64
	for _, n := range got.Awards {
		total += n
	}
	if len(got.Awards) > maxNamed || got.Awards[otherName] == 0 || total != int64(len(events)) || got.Wins != int64(len(events)) {
		t.Fatalf("%d award names, %d under %q, %d in total; want at most %d names and every win counted",
			len(got.Awards), got.Awards[otherName], otherName, total, maxNamed)
	}
}

func TestEmbeddedPersistence(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const span = 3 * time.Minute
	dir := t.TempDir()
	e, err := OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	events := randomEvents(r, 5000, span)
	insertInBatches(t, e, r, events)
	before, _ := e.Summary(context.Background(), 2, time.Time{}, time.Time{})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	e, err = OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	if e.TornBytes() != 0 {
		t.Fatalf("TornBytes after a clean close = %d", e.TornBytes())
	}
	after, _ := e.Summary(context.Background(), 2, time.Time{}, time.Time{})
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("summary changed across a restart\nbefore %+v\n after %+v", before, after)
	}
	more := randomEvents(r, 5000, span)
	insertInBatches(t, e, r, more)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	e, err = OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	all := append(events, more...)
	for _, w := range windows(r, span) {
		for act := int64(1); act <= 3; act++ {
			checkSummary(t, e, act, w[0], w[1], all)
		}
	}
}

func TestEmbeddedDamagedTail(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	first, last := randomEvents(r, 2000, time.Minute), randomEvents(r, 100, time.Minute)
	cases := []struct {
		name   string
		damage func(t *testing.T, path string, lastRecord int64)
		lost   bool // the last record is gone
	}{
		{"truncated last record", func(t *testing.T, path string, lastRecord int64) {
			st, _ := os.Stat(path)
			if err := os.Truncate(path, st.Size()-3); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"truncated record header", func(t *testing.T, path string, lastRecord int64) {
			if err := os.Truncate(path, lastRecord+5); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"corrupt last record", func(t *testing.T, path string, lastRecord int64) {
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			defer f.Close()
			st, _ := f.Stat()
			b := []byte{0}
			f.ReadAt(b, st.Size()-2)
			b[0] ^= 0xff
			if _, err := f.WriteAt(b, st.Size()-2); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"garbage appended", func(t *testing.T, path string, lastRecord int64) {
			f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			defer f.Close()
			f.Write([]byte{0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 1, 2, 3})
		}, false},
		{"huge length", func(t *testing.T, path string, lastRecord int64) {
			f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			defer f.Close()
			f.Write([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, logName)
			e, err := OpenEmbedded(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Insert(context.Background(), first); err != nil {
				t.Fatal(err)
			}
			st, _ := os.Stat(path)
			lastRecord := st.Size()
			if err := e.Insert(context.Background(), last); err != nil {
				t.Fatal(err)
			}
			e.Close()
			tc.damage(t, path, lastRecord)

			e, err = OpenEmbedded(dir)
			if err != nil {
				t.Fatalf("a damaged tail must not be fatal: %v", err)
			}
			if e.TornBytes() == 0 {
				t.Fatal("TornBytes = 0 for a damaged tail")
			}
			want := append(slices.Clone(first), last...)
			if tc.lost {
				want = first
			}
			checkSummary(t, e, 1, time.Time{}, time.Time{}, want)
			// The store goes on: new batches land and survive another restart.
			if err := e.Insert(context.Background(), last); err != nil {
				t.Fatal(err)
			}
			want = append(slices.Clone(want), last...)
			e.Close()
			e, err = OpenEmbedded(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if e.TornBytes() != 0 {
				t.Fatalf("TornBytes after a clean restart = %d", e.TornBytes())
			}
			checkSummary(t, e, 3, time.Time{}, time.Time{}, want)
		})
	}
}

func TestEmbeddedLogHeader(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		ok            bool
	}{
		{"empty", "", true},
		{"torn magic", logMagic[:3], true},
		{"magic only", logMagic, true},
		{"foreign file", "hello, world", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, logName), []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			e, err := OpenEmbedded(dir)
			if (err == nil) != tc.ok {
				t.Fatalf("OpenEmbedded error = %v, want ok %v", err, tc.ok)
			}
			if err == nil {
				e.Close()
			}
		})
	}
}

func TestEmbeddedCompactsWhileRunning(t *testing.T) {
	dir := t.TempDir()
	e, err := OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.log.compactAt = 4 << 10
	batch := []lottery.Event{{At: base, ActivityID: 1, Outcome: lottery.OutcomeLose, LatencyUS: 10}}
	start := e.log.size
	if err := e.Insert(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	record := e.log.size - start
	for range 999 {
		if err := e.Insert(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(filepath.Join(dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	if uncompacted := start + 1000*record; st.Size() >= uncompacted || e.log.compactAt != compactMin {
		t.Fatalf("log is %d bytes after 1000 batches (%d uncompacted), want it compacted", st.Size(), uncompacted)
	}
	e.Close()
	e, err = OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := e.Summary(context.Background(), 1, time.Time{}, time.Time{}); got.Draws != 1000 {
		t.Fatalf("draws after compaction and restart = %d, want 1000", got.Draws)
	}
}

func TestEmbeddedClosed(t *testing.T) {
	e, _ := OpenEmbedded(t.TempDir())
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if err := e.Insert(context.Background(), []lottery.Event{ev(0)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Insert after Close = %v, want ErrClosed", err)
	}
	if _, err := e.Summary(context.Background(), 1, time.Time{}, time.Time{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Summary after Close = %v, want ErrClosed", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e, _ = OpenEmbedded("")
	defer e.Close()
	if err := e.Insert(ctx, []lottery.Event{ev(0)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Insert with a cancelled context = %v", err)
	}
}

func TestLatencyBuckets(t *testing.T) {
	prev := uint8(0)
	for _, v := range []int64{-5, 0, 1, 2, 3, 4, 5, 7, 8, 9, 100, 999, 1000, 1 << 20, 1<<40 + 12345, math.MaxInt64} {
		b := latBucket(v)
		if b < prev || int(b) >= latBuckets {
			t.Fatalf("latBucket(%d) = %d: not monotonic or out of range", v, b)
		}
		prev = b
		if v < 0 {
			continue
		}
		if mid := latMid(int(b)); math.Abs(float64(mid-v)) > 0.125*float64(v) {
			t.Fatalf("latMid(latBucket(%d)) = %d, more than 12.5%% off", v, mid)
		}
	}
}

// TestSinkIntoEmbedded runs the default wiring: a Sink feeding the embedded
// store, stopped by its context.
func TestSinkIntoEmbedded(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	events := randomEvents(r, 10000, time.Minute)
	e, _ := OpenEmbedded(t.TempDir())
	defer e.Close()
	s := NewSink(e, SinkConfig{BatchSize: 512, FlushEvery: time.Millisecond})
	stop := runSink(t, s)
	for _, ev := range events {
		s.Record(ev)
	}
	stop()
	if st := s.Stats(); st.Flushed != uint64(len(events)) {
		t.Fatalf("stats = %+v", st)
	}
	checkSummary(t, e, 2, time.Time{}, time.Time{}, events)
}

// FuzzReplay feeds arbitrary bytes to replay: it must never panic, must
// account for every byte, and what it builds must survive a snapshot and
// replay of that snapshot unchanged.
func FuzzReplay(f *testing.F) {
	r := rand.New(rand.NewPCG(9, 10))
	seed := []byte(logMagic)
	seed = appendRecord(seed, encodeCells(nil, aggregate(randomEvents(r, 50, 3*time.Second))))
	seed = appendRecord(seed, []byte{recWidth, 2, 4})
	f.Add(seed)
	f.Add(seed[:len(seed)-2])
	f.Add([]byte(logMagic[:4]))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, _ := OpenEmbedded("")
		valid, torn, err := replay(bytes.NewReader(data), e)
		if err != nil {
			return
		}
		if valid+torn != int64(len(data)) {
			t.Fatalf("valid %d + torn %d != %d bytes", valid, torn, len(data))
		}
		snap := []byte(logMagic)
		if err := e.snapshot(func(p []byte) error { snap = appendRecord(snap, p); return nil }); err != nil {
			t.Fatal(err)
		}
		again, _ := OpenEmbedded("")
		if _, torn, err := replay(bytes.NewReader(snap), again); err != nil || torn != 0 {
			t.Fatalf("replaying a snapshot: torn %d, err %v", torn, err)
		}
		for id, s := range e.acts {
			s2 := again.acts[id]
			if s2 == nil || s.width != s2.width || !slices.Equal(s.secs, s2.secs) {
				t.Fatalf("activity %d: buckets differ after a snapshot round trip", id)
			}
			want, _ := e.Summary(context.Background(), id, time.Time{}, time.Time{})
			got, _ := again.Summary(context.Background(), id, time.Time{}, time.Time{})
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("activity %d: summary differs after a snapshot round trip\n got %+v\nwant %+v", id, got, want)
			}
		}
	})
}

// BenchmarkEmbeddedSummary answers a summary over 1,000,000 events spread
// over an hour (3600 one-second buckets per activity).
func BenchmarkEmbeddedSummary(b *testing.B) {
	r := rand.New(rand.NewPCG(11, 12))
	e, _ := OpenEmbedded("")
	defer e.Close()
	for range 1_000_000 / 100_000 {
		insertInBatches(b, e, r, randomEvents(r, 100_000, time.Hour))
	}
	for _, bc := range []struct {
		name     string
		from, to time.Time
	}{
		{"all", time.Time{}, time.Time{}},
		{"10min", base.Add(20 * time.Minute), base.Add(30 * time.Minute)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Summary(context.Background(), 1, bc.from, bc.to); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEmbeddedInsert inserts sink-sized batches of 4096 events.
func BenchmarkEmbeddedInsert(b *testing.B) {
	r := rand.New(rand.NewPCG(13, 14))
	events := randomEvents(r, 4096, 2*time.Second)
	for _, dir := range []string{"", b.TempDir()} {
		name := "memory"
		if dir != "" {
			name = "log"
		}
		b.Run(name, func(b *testing.B) {
			e, err := OpenEmbedded(dir)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			b.ReportAllocs()
			for b.Loop() {
				if err := e.Insert(context.Background(), events); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
		})
	}
}
