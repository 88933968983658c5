// Package invoicetest is the contract suite of the invoice pipeline: a
// Producer publishing to a Kafka-protocol broker and a Consumer group
// delivering through a Distributor. It runs against the embedded broker in
// invoice's own tests and against any real broker whose address is known.
package invoicetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/flashlottery/lottery/invoice"
	"github.com/flashlottery/lottery/lottery"
)

// waitLimit bounds every wait for deliveries; a healthy broker needs about
// a second for a group to join and drain.
const waitLimit = 20 * time.Second

// Run runs the contract. brokers returns the bootstrap addresses of a
// broker whose topic invoice.DefaultTopic exists; it is called once per
// subtest with that subtest's t, so a broker it starts can live exactly as
// long as t (register its stop with t.Cleanup). The suite uses fresh order
// ids and group names, so a shared broker with older messages works too;
// the stopped-broker check is skipped for a broker that outlives its t.
func Run(t *testing.T, brokers func(t *testing.T) []string) {
	RunTopic(t, brokers, invoice.DefaultTopic)
}

// RunTopic runs the contract on topic, which must exist. A broker shared
// with other users (or earlier runs) gets a fresh topic, so that nothing
// older than the run reaches its consumer groups.
func RunTopic(t *testing.T, brokers func(t *testing.T) []string, topic string) {
	s := &suite{base: time.Now().UnixNano() / 1000 * 1000, topic: topic}
	t.Run("DeliverOnce", func(t *testing.T) { s.deliverOnce(t, brokers(t)) })
	t.Run("Redelivery", func(t *testing.T) { s.redelivery(t, brokers(t)) })
	t.Run("KeyRouting", func(t *testing.T) { s.keyRouting(t, brokers(t)) })
	t.Run("RetryUntilDelivered", func(t *testing.T) { s.retry(t, brokers(t), false) })
	t.Run("RetryUntilDeliveredBatch", func(t *testing.T) { s.retry(t, brokers(t), true) })
	t.Run("SkipUndeliverable", func(t *testing.T) { s.skip(t, brokers(t)) })
	t.Run("StoppedBroker", func(t *testing.T) { s.stoppedBroker(t, brokers) })
}

type suite struct {
	topic string
	base  int64
	seq   atomic.Int64
}

// invoices returns n invoices with fresh order ids, spread over users and
// cycling through the four award types.
func (s *suite) invoices(n, users int) []lottery.Invoice {
	first := s.base + s.seq.Add(int64(n)) - int64(n)
	out := make([]lottery.Invoice, n)
	for i := range out {
		id := first + int64(i)
		typ := lottery.AwardType(i%4 + 1)
		out[i] = lottery.Invoice{
			OrderID:    id,
			TakeID:     id,
			UserID:     fmt.Sprintf("u%d-%d", s.base%100000, i%users),
			ActivityID: 100001,
			Award:      lottery.Award{ID: fmt.Sprintf("a%d", typ), Type: typ, Name: typ.String(), Content: "content-" + typ.String()},
			At:         time.Now().UTC().Truncate(time.Millisecond),
		}
	}
	return out
}

func (s *suite) deliverOnce(t *testing.T, addrs []string) {
	p := s.producer(t, addrs)
	invs := s.invoices(40, 8)
	MustPublish(t, p, invs)

	g := NewGranter()
	sink := &recordingSink{}
	d := invoice.NewDistributor(g, invoice.WithSink(sink), invoice.WithLogger(testLogger(t)))
	c := s.consumer(t, addrs, groupName("once"), d)
	WaitGranted(t, g, invs)

	for _, inv := range invs {
		sink.checkStable(t, inv.OrderID)
	}
	if st := c.Stats(); st.Failures != 0 || st.Skipped != 0 {
		t.Errorf("consumer stats %+v: want no failures, nothing skipped", st)
	}
	if st := d.Stats(); st.Granted < uint64(len(invs)) {
		t.Errorf("distributor stats %+v: want at least %d granted", st, len(invs))
	}
	// Codes are derived from the order id: repeated deliveries agree.
	for _, dl := range sink.all() {
		switch dl.Award.Type {
		case lottery.AwardRedeemCode:
			if dl.Code == "" || dl.Code != d.RedeemCode(dl.Ref.OrderID) {
				t.Errorf("order %d: redeem code %q, want %q", dl.Ref.OrderID, dl.Code, d.RedeemCode(dl.Ref.OrderID))
			}
		case lottery.AwardCoupon:
			if dl.Code == "" || dl.Code != d.CouponCode(dl.Ref.OrderID) {
				t.Errorf("order %d: coupon code %q, want %q", dl.Ref.OrderID, dl.Code, d.CouponCode(dl.Ref.OrderID))
			}
		case lottery.AwardGoods:
			if !dl.AddressRequest {
				t.Errorf("order %d: goods without an address request", dl.Ref.OrderID)
			}
		}
	}
}

