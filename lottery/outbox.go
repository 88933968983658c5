package lottery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// RelayConfig tunes a Relay.
type RelayConfig struct {
	// Queue bounds the invoices waiting for the publisher. When it is full
	// Enqueue drops the invoice, which stays mq_state 0 in the store for the
	// compensation scan: the queue is an accelerator, the store is the truth.
	Queue int
	// Batch is the most invoices published in one call.
	Batch int
	// Timeout bounds one publish plus its state update.
	Timeout time.Duration
	// Workers is how many batches are published at once (default 4): the
	// broker's round trip, not the CPU, bounds one worker, and one slow batch
	// must not hold up the rest.
	Workers int
	// ConfirmEvery is how long an acknowledged invoice may wait before its
	// mq_state 1 is written (default 500ms). The acknowledgements of that
	// time go to the store together, and most of their orders are granted
	// by then, which already set mq_state 1 (Granter), so the confirmation
	// finds the rows and writes nothing. Keep it well under the scan's
	// stale age: an order waiting for its confirmation still reads 0. A
	// crash loses the waiting confirmations; their orders are re-sent by the
	// scan and the distributor's idempotence absorbs the repeat.
	ConfirmEvery time.Duration
	// Linger is how long a worker holding fewer than Batch invoices waits
	// for more before it publishes (default 0: publish what is queued). The
	// draw has answered by then, so a linger delays only the invoice; in
	// exchange the producer moves many messages per wake-up of its
	// goroutines and per produce request instead of one or two.
	Linger time.Duration
}

// maxConfirming bounds the acknowledgements waiting for ConfirmEvery: at
// that many they are written at once.
const maxConfirming = 8192

// RelayStats are the relay's counters.
type RelayStats struct {
	Enqueued, Sent, Failed, Dropped, Compensated uint64
	Queued                                       int
	// Confirming counts acknowledged invoices whose mq_state 1 is not
	// written yet (see RelayConfig.ConfirmEvery); Unconfirmed those whose
	// write failed (left at 0, the scan sends them again).
	Confirming  int
	Unconfirmed uint64
}

// Relay is the outbox relay: after an order commits it publishes the
// invoice and records the outcome (mq_state 2 on failure at once, 1 on ack
// with the other acknowledgements of ConfirmEvery, unless the grant wrote it
// first); the compensation scan re-sends what was left behind. Its Run goroutine is owned
// by whoever calls Run (the server) and stops when the context ends.
type Relay struct {
	pub   Publisher
	box   Outbox
	cfg   RelayConfig
	queue chan Invoice

	// confirming holds the acknowledged orders waiting for their mq_state
	// 1; full is signalled when it reaches maxConfirming.
	mu         sync.Mutex
	confirming []OrderRef
	full       chan struct{}

	enqueued, sent, failed, dropped, compensated, unconfirmed atomic.Uint64
}

// NewRelay returns a relay publishing through pub and recording states in box.
func NewRelay(pub Publisher, box Outbox, cfg RelayConfig) *Relay {
	if cfg.Queue <= 0 {
		cfg.Queue = 16384
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.ConfirmEvery <= 0 {
		cfg.ConfirmEvery = 500 * time.Millisecond
	}
	return &Relay{pub: pub, box: box, cfg: cfg, queue: make(chan Invoice, cfg.Queue), full: make(chan struct{}, 1)}
}

// Enqueue hands an invoice to the relay without blocking. It reports false
// when the queue is full (the invoice is then left to the compensation scan).
func (r *Relay) Enqueue(inv Invoice) bool {
	select {
	case r.queue <- inv:
		r.enqueued.Add(1)
		return true
	default:
		r.dropped.Add(1)
		return false
	}
}

// Stats returns the relay's counters.
func (r *Relay) Stats() RelayStats {
	r.mu.Lock()
	confirming := len(r.confirming)
	r.mu.Unlock()
	return RelayStats{Enqueued: r.enqueued.Load(), Sent: r.sent.Load(), Failed: r.failed.Load(), Dropped: r.dropped.Load(), Compensated: r.compensated.Load(), Queued: len(r.queue), Confirming: confirming, Unconfirmed: r.unconfirmed.Load()}
}

// Run publishes queued invoices in batches with Workers goroutines until
// ctx ends, then publishes what is still queued with a bounded timeout and
// writes the confirmations still waiting. It returns when every worker has
// stopped.
func (r *Relay) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Go(func() { r.work(ctx) })
	}
	confirmed := make(chan struct{})
	go func() {
		defer close(confirmed)
		r.confirmLoop(ctx)
	}()
	wg.Wait()
	<-confirmed
	// The workers' drain may have acknowledged more after the loop's last
	// write.
	r.flushConfirms(context.Background())
}

// confirmLoop writes the waiting confirmations every ConfirmEvery, or at
// once when maxConfirming wait, until ctx ends.
func (r *Relay) confirmLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.ConfirmEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.full:
		}
		r.flushConfirms(ctx)
	}
}

