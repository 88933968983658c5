package analytics

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/flashlottery/lottery/lottery"
)

var (
	_ Store   = (*Embedded)(nil)
	_ Querier = (*Embedded)(nil)
)

// ErrClosed is returned by a store used after Close.
var ErrClosed = errors.New("analytics: store closed")

// Memory bounds of the embedded store.
const (
	// maxRows is the most time buckets one activity keeps. Past it the
	// activity's bucket width doubles (adjacent buckets merge), so memory
	// per activity stays bounded whatever the activity's duration, and
	// totals stay exact; only from/to lose resolution.
	maxRows = 1 << 16
	// maxNamed is the most distinct names of one kind (outcomes, awards,
	// module version and outcome pairs) one activity keeps, otherName
	// included: past maxNamed-1 names, further ones are counted under
	// otherName (see otherKey).
	maxNamed = 1024
	// otherName collects names beyond maxNamed.
	otherName = "_other"
)

// Embedded is the in-process Store and Querier: the default analytics
// backend, and a product in its own right. It keeps aggregates, not events:
// per activity, one row per second that saw events (the row's bucket), and
// one column of counts per outcome, per won award, per latency histogram
// bucket and per (module version, outcome). A query adds up a column range,
// so it costs O(buckets in the window x columns) whatever the number of
// events. With a directory it appends every inserted batch's aggregate to a
// log and replays it on open.
//
// Latency percentiles are estimated from the histogram: the midpoint of the
// bucket holding the exact percentile, so within 12.5% of it (exact below
// 4 us). Windows are exact to the second while an activity has at most
// 65536 distinct seconds with events; past that its buckets widen (see
// maxRows) and a bucket counts in the window, or in a timeline step, by the
// second it starts at.
type Embedded struct {
	wmu sync.Mutex // serialises writers: Insert, compaction, Close
	log *eventLog  // nil for memory only; guarded by wmu

	mu     sync.RWMutex
	acts   map[int64]*series
	closed bool
	torn   int64 // bytes discarded from the log's tail on open
}

// kind is what a column counts.
type kind uint8

const (
	kindOutcome kind = 1 // events with outcome name
	kindAward   kind = 2 // won events with award id name
	kindLatency kind = 3 // events whose latency falls in histogram bucket lat
	kindModule  kind = 4 // events with the (module name, version, outcome) packed in name by moduleKey
	kinds            = 5 // one past the last kind
)

// colKey names a column.
type colKey struct {
	kind kind
	lat  uint8
	name string
}

// series is one activity's counts: rows are time buckets of width seconds
// starting at secs[r] (ascending, multiples of width); cols[c][r] counts
// events of column keys[c] in bucket r.
type series struct {
	width int64
	secs  []int64
	index map[colKey]int
	keys  []colKey
	cols  [][]uint64
	named [kinds]int // named columns per kind, for maxNamed
}

// cell is an aggregated count: n events of activity act in second sec for
// column key. A batch is turned into cells before it is logged and applied.
type cell struct {
	act, sec int64
	key      colKey
	n        uint64
}

// OpenEmbedded returns an embedded store. With dir "" it keeps everything in
// memory. Otherwise it creates dir if needed, replays dir/analytics.log
// (ignoring a torn last record left by a crash), rewrites the log compacted,
// and appends every later batch to it.
func OpenEmbedded(dir string) (*Embedded, error) {
	e := &Embedded{acts: make(map[int64]*series)}
	if dir == "" {
		return e, nil
	}
	l, torn, err := openLog(dir, e)
	if err != nil {
		return nil, err
	}
	e.log, e.torn = l, torn
	if err := e.compactLocked(); err != nil {
		_ = l.close()
		return nil, err
	}
	return e, nil
}

// TornBytes returns how many bytes of an incomplete or corrupt log tail were
// discarded when the store was opened (0 after a clean shutdown).
func (e *Embedded) TornBytes() int64 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.torn
}

// Insert adds a batch of events. With a log, the batch's aggregate is
// written and synced before it is counted, so an acknowledged batch survives
// a crash; a failed write leaves neither the log nor the counts changed.
func (e *Embedded) Insert(ctx context.Context, events []lottery.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	cells := aggregate(events)
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.RLock()
	closed := e.closed
	e.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if e.log != nil {
		if err := e.log.append(encodeCells(nil, cells)); err != nil {
			return fmt.Errorf("analytics: embedded log: %w", err)
		}
	}
	e.mu.Lock()
	for _, c := range cells {
		e.apply(c)
	}
	e.mu.Unlock()
	if e.log != nil && e.log.size >= e.log.compactAt {
		// The batch is stored: a failed compaction must not fail Insert
		// (the sink would insert the batch again). The log stays valid and
		// compaction is retried once it has grown further.
		if err := e.compactLocked(); err != nil {
			e.log.compactAt = 2 * e.log.size
		}
	}
	return nil
}

