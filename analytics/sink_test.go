package analytics

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
)

// blockingStore never finishes an insert before its context is done.
type blockingStore struct{ calls chan struct{} }

func (b *blockingStore) Insert(ctx context.Context, _ []lottery.Event) error {
	select {
	case b.calls <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

// memStore keeps copies of what it is given; the first fail calls fail.
type memStore struct {
	mu      sync.Mutex
	fail    int
	calls   int
	batches []int
	events  []lottery.Event
}

var errStoreDown = errors.New("store down")

func (m *memStore) Insert(ctx context.Context, events []lottery.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.fail > 0 {
		m.fail--
		return errStoreDown
	}
	m.batches = append(m.batches, len(events))
	m.events = append(m.events, events...)
	return nil
}

func (m *memStore) snapshot() (batches []int, events []lottery.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int(nil), m.batches...), append([]lottery.Event(nil), m.events...)
}

// runSink starts s.Run in a goroutine owned by the test and returns the
// function that stops it and waits for it to return.
func runSink(t *testing.T, s *Sink) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds or fails the test after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func ev(i int) lottery.Event {
	return lottery.Event{At: time.Unix(1_700_000_000, 0), ActivityID: 1, UserID: "u", Outcome: lottery.OutcomeLose, Seed: uint64(i)}
}

// recordAll records events [from, to) in a goroutine and fails the test if
// that does not finish promptly: Record must never wait for the store.
func recordAll(t *testing.T, s *Sink, from, to int) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := from; i < to; i++ {
			s.Record(ev(i))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked")
	}
}

func checkSeeds(t *testing.T, got []lottery.Event, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("store has %d events, want %d", len(got), n)
	}
	for i, e := range got {
		if e.Seed != uint64(i) {
			t.Fatalf("event %d has seed %d: lost, duplicated or reordered", i, e.Seed)
		}
	}
}

func TestSinkNeverBlocks(t *testing.T) {
	store := &blockingStore{calls: make(chan struct{}, 1)}
	s := NewSink(store, SinkConfig{Capacity: 100, BatchSize: 10, FlushEvery: time.Millisecond, FlushTimeout: 20 * time.Millisecond, RetryMin: time.Millisecond})
	stop := runSink(t, s)
	recordAll(t, s, 0, 50)
	<-store.calls // the flusher is stuck in the store with some events
	recordAll(t, s, 50, 1000)
	st := s.Stats()
	if st.Recorded != 1000 || st.Dropped != 900 || st.Buffered != 100 || st.Flushed != 0 {
		t.Fatalf("stats while the store hangs = %+v, want 1000 recorded, 900 dropped, 100 buffered", st)
	}
	stop()
	st = s.Stats()
	if st.Dropped != 1000 || st.Buffered != 0 || st.Flushed != 0 {
		t.Fatalf("stats after shutdown = %+v, want every event dropped", st)
	}
	recordAll(t, s, 0, 10) // after Run: dropped, not buffered
	if st := s.Stats(); st.Dropped != 1010 || st.Buffered != 0 {
		t.Fatalf("stats after Record on a stopped sink = %+v", st)
	}
}

func TestSinkWithoutRunNeverBlocks(t *testing.T) {
	s := NewSink(&memStore{}, SinkConfig{Capacity: 64, BatchSize: 8})
	recordAll(t, s, 0, 1000)
	if st := s.Stats(); st.Recorded != 1000 || st.Dropped != 936 || st.Buffered != 64 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestSinkFlushBySize(t *testing.T) {
	store := &memStore{}
	s := NewSink(store, SinkConfig{BatchSize: 10, FlushEvery: time.Hour})
	stop := runSink(t, s)
	recordAll(t, s, 0, 10)
	eventually(t, "first batch", func() bool { return s.Stats().Flushed == 10 })
	recordAll(t, s, 10, 20)
	eventually(t, "second batch", func() bool { return s.Stats().Flushed == 20 })
	recordAll(t, s, 20, 25)
	time.Sleep(20 * time.Millisecond)
	if st := s.Stats(); st.Flushed != 20 || st.Buffered != 5 {
		t.Fatalf("a partial batch was flushed before FlushEvery: %+v", st)
	}
	stop()
	batches, events := store.snapshot()
	if want := []int{10, 10, 5}; !equalInts(batches, want) {
		t.Fatalf("batches = %v, want %v", batches, want)
	}
	checkSeeds(t, events, 25)
}

func TestSinkFlushByTime(t *testing.T) {
	store := &memStore{}
	s := NewSink(store, SinkConfig{BatchSize: 1000, FlushEvery: 5 * time.Millisecond})
	runSink(t, s)
	recordAll(t, s, 0, 3)
	eventually(t, "time flush", func() bool { return s.Stats().Flushed == 3 })
	batches, events := store.snapshot()
	if !equalInts(batches, []int{3}) {
		t.Fatalf("batches = %v, want [3]", batches)
	}
	checkSeeds(t, events, 3)
}

func TestSinkRetriesWithoutLoss(t *testing.T) {
	store := &memStore{fail: 5}
	s := NewSink(store, SinkConfig{Capacity: 1000, BatchSize: 50, FlushEvery: time.Millisecond, RetryMin: time.Millisecond, RetryMax: 4 * time.Millisecond})
	stop := runSink(t, s)
	recordAll(t, s, 0, 400)
	eventually(t, "first insert attempt", func() bool { return s.Stats().FlushErrors > 0 })
	recordAll(t, s, 400, 1000) // keeps buffering while the batch is retried
	eventually(t, "everything flushed", func() bool { return s.Stats().Flushed == 1000 })
	stop()
	st := s.Stats()
	if st.FlushErrors != 5 || st.Dropped != 0 || st.Recorded != 1000 || st.Buffered != 0 {
		t.Fatalf("stats = %+v, want 5 flush errors and nothing dropped", st)
	}
	batches, events := store.snapshot()
	for _, n := range batches {
		if n > 50 {
			t.Fatalf("batch of %d events exceeds BatchSize 50", n)
		}
	}
	checkSeeds(t, events, 1000)
}

func TestSinkFinalFlush(t *testing.T) {
	store := &memStore{fail: 2}
	s := NewSink(store, SinkConfig{BatchSize: 8, FlushEvery: time.Hour, RetryMin: time.Millisecond})
	stop := runSink(t, s)
	recordAll(t, s, 0, 30) // 3 full batches kick the flusher, 6 wait for the timer
	stop()
	st := s.Stats()
	if st.Flushed != 30 || st.Dropped != 0 || st.Buffered != 0 {
		t.Fatalf("stats after shutdown = %+v, want all 30 flushed", st)
	}
	_, events := store.snapshot()
	checkSeeds(t, events, 30)
}

func TestSinkConcurrentRecord(t *testing.T) {
	const writers, each = 8, 5000
	store := &memStore{}
	s := NewSink(store, SinkConfig{Capacity: 4096, BatchSize: 256, FlushEvery: time.Millisecond})
	stop := runSink(t, s)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				s.Record(ev(w*each + i))
				if i%512 == 0 {
					_ = s.Stats()
				}
			}
		})
	}
	wg.Wait()
	stop()
	st := s.Stats()
	if st.Recorded != writers*each || st.Flushed+st.Dropped != st.Recorded || st.Buffered != 0 {
		t.Fatalf("stats = %+v: Recorded != Flushed + Dropped", st)
	}
	_, events := store.snapshot()
	if uint64(len(events)) != st.Flushed {
		t.Fatalf("store has %d events, stats say %d flushed", len(events), st.Flushed)
	}
	seen := make(map[uint64]bool, len(events))
	for _, e := range events {
		if seen[e.Seed] {
			t.Fatalf("event %d stored twice", e.Seed)
		}
		seen[e.Seed] = true
	}
}

