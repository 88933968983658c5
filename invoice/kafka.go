package invoice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	fastjson "github.com/segmentio/encoding/json"

	"github.com/flashlottery/lottery/lottery"
)

// Defaults of the producer and the consumer.
const (
	// DefaultClientID is the Kafka client id when none is configured.
	DefaultClientID = "lottery"
	// DefaultTimeout bounds one Publish call and every network wait under it.
	DefaultTimeout = 5 * time.Second
	// DefaultBackoff is the first wait before a failed delivery is retried.
	DefaultBackoff = 100 * time.Millisecond
	// DefaultMaxBackoff caps the doubling retry wait.
	DefaultMaxBackoff = 5 * time.Second
)

// ErrClosed is returned (wrapped with lottery.ErrUnavailable) by Publish on
// a closed Producer.
var ErrClosed = errors.New("invoice: producer closed")

// ProducerConfig configures a Producer.
type ProducerConfig struct {
	// Brokers are the bootstrap addresses (host:port).
	Brokers []string
	// Topic is the invoice topic (default DefaultTopic).
	Topic string
	// ClientID names the client to the broker (default DefaultClientID).
	ClientID string
	// Timeout bounds one Publish call, including waiting for every ack, and
	// the dial, read and write timeouts of the connections (default
	// DefaultTimeout).
	Timeout time.Duration
}

func (c *ProducerConfig) defaults() error {
	if len(c.Brokers) == 0 {
		return fmt.Errorf("invoice: producer: %w: no broker addresses", lottery.ErrInvalid)
	}
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	return nil
}

// Producer publishes invoices through an idempotent sarama AsyncProducer
// (acks from all in-sync replicas, one request in flight per connection, so
// the broker drops a retried batch it already has). Every invoice is keyed by
// its user id, so one user's invoices stay ordered on one partition.
//
// Producer owns one goroutine that reads the AsyncProducer's Successes and
// Errors and hands each result to the Publish call waiting for it; Close
// stops it.
type Producer struct {
	ap      sarama.AsyncProducer
	topic   string
	timeout time.Duration

	// mu keeps Close from closing the input channel while Publish sends on
	// it (a send on a closed channel panics).
	mu     sync.RWMutex
	closed bool

	done chan struct{} // closed when the dispatch goroutine has returned
}

var _ lottery.Publisher = (*Producer)(nil)

// NewProducer connects to the brokers and starts the producer. It fails with
// lottery.ErrUnavailable when no broker answers.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	sc := sarama.NewConfig()
	sc.ClientID = cfg.ClientID
	sc.Net.DialTimeout = cfg.Timeout
	sc.Net.ReadTimeout = cfg.Timeout
	sc.Net.WriteTimeout = cfg.Timeout
	sc.Metadata.Retry.Max = 2
	sc.Metadata.Retry.Backoff = 100 * time.Millisecond
	sc.Producer.Idempotent = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Retry.Max = 3
	sc.Producer.Retry.Backoff = 100 * time.Millisecond
	// The broker-side wait for replicas; it must end before our read timeout.
	sc.Producer.Timeout = max(cfg.Timeout/2, 10*time.Millisecond).Truncate(time.Millisecond)
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Partitioner = sarama.NewHashPartitioner
	ap, err := sarama.NewAsyncProducer(cfg.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("invoice: producer for %v: %w: %w", cfg.Brokers, lottery.ErrUnavailable, err)
	}
	p := &Producer{ap: ap, topic: cfg.Topic, timeout: cfg.Timeout, done: make(chan struct{})}
	go p.dispatch()
	return p, nil
}

// ack is a message's ProducerMessage.Metadata: the dispatcher sends the
// message's result on it. Its buffer of one means the dispatcher never
// blocks, even when the Publish call that waited for it gave up.
type ack chan error

// dispatch hands every result to its waiter until sarama closes both
// channels, which it does once Close has flushed everything in flight.
func (p *Producer) dispatch() {
	defer close(p.done)
	succ, errs := p.ap.Successes(), p.ap.Errors()
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			reply(m, nil)
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			err := pe.Err
			if err == nil {
				err = errors.New("unknown producer error")
			}
			reply(pe.Msg, err)
		}
	}
}

func reply(m *sarama.ProducerMessage, err error) {
	if m == nil {
		return
	}
	if a, ok := m.Metadata.(ack); ok {
		select {
		case a <- err:
		default: // answered already; sarama reports a message once
		}
	}
}