// Summary counts an activity's events in [from, to) (see Querier). Windows
// are exact to the second while the activity has at most 65536 distinct
// seconds with events, and to the coarser bucket width after that.
func (e *Embedded) Summary(ctx context.Context, activityID int64, from, to time.Time) (Summary, error) {
	sum := Summary{ActivityID: activityID, Outcomes: map[string]int64{}, Awards: map[string]int64{}, From: from, To: to}
	lo, hi := summaryBounds(from, to)
	var hist [latBuckets]uint64
	err := e.scan(ctx, activityID, lo, hi, func(k colKey, n uint64) {
		switch k.kind {
		case kindOutcome:
			sum.Outcomes[k.name] += int64(n)
			sum.Draws += int64(n)
			if k.name == string(lottery.OutcomeWin) {
				sum.Wins += int64(n)
			}
		case kindAward:
			sum.Awards[k.name] += int64(n)
		case kindLatency:
			hist[k.lat] += n
		}
	})
	if err != nil {
		return sum, err
	}
	sum.WinRate = winRate(sum.Wins, sum.Draws)
	sum.LatencyP50US = quantile(&hist, 0.50)
	sum.LatencyP99US = quantile(&hist, 0.99)
	return sum, nil
}

// Close stops the store: it closes the log; later calls fail with ErrClosed.
// Close is idempotent.
func (e *Embedded) Close() error {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	if e.log == nil {
		return nil
	}
	return e.log.close()
}

// aggregate turns a batch into cells: per activity and second, one count per
// outcome, won award, latency bucket and (module version, outcome). Cells
// come out ordered by activity and second so that the log groups them.
func aggregate(events []lottery.Event) []cell {
	type at struct {
		act, sec int64
		key      colKey
	}
	idx := make(map[at]int, 8)
	cells := make([]cell, 0, 8)
	// The packed module key is built once per (module, outcome), not per event.
	modKeys := make(map[[2]string]string, 4)
	add := func(k at) {
		if i, ok := idx[k]; ok {
			cells[i].n++
			return
		}
		idx[k] = len(cells)
		cells = append(cells, cell{act: k.act, sec: k.sec, key: k.key, n: 1})
	}
	for i := range events {
		ev := &events[i]
		sec := ev.At.Unix()
		add(at{ev.ActivityID, sec, colKey{kind: kindOutcome, name: string(ev.Outcome)}})
		if ev.Outcome == lottery.OutcomeWin && ev.AwardID != "" {
			add(at{ev.ActivityID, sec, colKey{kind: kindAward, name: ev.AwardID}})
		}
		add(at{ev.ActivityID, sec, colKey{kind: kindLatency, lat: latBucket(min(ev.LatencyUS, math.MaxUint32))}})
		mo := [2]string{ev.Module, string(ev.Outcome)}
		mk, ok := modKeys[mo]
		if !ok {
			name, version := SplitModule(ev.Module)
			mk = moduleKey(name, version, string(ev.Outcome))
			modKeys[mo] = mk
		}
		add(at{ev.ActivityID, sec, colKey{kind: kindModule, name: mk}})
	}
	slices.SortStableFunc(cells, func(a, b cell) int {
		return cmp.Or(cmp.Compare(a.act, b.act), cmp.Compare(a.sec, b.sec))
	})
	return cells
}

// apply adds one cell to the counts. The caller holds mu (or owns e alone).
func (e *Embedded) apply(c cell) {
	s := e.acts[c.act]
	if s == nil {
		s = &series{width: 1, index: make(map[colKey]int)}
		e.acts[c.act] = s
	}
	r := s.row(c.sec)
	s.cols[s.col(c.key)][r] += c.n
	for len(s.secs) > maxRows {
		s.widen(2 * s.width)
	}
}

// setWidth widens an activity's buckets to at least width (a snapshot
// records the width so a replay keeps it). The caller holds mu.
func (e *Embedded) setWidth(act, width int64) {
	s := e.acts[act]
	if s == nil {
		s = &series{width: 1, index: make(map[colKey]int)}
		e.acts[act] = s
	}
	for s.width < width {
		s.widen(2 * s.width)
	}
}