func (s *suite) redelivery(t *testing.T, addrs []string) {
	p := s.producer(t, addrs)
	invs := s.invoices(20, 5)
	MustPublish(t, p, invs)

	g := NewGranter()
	group := groupName("redeliver")
	d1 := invoice.NewDistributor(g, invoice.WithLogger(testLogger(t)))
	c1, stop1 := startConsumerOn(t, addrs, s.topic, group, d1)
	WaitGranted(t, g, invs)

	// The producer retried, the relay re-sent: the same invoices again.
	MustPublish(t, p, invs)
	waitFor(t, "re-published invoices seen as duplicates", func() bool { return g.MinCalls(invs) >= 2 })
	if st := d1.Stats(); st.Duplicates < uint64(len(invs)) {
		t.Errorf("distributor stats %+v: want at least %d duplicates", st, len(invs))
	}
	if st := c1.Stats(); st.Failures != 0 {
		t.Errorf("consumer stats %+v: a duplicate is no failure", st)
	}
	stop1()

	// A second group reads the topic from the start: every order again.
	d2 := invoice.NewDistributor(g, invoice.WithLogger(testLogger(t)))
	c2 := s.consumer(t, addrs, groupName("replay"), d2)
	waitFor(t, "second group saw every invoice twice", func() bool { return g.MinCalls(invs) >= 4 })
	if st := d2.Stats(); st.Duplicates < uint64(2*len(invs)) {
		t.Errorf("second distributor stats %+v: want at least %d duplicates", st, 2*len(invs))
	}
	if st := c2.Stats(); st.Failures != 0 || st.Skipped != 0 {
		t.Errorf("second consumer stats %+v: want no failures, nothing skipped", st)
	}

	// The first group committed its offsets: rejoining it delivers only
	// what is new.
	fresh := s.invoices(3, 3)
	MustPublish(t, p, fresh)
	d3 := invoice.NewDistributor(g, invoice.WithLogger(testLogger(t)))
	s.consumer(t, addrs, group, d3)
	WaitGranted(t, g, fresh)
	if n := g.MaxCallsOf(invs); n > 4 {
		// The rejoined group must not have replayed committed invoices.
		t.Errorf("an old invoice was delivered %d times, want 4: committed offsets ignored", n)
	}
}

func (s *suite) keyRouting(t *testing.T, addrs []string) {
	p := s.producer(t, addrs)
	invs := s.invoices(36, 6)
	MustPublish(t, p, invs)

	ours := make(map[int64]string, len(invs))
	for _, inv := range invs {
		ours[inv.OrderID] = inv.UserID
	}
	parts := make(map[string]map[int32]bool)
	seen := 0
	ReadTopic(t, addrs, s.topic, func(m *sarama.ConsumerMessage) {
		var inv lottery.Invoice
		if json.Unmarshal(m.Value, &inv) != nil {
			return
		}
		user, ok := ours[inv.OrderID]
		if !ok {
			return
		}
		seen++
		if string(m.Key) != user {
			t.Errorf("order %d: key %q, want the user id %q", inv.OrderID, m.Key, user)
		}
		if parts[user] == nil {
			parts[user] = make(map[int32]bool)
		}
		parts[user][m.Partition] = true
	})
	if seen != len(invs) {
		t.Fatalf("read back %d of our %d invoices", seen, len(invs))
	}
	for user, ps := range parts {
		if len(ps) != 1 {
			t.Errorf("user %s spread over partitions %v, want one", user, ps)
		}
	}
}

