package analytics

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashlottery/lottery/lottery"
)

var _ lottery.Events = (*Sink)(nil)

// Defaults of SinkConfig, applied to every zero or negative field.
const (
	DefaultCapacity     = 65536
	DefaultBatchSize    = 4096
	DefaultFlushEvery   = time.Second
	DefaultFlushTimeout = 5 * time.Second
	DefaultRetryMin     = 100 * time.Millisecond
	DefaultRetryMax     = 10 * time.Second
)

// SinkConfig configures a Sink. Zero fields take the defaults above.
type SinkConfig struct {
	// Capacity bounds the events held in memory: buffered by Record plus
	// taken by the flusher and not yet stored. Beyond it Record drops.
	Capacity int
	// BatchSize is the most events passed to one Store.Insert; a buffer
	// that reaches it is flushed without waiting for FlushEvery. It is
	// clamped to Capacity.
	BatchSize int
	// FlushEvery is the longest an event waits in the buffer while the
	// store is healthy.
	FlushEvery time.Duration
	// FlushTimeout bounds each Store.Insert call, and the whole final flush
	// when Run's context is done.
	FlushTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between failed inserts: it
	// starts at RetryMin and doubles, with jitter, up to RetryMax.
	RetryMin, RetryMax time.Duration
	// Logger receives a warning per failed insert and a note on recovery;
	// nil discards them.
	Logger *slog.Logger
}