// row returns the row of the bucket holding second sec, adding it if needed.
func (s *series) row(sec int64) int {
	sec = alignDown(sec, s.width)
	n := len(s.secs)
	if n > 0 && s.secs[n-1] == sec {
		return n - 1
	}
	if n == 0 || sec > s.secs[n-1] {
		s.secs = append(s.secs, sec)
		for c := range s.cols {
			s.cols[c] = append(s.cols[c], 0)
		}
		return n
	}
	r, found := slices.BinarySearch(s.secs, sec)
	if found {
		return r
	}
	s.secs = slices.Insert(s.secs, r, sec)
	for c := range s.cols {
		s.cols[c] = slices.Insert(s.cols[c], r, 0)
	}
	return r
}

// col returns the column of key, adding it if needed.
func (s *series) col(key colKey) int {
	if c, ok := s.index[key]; ok {
		return c
	}
	if key.kind != kindLatency && !isOther(key) {
		// The overflow column does not count, so a replay that meets the
		// names in another order folds the same ones.
		if s.named[key.kind] >= maxNamed-1 {
			key = otherKey(key)
			if c, ok := s.index[key]; ok {
				return c
			}
		} else {
			s.named[key.kind]++
		}
	}
	c := len(s.keys)
	s.index[key] = c
	s.keys = append(s.keys, key)
	s.cols = append(s.cols, make([]uint64, len(s.secs), cap(s.secs)))
	return c
}

// widen merges rows into buckets of the given width (a power-of-two
// multiple of the current one).
func (s *series) widen(width int64) {
	s.width = width
	w := 0
	for r, sec := range s.secs {
		sec = alignDown(sec, width)
		if w > 0 && s.secs[w-1] == sec {
			for _, col := range s.cols {
				col[w-1] += col[r]
			}
			continue
		}
		s.secs[w] = sec
		for _, col := range s.cols {
			col[w] = col[r]
		}
		w++
	}
	s.secs = s.secs[:w]
	for c := range s.cols {
		s.cols[c] = s.cols[c][:w]
	}
}

// alignDown rounds sec down to a multiple of width, also below zero.
func alignDown(sec, width int64) int64 {
	if width == 1 {
		return sec
	}
	m := sec % width
	if m < 0 {
		m += width
	}
	return sec - m
}

// The latency histogram is log-linear: values 0..3 have their own buckets,
// then every power of two is split into four, so a bucket's midpoint is
// within 12.5% of any value in it. 248 buckets cover every int64.
const latBuckets = 4 + 61*4

// latBucket returns the histogram bucket of a latency in microseconds.
func latBucket(us int64) uint8 {
	if us < 4 {
		return uint8(max(us, 0))
	}
	e := bits.Len64(uint64(us)) - 1 // 2..62
	m := (us >> (e - 2)) & 3
	return uint8(4 + (e-2)*4 + int(m))
}

// latMid returns a representative value of a histogram bucket: its
// midpoint, exact for the buckets below 4.
func latMid(b int) int64 {
	if b < 4 {
		return int64(b)
	}
	e, m := (b-4)/4+2, int64((b-4)%4)
	lower := (4 + m) << (e - 2)
	return lower + (int64(1)<<(e-2))/2
}

// quantile estimates the q-quantile of the histogram: the midpoint of the
// bucket holding the ceil(q*n)-th smallest value; 0 for no values.
func quantile(hist *[latBuckets]uint64, q float64) int64 {
	var n uint64
	for _, v := range hist {
		n += v
	}
	if n == 0 {
		return 0
	}
	rank := max(uint64(math.Ceil(q*float64(n))), 1)
	var cum uint64
	for b, v := range hist {
		cum += v
		if cum >= rank {
			return latMid(b)
		}
	}
	return latMid(latBuckets - 1)
}

// moduleKey packs a module name, version and outcome into a column name:
// uvarint(len(name)) name uvarint(len(version)) version outcome.
func moduleKey(name, version, outcome string) string {
	b := make([]byte, 0, 2*binary.MaxVarintLen64+len(name)+len(version)+len(outcome))
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = binary.AppendUvarint(b, uint64(len(version)))
	b = append(b, version...)
	b = append(b, outcome...)
	return string(b)
}

// parseModuleKey unpacks a moduleKey; ok is false for a malformed key.
func parseModuleKey(key string) (name, version, outcome string, ok bool) {
	d := decoder{p: []byte(key)}
	name = d.string()
	version = d.string()
	if d.err != nil {
		return "", "", "", false
	}
	return name, version, string(d.p), true
}

// isOther reports whether key is an overflow column.
func isOther(key colKey) bool {
	if key.kind == kindModule {
		name, version, _, ok := parseModuleKey(key.name)
		return ok && name == otherName && version == ""
	}
	return key.name == otherName
}