// Publish sends every invoice and waits until each is acknowledged or
// failed, at most the configured Timeout (or until ctx is done). It returns
// one error per invoice, nil for an ack. Broker and network failures, and
// invoices still unanswered at the deadline, wrap lottery.ErrUnavailable: an
// unanswered invoice may still reach the broker later, which the
// idempotent distributor absorbs. An invoice the broker refuses as such (too
// large) wraps lottery.ErrInvalid.
func (p *Producer) Publish(ctx context.Context, invs []lottery.Invoice) []error {
	errs := make([]error, len(invs))
	if len(invs) == 0 {
		return errs
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()

	acks := make([]ack, len(invs))
	p.mu.RLock()
	for i := range invs {
		inv := &invs[i]
		if p.closed {
			errs[i] = fmt.Errorf("invoice: publish order %d: %w: %w", inv.OrderID, lottery.ErrUnavailable, ErrClosed)
			continue
		}
		if err := ctx.Err(); err != nil {
			errs[i] = unanswered(ctx, inv)
			continue
		}
		val, err := fastjson.Marshal(inv)
		if err != nil {
			errs[i] = fmt.Errorf("invoice: encode order %d: %w: %w", inv.OrderID, lottery.ErrInvalid, err)
			continue
		}
		a := make(ack, 1)
		msg := &sarama.ProducerMessage{
			Topic:    p.topic,
			Key:      sarama.StringEncoder(inv.UserID),
			Value:    sarama.ByteEncoder(val),
			Metadata: a,
		}
		select {
		case p.ap.Input() <- msg:
			acks[i] = a
		case <-ctx.Done():
			errs[i] = unanswered(ctx, inv)
		}
	}
	p.mu.RUnlock()

	for i, a := range acks {
		if a == nil {
			continue
		}
		var err error
		select {
		case err = <-a:
		case <-ctx.Done():
			select {
			case err = <-a: // an answer that raced the deadline wins
			default:
				errs[i] = unanswered(ctx, &invs[i])
				continue
			}
		}
		if err != nil {
			errs[i] = publishError(&invs[i], err)
		}
	}
	return errs
}

func unanswered(ctx context.Context, inv *lottery.Invoice) error {
	return fmt.Errorf("invoice: publish order %d: %w: no ack: %w", inv.OrderID, lottery.ErrUnavailable, context.Cause(ctx))
}

func publishError(inv *lottery.Invoice, err error) error {
	switch {
	case errors.Is(err, sarama.ErrMessageSizeTooLarge),
		errors.Is(err, sarama.ErrMessageSetSizeTooLarge),
		errors.Is(err, sarama.ErrInvalidMessage),
		errors.Is(err, sarama.ErrInvalidRecord):
		return fmt.Errorf("invoice: publish order %d: %w: %w", inv.OrderID, lottery.ErrInvalid, err)
	default:
		return fmt.Errorf("invoice: publish order %d: %w: %w", inv.OrderID, lottery.ErrUnavailable, err)
	}
}

// Close flushes what is in flight (bounded by sarama's retries), closes the
// connections and stops the dispatch goroutine. Publish calls after Close
// fail with ErrClosed. It is safe to call more than once.
func (p *Producer) Close() error {
	p.mu.Lock()
	first := !p.closed
	p.closed = true
	p.mu.Unlock()
	if first {
		p.ap.AsyncClose()
	}
	<-p.done
	return nil
}

// Handler delivers one invoice. It must be idempotent: the consumer delivers
// at least once. An error wrapping lottery.ErrInvalid or lottery.ErrNotFound
// is permanent (logged and skipped); any other error is retried.
type Handler interface {
	Deliver(ctx context.Context, inv lottery.Invoice) error
}

// BatchHandler is a Handler that also delivers several invoices in one
// call, errs[i] being what Deliver of invs[i] would answer. The Consumer
// hands it a claim's batch at once (the Distributor is one: one store write
// grants the batch); a plain Handler gets the batch's invoices concurrently.
type BatchHandler interface {
	Handler
	DeliverEach(ctx context.Context, invs []lottery.Invoice, errs []error)
}

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	// Brokers are the bootstrap addresses (host:port).
	Brokers []string
	// Topic is the invoice topic (default DefaultTopic).
	Topic string
	// Group is the consumer group (default DefaultGroup).
	Group string
	// ClientID names the client to the broker (default DefaultClientID).
	ClientID string
	// Backoff is the first wait before a failed delivery is retried; it
	// doubles up to MaxBackoff (defaults DefaultBackoff, DefaultMaxBackoff).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// FetchMin and FetchWait: the broker answers a fetch once FetchMin bytes
	// are ready or FetchWait has passed (defaults DefaultFetchMin,
	// DefaultFetchWait). Under load the invoices then come in hundreds per
	// fetch and their grants in large group commits; when idle an invoice
	// waits at most FetchWait.
	FetchMin  int32
	FetchWait time.Duration
	// Logger receives skipped messages and retries (default slog.Default()).
	Logger *slog.Logger
}