// withDefaults returns c with every unset field defaulted.
func (c SinkConfig) withDefaults() SinkConfig {
	if c.Capacity <= 0 {
		c.Capacity = DefaultCapacity
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	c.BatchSize = min(c.BatchSize, c.Capacity)
	if c.FlushEvery <= 0 {
		c.FlushEvery = DefaultFlushEvery
	}
	if c.FlushTimeout <= 0 {
		c.FlushTimeout = DefaultFlushTimeout
	}
	if c.RetryMin <= 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax <= 0 {
		c.RetryMax = DefaultRetryMax
	}
	c.RetryMax = max(c.RetryMax, c.RetryMin)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// SinkStats is a snapshot of a Sink's counters. Once Record calls have
// stopped and Run has returned, Recorded = Flushed + Dropped + Buffered.
type SinkStats struct {
	// Recorded counts Record calls.
	Recorded uint64 `json:"recorded"`
	// Dropped counts events that will never reach the store: refused by a
	// full or stopped buffer, or left over when the final flush timed out.
	Dropped uint64 `json:"dropped"`
	// Flushed counts events the store accepted.
	Flushed uint64 `json:"flushed"`
	// FlushErrors counts failed Store.Insert calls.
	FlushErrors uint64 `json:"flushErrors"`
	// Buffered is the number of events held now, waiting or being retried.
	Buffered int `json:"buffered"`
}

// Sink is a bounded, batching lottery.Events that never blocks a draw.
// Record appends to an in-memory buffer under a short mutex; the goroutine
// that runs Run (the sink's one flusher, owned by the caller) swaps the
// buffer out and hands it to the Store in batches. When the buffer and the
// batches being retried hold Capacity events, Record drops the newest event
// and counts it.
type Sink struct {
	store Store
	cfg   SinkConfig
	kick  chan struct{} // capacity 1: "a batch is ready", from Record to Run
	ran   atomic.Bool

	mu       sync.Mutex
	buf      []lottery.Event // appended to by Record
	spare    []lottery.Event // the flusher's empty buffer, swapped with buf
	held     int             // events taken by the flusher, not yet flushed or dropped
	stopped  bool            // Run is finishing: Record drops
	recorded atomic.Uint64   // next to mu: Record touches both
	dropped  atomic.Uint64

	_           [64]byte // keep the flusher's counters off Record's cache line
	flushed     atomic.Uint64
	flushErrors atomic.Uint64

	// Owned by the flusher goroutine.
	out     []lottery.Event // events taken from buf
	next    int             // out[next:] is not stored yet
	failing bool            // the last insert failed
}

// NewSink returns a Sink delivering to store. Start its flusher with
// go s.Run(ctx); until then events only buffer.
func NewSink(store Store, cfg SinkConfig) *Sink {
	cfg = cfg.withDefaults()
	return &Sink{
		store: store,
		cfg:   cfg,
		kick:  make(chan struct{}, 1),
		buf:   make([]lottery.Event, 0, cfg.BatchSize),
		spare: make([]lottery.Event, 0, cfg.BatchSize),
	}
}

// Record buffers e for the store and returns at once. It never blocks on the
// store: when Capacity events are already held, or Run has stopped, e is
// dropped and counted. It does not allocate once the buffers have grown.
// The strings in e must not alias memory the caller reuses.
func (s *Sink) Record(e lottery.Event) {
	s.mu.Lock()
	s.recorded.Add(1)
	if s.stopped || len(s.buf)+s.held >= s.cfg.Capacity {
		s.dropped.Add(1)
		s.mu.Unlock()
		return
	}
	s.buf = append(s.buf, e)
	n := len(s.buf)
	s.mu.Unlock()
	if n == s.cfg.BatchSize {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// Stats returns the sink's counters.
func (s *Sink) Stats() SinkStats {
	s.mu.Lock()
	buffered := len(s.buf) + s.held
	s.mu.Unlock()
	return SinkStats{
		Recorded:    s.recorded.Load(),
		Dropped:     s.dropped.Load(),
		Flushed:     s.flushed.Load(),
		FlushErrors: s.flushErrors.Load(),
		Buffered:    buffered,
	}
}

// Run is the body of the sink's flusher goroutine; call it once, in a
// goroutine the caller owns, and stop it by cancelling ctx. It flushes when
// BatchSize events are buffered and every FlushEvery. A failed insert is
// retried with backoff, keeping its batch, while Record keeps buffering up
// to Capacity. When ctx is done Run stops accepting events, flushes what it
// holds within FlushTimeout, counts whatever is left as dropped, and returns.
func (s *Sink) Run(ctx context.Context) {
	if !s.ran.CompareAndSwap(false, true) {
		panic("analytics: Sink.Run called twice")
	}
	t := time.NewTicker(s.cfg.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.finish(ctx)
			return
		case <-s.kick:
		case <-t.C:
		}
		if !s.flush(ctx) {
			s.finish(ctx)
			return
		}
	}
}

// flush stores everything buffered, retrying failures, and keeps going while
// a full batch is waiting. It returns false when ctx is done first.
func (s *Sink) flush(ctx context.Context) bool {
	for {
		if s.next == len(s.out) && !s.take() {
			return true
		}
		if !s.deliver(ctx) {
			return false
		}
		s.mu.Lock()
		more := len(s.buf) >= s.cfg.BatchSize
		s.mu.Unlock()
		if !more {
			return true
		}
	}
}

// finish is the final flush: stop Record, then store what is held and
// buffered within FlushTimeout, and count the rest as dropped.
func (s *Sink) finish(parent context.Context) {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), s.cfg.FlushTimeout)
	defer cancel()
	for s.next < len(s.out) || s.take() {
		if !s.deliver(ctx) {
			break
		}
	}
	s.mu.Lock()
	lost := len(s.buf) + s.held
	clear(s.buf)
	s.buf, s.held = s.buf[:0], 0
	s.mu.Unlock()
	s.out, s.next = nil, 0
	s.dropped.Add(uint64(lost))
	if lost > 0 {
		s.cfg.Logger.Warn("analytics: final flush incomplete, events dropped", "dropped", lost)
	}
}

// take swaps the buffer out to the flusher; it reports false if it was empty.
// Call it only once out is fully stored.
func (s *Sink) take() bool {
	clear(s.out) // drop references to stored events' strings
	s.out, s.next = s.out[:0], 0
	s.mu.Lock()
	if len(s.buf) == 0 {
		s.mu.Unlock()
		return false
	}
	if s.out != nil {
		s.spare = s.out[:0]
	}
	s.out, s.buf, s.spare = s.buf, s.spare, nil
	s.held = len(s.out)
	s.mu.Unlock()
	return true
}

// deliver inserts out[next:] in batches, retrying each failed batch with
// backoff until it is stored. It returns false when ctx is done first.
func (s *Sink) deliver(ctx context.Context) bool {
	backoff := s.cfg.RetryMin
	for attempt := 1; s.next < len(s.out); {
		n := min(s.cfg.BatchSize, len(s.out)-s.next)
		err := s.insert(ctx, s.out[s.next:s.next+n])
		if err == nil {
			s.flushed.Add(uint64(n))
			s.next += n
			s.mu.Lock()
			s.held -= n
			s.mu.Unlock()
			if s.failing {
				s.failing = false
				s.cfg.Logger.Info("analytics: store recovered", "attempts", attempt)
			}
			attempt, backoff = 1, s.cfg.RetryMin
			continue
		}
		if ctx.Err() != nil {
			return false
		}
		s.failing = true
		s.flushErrors.Add(1)
		s.cfg.Logger.Warn("analytics: insert failed, will retry", "err", err, "attempt", attempt, "events", n)
		if !sleep(ctx, jitter(backoff)) {
			return false
		}
		attempt++
		backoff = min(2*backoff, s.cfg.RetryMax)
	}
	return true
}

// insert calls the store with a per-call deadline.
func (s *Sink) insert(ctx context.Context, batch []lottery.Event) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FlushTimeout)
	defer cancel()
	return s.store.Insert(ctx, batch)
}

// jitter returns a duration in [d/2, d) so that nodes retrying against the
// same store spread out.
func jitter(d time.Duration) time.Duration {
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half)
}

// sleep waits for d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