// otherKey returns the overflow column that folds key: "_other" for an
// outcome or award, and the module "_other" with the same outcome for a
// module column, so that module draws keep their outcome.
func otherKey(key colKey) colKey {
	if key.kind == kindModule {
		_, _, outcome, _ := parseModuleKey(key.name)
		return colKey{kind: kindModule, name: moduleKey(otherName, "", outcome)}
	}
	return colKey{kind: key.kind, name: otherName}
}

// scan calls fn with every column of an activity and its sum over the rows
// in [lo, hi) while holding the read lock; columns that sum to zero are
// skipped. It returns ErrClosed after Close.
func (e *Embedded) scan(ctx context.Context, activityID, lo, hi int64, fn func(k colKey, n uint64)) error {
	return e.rows(ctx, activityID, lo, hi, func(s *series, r0, r1 int) {
		for c, k := range s.keys {
			var n uint64
			for _, v := range s.cols[c][r0:r1] {
				n += v
			}
			if n != 0 {
				fn(k, n)
			}
		}
	})
}

// rows calls fn with an activity's series and the range of its rows that
// start in [lo, hi), under the read lock, if that range is not empty.
func (e *Embedded) rows(ctx context.Context, activityID, lo, hi int64, fn func(s *series, r0, r1 int)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return ErrClosed
	}
	s := e.acts[activityID]
	if s == nil || lo >= hi {
		return nil
	}
	r0, _ := slices.BinarySearch(s.secs, lo)
	r1, _ := slices.BinarySearch(s.secs, hi)
	if r0 < r1 {
		fn(s, r0, r1)
	}
	return nil
}

// Awards counts the won draws of an activity per award (see Querier).
func (e *Embedded) Awards(ctx context.Context, activityID int64, from, to time.Time) ([]AwardCount, error) {
	w, err := checkWindow(activityID, from, to)
	if err != nil {
		return nil, err
	}
	out := []AwardCount{}
	err = e.scan(ctx, w.act, w.lo, w.hi, func(k colKey, n uint64) {
		if k.kind == kindAward {
			out = append(out, AwardCount{AwardID: k.name, Count: int64(n)})
		}
	})
	if err != nil {
		return nil, err
	}
	sortAwards(out)
	return out, nil
}

// Timeline counts the draws and wins of an activity per step (see Querier).
func (e *Embedded) Timeline(ctx context.Context, activityID int64, from, to time.Time, step time.Duration) ([]TimelinePoint, error) {
	w, err := checkWindow(activityID, from, to)
	if err != nil {
		return nil, err
	}
	st, err := checkStep(w, step)
	if err != nil {
		return nil, err
	}
	pts := w.timeline(st)
	err = e.rows(ctx, w.act, w.lo, w.hi, func(s *series, r0, r1 int) {
		for c, k := range s.keys {
			if k.kind != kindOutcome {
				continue
			}
			win := k.name == string(lottery.OutcomeWin)
			for r, v := range s.cols[c][r0:r1] {
				if v == 0 {
					continue
				}
				p := &pts[s.secs[r0+r]/st-w.lo/st]
				p.Draws += int64(v)
				if win {
					p.Wins += int64(v)
				}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	finishTimeline(w, st, pts)
	return pts, nil
}

// Latency estimates the latency percentiles of an activity from its
// histogram: each is the midpoint of the bucket holding the exact
// percentile, within 12.5% of it (see Querier).
func (e *Embedded) Latency(ctx context.Context, activityID int64, from, to time.Time) (Latency, error) {
	w, err := checkWindow(activityID, from, to)
	if err != nil {
		return Latency{}, err
	}
	lat := Latency{ActivityID: activityID, From: from, To: to}
	var hist [latBuckets]uint64
	err = e.scan(ctx, w.act, w.lo, w.hi, func(k colKey, n uint64) {
		if k.kind == kindLatency {
			hist[k.lat] += n
			lat.Count += int64(n)
		}
	})
	if err != nil {
		return Latency{}, err
	}
	lat.P50US = quantile(&hist, 0.50)
	lat.P90US = quantile(&hist, 0.90)
	lat.P99US = quantile(&hist, 0.99)
	return lat, nil
}

// Modules counts the outcomes of an activity's draws per draw module
// version (see Querier).
func (e *Embedded) Modules(ctx context.Context, activityID int64, from, to time.Time) ([]ModuleOutcomes, error) {
	w, err := checkWindow(activityID, from, to)
	if err != nil {
		return nil, err
	}
	groups := make(moduleGroups)
	err = e.scan(ctx, w.act, w.lo, w.hi, func(k colKey, n uint64) {
		if k.kind != kindModule {
			return
		}
		if name, version, outcome, ok := parseModuleKey(k.name); ok {
			groups.add(name, version, outcome, int64(n))
		}
	})
	if err != nil {
		return nil, err
	}
	return finishModules(groups), nil
}