// flushConfirms writes mq_state 1 for the acknowledged orders waiting. On
// failure they stay at 0 for the compensation scan, as a publish whose state
// update failed does.
func (r *Relay) flushConfirms(ctx context.Context) {
	r.mu.Lock()
	refs := r.confirming
	r.confirming = nil
	r.mu.Unlock()
	if len(refs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.Timeout)
	defer cancel()
	if err := r.box.SetMQState(ctx, refs, MQSent); err != nil {
		r.unconfirmed.Add(uint64(len(refs))) // left at 0: the scan re-sends them
	}
}

// confirmLater queues acknowledged orders for the next flushConfirms.
func (r *Relay) confirmLater(refs []OrderRef) {
	r.mu.Lock()
	r.confirming = append(r.confirming, refs...)
	full := len(r.confirming) >= maxConfirming
	r.mu.Unlock()
	if full {
		select {
		case r.full <- struct{}{}:
		default:
		}
	}
}

func (r *Relay) work(ctx context.Context) {
	batch := make([]Invoice, 0, r.cfg.Batch)
	for {
		select {
		case <-ctx.Done():
			r.drain(batch[:0])
			return
		case inv := <-r.queue:
			batch = r.fill(ctx, append(batch[:0], inv))
			r.publish(context.WithoutCancel(ctx), batch, true)
		}
	}
}

// fill adds queued invoices to batch until it holds Batch, waiting up to
// Linger for more when the queue runs dry first.
func (r *Relay) fill(ctx context.Context, batch []Invoice) []Invoice {
	var linger <-chan time.Time
	for len(batch) < r.cfg.Batch {
		select {
		case inv := <-r.queue:
			batch = append(batch, inv)
			continue
		default:
		}
		if r.cfg.Linger <= 0 {
			return batch
		}
		if linger == nil {
			t := time.NewTimer(r.cfg.Linger)
			defer t.Stop()
			linger = t.C
		}
		select {
		case inv := <-r.queue:
			batch = append(batch, inv)
		case <-linger:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}

func (r *Relay) drain(batch []Invoice) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
	defer cancel()
	for ctx.Err() == nil {
		select {
		case inv := <-r.queue:
			batch = append(batch, inv)
			if len(batch) < r.cfg.Batch {
				continue
			}
		default:
		}
		if len(batch) == 0 {
			return
		}
		r.publish(ctx, batch, true)
		batch = batch[:0]
	}
}

// publish sends a batch and records each invoice's outcome: failures at
// once, acknowledgements at once or, with later, by the confirm loop. It
// returns how many were acknowledged.
func (r *Relay) publish(ctx context.Context, invs []Invoice, later bool) (int, error) {
	pctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	errs := r.pub.Publish(pctx, invs)
	cancel()
	// The state update gets its own deadline: a broker that is down uses up
	// the publish's, and the failures must still be recorded as mq_state 2.
	ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), r.cfg.Timeout)
	defer cancel()
	var ok, bad []OrderRef
	for i, inv := range invs {
		ref := OrderRef{UserID: inv.UserID, OrderID: inv.OrderID}
		if i < len(errs) && errs[i] == nil {
			ok = append(ok, ref)
		} else {
			bad = append(bad, ref)
		}
	}
	r.sent.Add(uint64(len(ok)))
	r.failed.Add(uint64(len(bad)))
	var err error
	if len(ok) > 0 {
		if later {
			r.confirmLater(ok)
		} else {
			err = r.box.SetMQState(ctx, ok, MQSent)
		}
	}
	if len(bad) > 0 {
		err = errors.Join(err, r.box.SetMQState(ctx, bad, MQFailed))
	}
	if err != nil {
		// The store keeps the older state: a sent invoice left at 0 or 2 is sent
		// again by the scan and the distributor's idempotence absorbs it.
		return len(ok), fmt.Errorf("outbox: record mq_state: %w", err)
	}
	return len(ok), nil
}

// Compensate is the compensation scan: it re-sends orders whose invoice
// failed (mq_state 2) or was never confirmed (mq_state 0 older than
// staleAfter), across every shard, and returns how many were acknowledged.
func (r *Relay) Compensate(ctx context.Context, now time.Time, staleAfter time.Duration) (int, error) {
	total := 0
	for {
		orders, err := r.box.Pending(ctx, now.Add(-staleAfter), r.cfg.Batch)
		if err != nil {
			return total, fmt.Errorf("outbox: pending: %w", err)
		}
		if len(orders) == 0 {
			return total, nil
		}
		invs := make([]Invoice, len(orders))
		for i := range orders {
			invs[i] = InvoiceOf(&orders[i])
		}
		// Confirmed at once: the next page must not find these again.
		n, err := r.publish(ctx, invs, false)
		total += n
		r.compensated.Add(uint64(n))
		if err != nil {
			return total, err
		}
		if n < len(invs) || len(orders) < r.cfg.Batch {
			return total, nil // the broker refuses: try again next round, do not spin
		}
	}
}