// The consumer's fetch defaults: about 400 invoices, or 100ms. Larger
// fetches make larger grant writes: from 32 KiB to 128 KiB (and claim
// batches from 64 to 256), an all-win load on MariaDB 2 x 4 wrote 0.022
// grant UPDATEs per draw instead of 0.074 and served 5% more draws a
// second (4 alternated pairs).
const (
	DefaultFetchMin  = 128 << 10
	DefaultFetchWait = 100 * time.Millisecond
)

func (c *ConsumerConfig) defaults() error {
	if len(c.Brokers) == 0 {
		return fmt.Errorf("invoice: consumer: %w: no broker addresses", lottery.ErrInvalid)
	}
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.Backoff <= 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxBackoff < c.Backoff {
		c.MaxBackoff = max(DefaultMaxBackoff, c.Backoff)
	}
	if c.FetchMin <= 0 {
		c.FetchMin = DefaultFetchMin
	}
	if c.FetchWait <= 0 {
		c.FetchWait = DefaultFetchWait
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// ConsumerStats are a Consumer's counters since it was created.
type ConsumerStats struct {
	// Delivered counts invoices the handler accepted (offsets marked).
	Delivered uint64
	// Redelivered counts messages this consumer saw again at or below an
	// offset it had already delivered on that partition (after a rebalance
	// or an uncommitted restart of the session).
	Redelivered uint64
	// Retries counts deliveries attempted again after a handler error.
	Retries uint64
	// Failures counts handler errors, transient or permanent.
	Failures uint64
	// Skipped counts messages committed without a delivery: malformed ones
	// and permanent handler errors.
	Skipped uint64
}

// Consumer reads invoices as a member of a consumer group and hands each to
// its Handler. Offsets are committed by hand, only after the handler
// succeeded (or the message was skipped as malformed or permanently
// invalid); a transient handler error is retried with a doubling backoff
// and never skipped, so a partition waits behind a message it cannot yet
// deliver. Delivery is at least once; the Handler makes it exactly once in
// effect.
type Consumer struct {
	cfg   ConsumerConfig
	group sarama.ConsumerGroup
	h     Handler
	log   *slog.Logger

	delivered, redelivered, retries, failures, skipped atomic.Uint64

	mu   sync.Mutex
	next map[int32]int64 // per partition, one past the highest offset delivered
}

// NewConsumer connects to the brokers and prepares the group member; Run
// joins the group and consumes.
func NewConsumer(cfg ConsumerConfig, h Handler) (*Consumer, error) {
	if h == nil {
		return nil, fmt.Errorf("invoice: consumer: %w: nil handler", lottery.ErrInvalid)
	}
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	sc := sarama.NewConfig()
	sc.ClientID = cfg.ClientID
	sc.Net.DialTimeout = DefaultTimeout
	sc.Metadata.Retry.Backoff = 100 * time.Millisecond
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Offsets.AutoCommit.Enable = false
	sc.Consumer.Return.Errors = false
	sc.Consumer.MaxWaitTime = cfg.FetchWait
	sc.Consumer.Fetch.Min = cfg.FetchMin
	sc.Consumer.Retry.Backoff = 500 * time.Millisecond
	sc.Consumer.Group.Rebalance.Retry.Backoff = 500 * time.Millisecond
	group, err := sarama.NewConsumerGroup(cfg.Brokers, cfg.Group, sc)
	if err != nil {
		return nil, fmt.Errorf("invoice: consumer group %s on %v: %w: %w", cfg.Group, cfg.Brokers, lottery.ErrUnavailable, err)
	}
	return &Consumer{cfg: cfg, group: group, h: h, log: cfg.Logger, next: make(map[int32]int64)}, nil
}

// Run consumes until ctx is done or Close is called, and then returns nil.
// sarama ends a group session at every rebalance, so Run calls Consume in a
// loop; a failing Consume (broker down) is logged and retried with backoff.
// The claims run on sarama's goroutines, one per partition, all of which
// have returned when Run does.
func (c *Consumer) Run(ctx context.Context) error {
	h := groupHandler{c: c}
	wait := c.cfg.Backoff
	for {
		err := c.group.Consume(ctx, []string{c.cfg.Topic}, h)
		if errors.Is(err, sarama.ErrClosedConsumerGroup) || ctx.Err() != nil {
			return nil
		}
		if err == nil {
			wait = c.cfg.Backoff
			continue
		}
		c.log.WarnContext(ctx, "invoice consumer: group session failed", "group", c.cfg.Group, "retry_in", wait, "err", err)
		if !sleep(ctx, wait) {
			return nil
		}
		wait = min(2*wait, c.cfg.MaxBackoff)
	}
}

// Close leaves the group and closes the connections; a running Run returns.
// Cancel Run's context first for the cleanest exit.
func (c *Consumer) Close() error {
	if err := c.group.Close(); err != nil {
		return fmt.Errorf("invoice: close consumer group %s: %w", c.cfg.Group, err)
	}
	return nil
}

// Stats returns the consumer's counters.
func (c *Consumer) Stats() ConsumerStats {
	return ConsumerStats{
		Delivered:   c.delivered.Load(),
		Redelivered: c.redelivered.Load(),
		Retries:     c.retries.Load(),
		Failures:    c.failures.Load(),
		Skipped:     c.skipped.Load(),
	}
}

// groupHandler adapts Consumer to sarama.ConsumerGroupHandler.
type groupHandler struct{ c *Consumer }

func (groupHandler) Setup(sarama.ConsumerGroupSession) error { return nil }

// Cleanup commits what the claims marked last: with auto-commit off, sarama
// does not flush marked offsets when a session ends.
func (groupHandler) Cleanup(sess sarama.ConsumerGroupSession) error {
	sess.Commit()
	return nil
}

// commitEvery bounds how many marked messages wait for a commit while a
// claim is busy; an idle claim commits at once.
const commitEvery = 100

func (h groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	marked := 0
	batch := make([]*sarama.ConsumerMessage, 0, deliverBatch)
	done := make([]bool, deliverBatch)
	invs := make([]lottery.Invoice, deliverBatch)
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			// Take what is already waiting and deliver it together, so the
			// store grants many prizes in one transaction.
			batch = append(batch[:0], msg)
		fill:
			for len(batch) < deliverBatch {
				select {
				case m, ok := <-claim.Messages():
					if !ok {
						break fill
					}
					batch = append(batch, m)
				default:
					break fill
				}
			}
			for i, m := range batch {
				h.c.noteRedelivery(m) // before any delivery of the batch moves the mark
				// A malformed one is skipped: marked with the rest.
				done[i] = !h.c.decode(sess.Context(), m, &invs[i])
			}
			h.c.deliver(sess, batch, invs[:len(batch)], done[:len(batch)])
			// Mark in offset order and stop at the first message not done:
			// marking a later offset would commit past it.
			for i, m := range batch {
				if !done[i] {
					return nil // the session ended while retrying; the rest stays uncommitted
				}
				sess.MarkMessage(m, "")
				marked++
			}
			if marked >= commitEvery || len(claim.Messages()) == 0 {
				sess.Commit()
				marked = 0
			}
		case <-sess.Context().Done():
			return nil
		}
	}
}