// retry fails one order's first deliveries: the consumer retries it until
// it is delivered, through a plain Handler or a BatchHandler.
func (s *suite) retry(t *testing.T, addrs []string, batch bool) {
	p := s.producer(t, addrs)
	invs := s.invoices(3, 3)
	g := NewGranter()
	d := invoice.NewDistributor(g, invoice.WithLogger(testLogger(t)))
	var h invoice.Handler = &flaky{next: d, order: invs[1].OrderID, fails: 3}
	if batch {
		h = &flakyBatch{flaky: flaky{next: d, order: invs[1].OrderID, fails: 3}, next: d}
	}
	c := s.consumer(t, addrs, groupName("retry"), h)
	MustPublish(t, p, invs)
	WaitGranted(t, g, invs)
	if st := c.Stats(); st.Retries < 3 || st.Failures < 3 || st.Skipped != 0 {
		t.Errorf("consumer stats %+v: want >= 3 retries and failures, nothing skipped", st)
	}
}

func (s *suite) skip(t *testing.T, addrs []string) {
	p := s.producer(t, addrs)
	g := NewGranter()
	d := invoice.NewDistributor(g, invoice.WithLogger(testLogger(t)))
	c := s.consumer(t, addrs, groupName("skip"), d)

	// A message that is no invoice, an invoice of an unknown award type,
	// then a good one: the first two are skipped, the third delivered.
	ProduceRaw(t, addrs, s.topic, "u-garbage", []byte("{not json"))
	bad := s.invoices(1, 1)
	bad[0].Award.Type = 9
	MustPublish(t, p, bad)
	good := s.invoices(1, 1)
	MustPublish(t, p, good)
	WaitGranted(t, g, good)
	// The three sit on different partitions (keyed by user), delivered
	// concurrently: the good one may be granted before the others are read.
	waitFor(t, "the malformed and the unknown-type message skipped, the unknown type rejected", func() bool {
		return c.Stats().Skipped >= 2 && d.Stats().Rejected >= 1
	})
	if g.Calls(refOf(bad[0])) != 0 {
		t.Errorf("an invoice of an unknown award type was granted")
	}
}

func (s *suite) stoppedBroker(t *testing.T, brokers func(t *testing.T) []string) {
	const timeout = time.Second
	var p *invoice.Producer
	outer := t
	// The broker belongs to a subtest: it stops when that subtest ends.
	t.Run("start", func(t *testing.T) {
		addrs := brokers(t)
		var err error
		p, err = invoice.NewProducer(invoice.ProducerConfig{Brokers: addrs, ClientID: "invoicetest", Timeout: timeout})
		if err != nil {
			t.Fatalf("NewProducer: %v", err)
		}
		outer.Cleanup(func() {
			start := time.Now()
			_ = p.Close()
			if d := time.Since(start); d > 5*timeout {
				outer.Errorf("Close after the broker stopped took %v", d)
			}
		})
		MustPublish(t, p, s.invoices(2, 2))
	})
	if t.Failed() || p == nil {
		t.FailNow()
	}

	invs := s.invoices(3, 3)
	start := time.Now()
	errs := p.Publish(context.Background(), invs)
	elapsed := time.Since(start)
	if len(errs) != len(invs) {
		t.Fatalf("got %d errors for %d invoices", len(errs), len(invs))
	}
	if errs[0] == nil && errs[1] == nil && errs[2] == nil {
		t.Skip("the broker outlived its test; cannot check publishing to a stopped broker")
	}
	for i, err := range errs {
		if !errors.Is(err, lottery.ErrUnavailable) {
			t.Errorf("invoice %d: error %v, want one wrapping lottery.ErrUnavailable", i, err)
		}
	}
	if elapsed > timeout+time.Second {
		t.Errorf("Publish to a stopped broker took %v, want about the %v timeout", elapsed, timeout)
	}
	t.Logf("Publish to a stopped broker failed after %v: %v", elapsed, errs[0])

	// A closed producer fails at once.
	_ = p.Close()
	errs = p.Publish(context.Background(), invs[:1])
	if !errors.Is(errs[0], invoice.ErrClosed) || !errors.Is(errs[0], lottery.ErrUnavailable) {
		t.Errorf("Publish after Close: %v, want ErrClosed and ErrUnavailable", errs[0])
	}
}