func TestSinkRunTwicePanics(t *testing.T) {
	s := NewSink(&memStore{}, SinkConfig{})
	stop := runSink(t, s)
	eventually(t, "Run to start", s.ran.Load)
	defer stop()
	defer func() {
		if recover() == nil {
			t.Fatal("second Run did not panic")
		}
	}()
	s.Run(context.Background())
}

func TestSinkConfigDefaults(t *testing.T) {
	c := SinkConfig{}.withDefaults()
	if c.Capacity != DefaultCapacity || c.BatchSize != DefaultBatchSize || c.FlushEvery != DefaultFlushEvery ||
		c.FlushTimeout != DefaultFlushTimeout || c.RetryMin != DefaultRetryMin || c.RetryMax != DefaultRetryMax || c.Logger == nil {
		t.Fatalf("defaults = %+v", c)
	}
	if c := (SinkConfig{Capacity: 10, BatchSize: 100}).withDefaults(); c.BatchSize != 10 {
		t.Fatalf("BatchSize not clamped to Capacity: %d", c.BatchSize)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// discardStore accepts everything at once.
type discardStore struct{}

func (discardStore) Insert(context.Context, []lottery.Event) error { return nil }

// BenchmarkSinkRecord measures Record from parallel goroutines with a store
// that keeps up. drop/op is the share dropped: with every P busy recording,
// the flusher runs only when the scheduler preempts a producer, so most of a
// saturating loop is dropped; BenchmarkSinkPipeline shows the cost without
// that effect.
func BenchmarkSinkRecord(b *testing.B) {
	s := NewSink(discardStore{}, SinkConfig{FlushEvery: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	e := lottery.Event{At: time.Now(), ActivityID: 1, UserID: "user-1", Module: "alias@1", Outcome: lottery.OutcomeWin, AwardID: "a1", LatencyUS: 120}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Record(e)
		}
	})
	b.StopTimer()
	cancel()
	<-done
	st := s.Stats()
	b.ReportMetric(float64(st.Dropped)/float64(st.Recorded), "drop/op")
}

// BenchmarkSinkRecordFull measures the drop path: the store hangs and the
// buffer is full.
func BenchmarkSinkRecordFull(b *testing.B) {
	s := NewSink(&blockingStore{calls: make(chan struct{}, 1)}, SinkConfig{Capacity: 1024})
	for i := range 1024 {
		s.Record(ev(i))
	}
	e := ev(0)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Record(e)
		}
	})
}

// BenchmarkSinkPipeline measures the whole path per event without the
// scheduler in the way: Record, then the flusher's swap, insert and clear
// for every full batch, all on one goroutine.
func BenchmarkSinkPipeline(b *testing.B) {
	s := NewSink(discardStore{}, SinkConfig{})
	e := lottery.Event{At: time.Now(), ActivityID: 1, UserID: "user-1", Module: "alias@1", Outcome: lottery.OutcomeWin, AwardID: "a1", LatencyUS: 120}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Record(e)
		if i%DefaultBatchSize == DefaultBatchSize-1 {
			s.flush(ctx)
		}
	}
	if st := s.Stats(); st.Dropped != 0 {
		b.Fatalf("dropped %d", st.Dropped)
	}
}