// deliverBatch bounds how many messages of one claim are delivered at once.
const deliverBatch = 256

// unmarshalInvoice decodes an invoice as encoding/json does, mostly with
// segmentio's json at a fifth of the cost (decoding was 7% of an all-win
// edge's CPU). encoding/json stays the reference: it reads a message the
// faster decoder refuses (it is stricter with times, for one), and one
// with a run of 20 digits or more, which no valid invoice number has:
// segmentio wraps some such integers instead of refusing them (its
// overflow check misses values past 2.05e19 that wrap below the previous
// digit's). FuzzUnmarshalInvoice holds the two to the same answers.
func unmarshalInvoice(b []byte, inv *lottery.Invoice) error {
	if !digitRun(b, 20) && fastjson.Unmarshal(b, inv) == nil {
		return nil
	}
	*inv = lottery.Invoice{}
	return json.Unmarshal(b, inv)
}

// digitRun reports whether b holds n or more ASCII digits in a row.
func digitRun(b []byte, n int) bool {
	run := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			run = 0
			continue
		}
		if run++; run >= n {
			return true
		}
	}
	return false
}

// decode reads the invoice of msg into inv. A malformed one is counted,
// logged and reported false: it is skipped (marked without a delivery).
func (c *Consumer) decode(ctx context.Context, msg *sarama.ConsumerMessage, inv *lottery.Invoice) bool {
	*inv = lottery.Invoice{}
	err := unmarshalInvoice(msg.Value, inv)
	if err == nil && (inv.OrderID == 0 || inv.UserID == "") {
		err = errors.New("no order id or user id")
	}
	if err != nil {
		c.skipped.Add(1)
		c.log.WarnContext(ctx, "invoice consumer: malformed invoice skipped",
			"topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset, "err", err)
		return false
	}
	return true
}

// deliver delivers the invoices of msgs not yet done, retrying those that
// fail transiently, all together, with a doubling backoff until they
// succeed or the session ends; it sets done[i] for each message the caller
// may mark (delivered, or skipped as undeliverable).
func (c *Consumer) deliver(sess sarama.ConsumerGroupSession, msgs []*sarama.ConsumerMessage, invs []lottery.Invoice, done []bool) {
	ctx := sess.Context()
	var todo []int
	for i := range msgs {
		if !done[i] {
			todo = append(todo, i)
		}
	}
	wait := c.cfg.Backoff
	for len(todo) > 0 {
		errs := c.deliverEach(ctx, invs, todo)
		var retry []int
		for k, i := range todo {
			err := errs[k]
			if err == nil {
				c.delivered.Add(1)
				c.noteDelivered(msgs[i])
				done[i] = true
				continue
			}
			c.failures.Add(1)
			if errors.Is(err, lottery.ErrInvalid) || errors.Is(err, lottery.ErrNotFound) {
				c.skipped.Add(1)
				c.log.ErrorContext(ctx, "invoice consumer: undeliverable invoice skipped",
					"order", invs[i].OrderID, "user", invs[i].UserID, "partition", msgs[i].Partition, "offset", msgs[i].Offset, "err", err)
				done[i] = true
				continue
			}
			if len(retry) == 0 && ctx.Err() == nil {
				c.log.WarnContext(ctx, "invoice consumer: delivery failed, retrying",
					"order", invs[i].OrderID, "user", invs[i].UserID, "retry_in", wait, "err", err)
			}
			retry = append(retry, i)
		}
		if len(retry) == 0 || ctx.Err() != nil || !sleep(ctx, wait) {
			return // the session ended: what is left stays unmarked
		}
		c.retries.Add(uint64(len(retry)))
		wait = min(2*wait, c.cfg.MaxBackoff)
		todo = retry
	}
}

// deliverEach hands the invoices at idx to the handler and returns their
// answers in the order of idx: in one call to a BatchHandler, else
// concurrently, so the store's group commit still grants them together.
func (c *Consumer) deliverEach(ctx context.Context, invs []lottery.Invoice, idx []int) []error {
	errs := make([]error, len(idx))
	if bh, ok := c.h.(BatchHandler); ok {
		sub := make([]lottery.Invoice, len(idx))
		for k, i := range idx {
			sub[k] = invs[i]
		}
		bh.DeliverEach(ctx, sub, errs)
		return errs
	}
	var wg sync.WaitGroup
	for k, i := range idx {
		wg.Go(func() { errs[k] = c.h.Deliver(ctx, invs[i]) })
	}
	wg.Wait()
	return errs
}

func (c *Consumer) noteRedelivery(msg *sarama.ConsumerMessage) {
	c.mu.Lock()
	next, ok := c.next[msg.Partition]
	c.mu.Unlock()
	if ok && msg.Offset < next {
		c.redelivered.Add(1)
	}
}

func (c *Consumer) noteDelivered(msg *sarama.ConsumerMessage) {
	c.mu.Lock()
	if msg.Offset >= c.next[msg.Partition] {
		c.next[msg.Partition] = msg.Offset + 1
	}
	c.mu.Unlock()
}

// sleep waits d or until ctx is done, reporting whether the full wait passed.
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