// producer returns a producer on the suite's topic, closed when t ends.
func (s *suite) producer(t testing.TB, addrs []string) *invoice.Producer {
	t.Helper()
	p, err := invoice.NewProducer(invoice.ProducerConfig{Brokers: addrs, Topic: s.topic, ClientID: "invoicetest"})
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func (s *suite) consumer(t testing.TB, addrs []string, group string, h invoice.Handler) *invoice.Consumer {
	t.Helper()
	c, _ := startConsumerOn(t, addrs, s.topic, group, h)
	return c
}

// MustPublish publishes invs and fails t on any error.
func MustPublish(t testing.TB, p *invoice.Producer, invs []lottery.Invoice) {
	t.Helper()
	for i, err := range p.Publish(context.Background(), invs) {
		if err != nil {
			t.Fatalf("publish invoice %d (order %d): %v", i, invs[i].OrderID, err)
		}
	}
}

// StartConsumer runs a consumer in group on addrs, reading
// invoice.DefaultTopic, until t ends.
func StartConsumer(t testing.TB, addrs []string, group string, h invoice.Handler) *invoice.Consumer {
	t.Helper()
	c, _ := startConsumerOn(t, addrs, invoice.DefaultTopic, group, h)
	return c
}

// startConsumerOn runs a consumer on topic until stop is called or t ends,
// whichever comes first; after either it has left the group.
func startConsumerOn(t testing.TB, addrs []string, topic, group string, h invoice.Handler) (*invoice.Consumer, func()) {
	t.Helper()
	c, err := invoice.NewConsumer(invoice.ConsumerConfig{
		Brokers: addrs, Topic: topic, Group: group, ClientID: "invoicetest",
		Backoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Logger: testLogger(t),
	}, h)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("consumer Run: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("consumer Close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

// ReadTopic calls fn for every message of every partition of topic, up to
// the high watermarks at the time of the call.
func ReadTopic(t testing.TB, addrs []string, topic string, fn func(*sarama.ConsumerMessage)) {
	t.Helper()
	cl, err := sarama.NewClient(addrs, sarama.NewConfig())
	if err != nil {
		t.Fatalf("sarama client: %v", err)
	}
	defer cl.Close()
	cons, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		t.Fatalf("sarama consumer: %v", err)
	}
	defer cons.Close()
	parts, err := cl.Partitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	for _, part := range parts {
		hwm, err := cl.GetOffset(topic, part, sarama.OffsetNewest)
		if err != nil {
			t.Fatalf("offset of %s/%d: %v", topic, part, err)
		}
		low, err := cl.GetOffset(topic, part, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("offset of %s/%d: %v", topic, part, err)
		}
		if hwm <= low {
			continue
		}
		pc, err := cons.ConsumePartition(topic, part, low)
		if err != nil {
			t.Fatalf("consume %s/%d: %v", topic, part, err)
		}
		timer := time.NewTimer(waitLimit)
		for off := low; off < hwm; {
			select {
			case m := <-pc.Messages():
				fn(m)
				off = m.Offset + 1
			case <-timer.C:
				pc.Close()
				t.Fatalf("reading %s/%d: stuck below offset %d of %d", topic, part, off, hwm)
			}
		}
		timer.Stop()
		pc.Close()
	}
}

// ProduceRaw writes one message with arbitrary bytes, bypassing Producer.
func ProduceRaw(t testing.TB, addrs []string, topic, key string, value []byte) {
	t.Helper()
	sc := sarama.NewConfig()
	sc.Producer.Return.Successes = true
	sp, err := sarama.NewSyncProducer(addrs, sc)
	if err != nil {
		t.Fatalf("sync producer: %v", err)
	}
	defer sp.Close()
	if _, _, err := sp.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(value)}); err != nil {
		t.Fatalf("produce raw message: %v", err)
	}
}

// WaitGranted waits until every invoice's order is granted in g.
func WaitGranted(t testing.TB, g *Granter, invs []lottery.Invoice) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d orders granted", len(invs)), func() bool { return g.AllGranted(invs) })
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", waitLimit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var groupSeq atomic.Int64

func groupName(kind string) string {
	return fmt.Sprintf("invoicetest-%s-%d-%d", kind, time.Now().UnixNano(), groupSeq.Add(1))
}

func refOf(inv lottery.Invoice) lottery.OrderRef {
	return lottery.OrderRef{UserID: inv.UserID, OrderID: inv.OrderID}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
}

// Granter is an in-memory lottery.Granter: the order's grant_state moves
// 0 -> 1 on its first Grant only. It counts every call per order.
type Granter struct {
	mu      sync.Mutex
	calls   map[lottery.OrderRef]int
	granted map[lottery.OrderRef]bool
}

var _ lottery.Granter = (*Granter)(nil)

// NewGranter returns an empty Granter.
func NewGranter() *Granter {
	return &Granter{calls: make(map[lottery.OrderRef]int), granted: make(map[lottery.OrderRef]bool)}
}

// Grant records the call and reports whether this call granted the order.
func (g *Granter) Grant(_ context.Context, ref lottery.OrderRef) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls[ref]++
	if g.granted[ref] {
		return false, nil
	}
	g.granted[ref] = true
	return true, nil
}

// Calls returns how many times ref was delivered.
func (g *Granter) Calls(ref lottery.OrderRef) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[ref]
}

// AllGranted reports whether every invoice's order is granted.
func (g *Granter) AllGranted(invs []lottery.Invoice) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, inv := range invs {
		if !g.granted[refOf(inv)] {
			return false
		}
	}
	return true
}

// MinCalls returns the fewest deliveries of any of the invoices.
func (g *Granter) MinCalls(invs []lottery.Invoice) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	least := -1
	for _, inv := range invs {
		if n := g.calls[refOf(inv)]; least < 0 || n < least {
			least = n
		}
	}
	return least
}

// MaxCallsOf returns the most deliveries of any of the invoices.
func (g *Granter) MaxCallsOf(invs []lottery.Invoice) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	most := 0
	for _, inv := range invs {
		most = max(most, g.calls[refOf(inv)])
	}
	return most
}

// recordingSink keeps every Delivery per order.
type recordingSink struct {
	mu sync.Mutex
	m  map[int64][]invoice.Delivery
}

func (s *recordingSink) Send(_ context.Context, d invoice.Delivery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[int64][]invoice.Delivery)
	}
	s.m[d.Ref.OrderID] = append(s.m[d.Ref.OrderID], d)
	return nil
}

func (s *recordingSink) all() []invoice.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []invoice.Delivery
	for _, ds := range s.m {
		out = append(out, ds...)
	}
	return out
}

// checkStable fails t if an order was delivered with differing contents.
func (s *recordingSink) checkStable(t testing.TB, orderID int64) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	ds := s.m[orderID]
	if len(ds) == 0 {
		t.Errorf("order %d: no delivery reached the sink", orderID)
		return
	}
	for _, d := range ds[1:] {
		if d != ds[0] {
			t.Errorf("order %d: deliveries differ: %+v vs %+v", orderID, ds[0], d)
		}
	}
}

// flaky fails the first deliveries of one order with a transient error.
type flaky struct {
	next  invoice.Handler
	order int64
	fails int
	mu    sync.Mutex
}

var errFlaky = errors.New("invoicetest: transient delivery failure")

func (f *flaky) Deliver(ctx context.Context, inv lottery.Invoice) error {
	if f.fail(inv) {
		return errFlaky
	}
	return f.next.Deliver(ctx, inv)
}

// fail reports whether this delivery of inv is one that fails.
func (f *flaky) fail(inv lottery.Invoice) bool {
	if inv.OrderID != f.order {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fail := f.fails > 0
	if fail {
		f.fails--
	}
	return fail
}

// flakyBatch is flaky as a BatchHandler: the failing order fails inside a
// batch whose other invoices are delivered.
type flakyBatch struct {
	flaky
	next invoice.BatchHandler
}

func (f *flakyBatch) DeliverEach(ctx context.Context, invs []lottery.Invoice, errs []error) {
	var pass []lottery.Invoice
	var at []int
	for i, inv := range invs {
		if f.fail(inv) {
			errs[i] = errFlaky
			continue
		}
		pass, at = append(pass, inv), append(at, i)
	}
	perrs := make([]error, len(pass))
	f.next.DeliverEach(ctx, pass, perrs)
	for k, i := range at {
		errs[i] = perrs[k]
	}
}
