package invoice_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/flashlottery/lottery/invoice"
	"github.com/flashlottery/lottery/invoice/invoicetest"
	"github.com/flashlottery/lottery/lottery"
)

// startBroker starts an embedded broker that stops when t ends.
func startBroker(t testing.TB, cfg invoice.BrokerConfig) *invoice.Broker {
	t.Helper()
	b, err := invoice.StartBroker(cfg)
	if err != nil {
		t.Fatalf("StartBroker: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

func TestContractEmbedded(t *testing.T) {
	invoicetest.Run(t, func(t *testing.T) []string {
		return startBroker(t, invoice.BrokerConfig{}).Addrs()
	})
}

// TestContractExternal runs the contract against a real broker when
// LOTTERY_TEST_KAFKA holds its comma-separated addresses.
func TestContractExternal(t *testing.T) {
	addrs := os.Getenv("LOTTERY_TEST_KAFKA")
	if addrs == "" {
		t.Skip("LOTTERY_TEST_KAFKA not set")
	}
	brokers := strings.Split(addrs, ",")
	// A fresh topic: the shared broker keeps what earlier runs and other
	// users published.
	topic := fmt.Sprintf("lottery_invoice_test_%d", time.Now().UnixNano())
	if err := invoice.EnsureTopic(brokers, topic, invoice.DefaultPartitions, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	admin, err := sarama.NewClusterAdmin(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	defer func() { _ = admin.DeleteTopic(topic) }()
	invoicetest.RunTopic(t, func(*testing.T) []string { return brokers }, topic)
}

func TestBrokerSeedsTopic(t *testing.T) {
	b := startBroker(t, invoice.BrokerConfig{Topic: "seeded", Partitions: 3})
	if b.Topic() != "seeded" || len(b.Addrs()) != 1 {
		t.Fatalf("topic %q addrs %v", b.Topic(), b.Addrs())
	}
	cl, err := sarama.NewClient(b.Addrs(), sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	parts, err := cl.Partitions("seeded")
	if err != nil || len(parts) != 3 {
		t.Fatalf("partitions %v, %v; want 3", parts, err)
	}
}

func TestEnsureTopic(t *testing.T) {
	b := startBroker(t, invoice.BrokerConfig{})
	for range 2 { // the second finds it
		if err := invoice.EnsureTopic(b.Addrs(), "made", 3, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := sarama.NewClient(b.Addrs(), sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if parts, err := cl.Partitions("made"); err != nil || len(parts) != 3 {
		t.Fatalf("partitions %v, %v; want 3", parts, err)
	}
	if err := invoice.EnsureTopic(b.Addrs(), "", 3, time.Second); !errors.Is(err, lottery.ErrInvalid) {
		t.Errorf("no topic: %v, want ErrInvalid", err)
	}
	if err := invoice.EnsureTopic([]string{"127.0.0.1:1"}, "x", 3, time.Second); !errors.Is(err, lottery.ErrUnavailable) {
		t.Errorf("no broker: %v, want ErrUnavailable", err)
	}
}

func TestBrokerBadAddr(t *testing.T) {
	if _, err := invoice.StartBroker(invoice.BrokerConfig{Addr: "no-port"}); err == nil {
		t.Fatal("StartBroker accepted an address without a port")
	}
}

// TestBrokerRestartKeepsData stops a broker with a data dir and starts it
// again on the same address: messages and the group's committed offsets
// survive, so the group delivers only what is new.
func TestBrokerRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	g := invoicetest.NewGranter()
	first := invoices(1000, 12)
	const group = "restart-group"

	b1, err := invoice.StartBroker(invoice.BrokerConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addrs := b1.Addrs()
	// The producer lives across the restart: sarama reconnects and the
	// broker reloads its producer id and sequence numbers.
	p := newProducer(t, addrs)
	defer p.Close()
	invoicetest.MustPublish(t, p, first)
	runGroup(t, addrs, group, g, first)

	if _, err := invoice.StartBroker(invoice.BrokerConfig{DataDir: dir}); err == nil {
		t.Fatal("a second broker started on a data dir in use")
	}
	b1.Close()
	b2 := startBroker(t, invoice.BrokerConfig{Addr: addrs[0], DataDir: dir})
	if got := b2.Addrs(); got[0] != addrs[0] {
		t.Fatalf("restarted on %v, want %v", got, addrs)
	}
	var kept int
	invoicetest.ReadTopic(t, addrs, invoice.DefaultTopic, func(m *sarama.ConsumerMessage) {
		var inv lottery.Invoice
		if json.Unmarshal(m.Value, &inv) == nil && inv.OrderID >= 1000 && inv.OrderID < 1012 {
			kept++
		}
	})
	if kept != len(first) {
		t.Fatalf("after restart the topic holds %d of %d invoices", kept, len(first))
	}

	second := invoices(2000, 4)
	invoicetest.MustPublish(t, p, second)
	d := runGroup(t, addrs, group, g, second)
	if st := d.Stats(); st.Duplicates != 0 || st.Granted != uint64(len(second)) {
		t.Errorf("after restart the group replayed committed invoices: %+v", st)
	}
}

// TestBrokerRetention drops invoices older than the retention, from the
// broker's count and from what a reader of the topic sees, and keeps the
// newer ones; a retention below a millisecond is refused.
func TestBrokerRetention(t *testing.T) {
	if _, err := invoice.StartBroker(invoice.BrokerConfig{Retention: time.Microsecond}); !errors.Is(err, lottery.ErrInvalid) {
		t.Fatalf("retention 1µs: got %v, want ErrInvalid", err)
	}
	// Long enough that the publish below cannot outlast it on a slow
	// machine before the first count.
	const retention = 2 * time.Second
	b := startBroker(t, invoice.BrokerConfig{DataDir: t.TempDir(), Retention: retention})
	p := newProducer(t, b.Addrs())
	defer p.Close()
	old := invoices(1000, 40)
	invoicetest.MustPublish(t, p, old)
	if got := b.Held(); got != int64(len(old)) {
		t.Fatalf("after publishing %d the broker holds %d", len(old), got)
	}
	deadline := time.Now().Add(15 * time.Second)
	for b.Held() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d invoices still held %s after a retention of %s", b.Held(), 15*time.Second, retention)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fresh := invoices(2000, 10)
	invoicetest.MustPublish(t, p, fresh)
	var seen []int64
	invoicetest.ReadTopic(t, b.Addrs(), invoice.DefaultTopic, func(m *sarama.ConsumerMessage) {
		var inv lottery.Invoice
		if err := json.Unmarshal(m.Value, &inv); err != nil {
			t.Errorf("message at offset %d: %v", m.Offset, err)
		}
		seen = append(seen, inv.OrderID)
	})
	// The fresh invoices may themselves expire while being read on a slow
	// machine, but no old one may be read.
	for _, id := range seen {
		if id < 2000 {
			t.Fatalf("read order %d, published before the retention passed (read %v)", id, seen)
		}
	}
}

// TestProducerConcurrentPublishAndClose publishes from many goroutines
// while the producer closes: every call returns, none panics, and every
// invoice gets either an ack or ErrClosed.
func TestProducerConcurrentPublishAndClose(t *testing.T) {
	b := startBroker(t, invoice.BrokerConfig{})
	p := newProducer(t, b.Addrs())
	var wg sync.WaitGroup
	var acked, closed, other atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			for i := range 20 {
				for _, err := range p.Publish(context.Background(), invoices(int64(w*1000+i*10), 5)) {
					switch {
					case err == nil:
						acked.Add(1)
					case errors.Is(err, invoice.ErrClosed):
						closed.Add(1)
					default:
						other.Add(1)
						t.Errorf("Publish: %v", err)
					}
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
	if acked.Load()+closed.Load() != 8*20*5 || acked.Load() == 0 {
		t.Errorf("acked %d, closed %d, other %d", acked.Load(), closed.Load(), other.Load())
	}
}

// TestConsumerBrokerDown stops the broker under a running consumer: Run
// keeps retrying without a busy loop and returns once its context is done.
func TestConsumerBrokerDown(t *testing.T) {
	b, err := invoice.StartBroker(invoice.BrokerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	addrs := b.Addrs()
	p := newProducer(t, addrs)
	g := invoicetest.NewGranter()
	invs := invoices(1, 3)
	invoicetest.MustPublish(t, p, invs)
	p.Close()

	c, err := invoice.NewConsumer(invoice.ConsumerConfig{
		Brokers: addrs, Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	}, invoice.NewDistributor(g))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	invoicetest.WaitGranted(t, g, invs)

	b.Close()
	time.Sleep(time.Second)
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	if err := c.Close(); err != nil {
		t.Logf("Close with the broker down: %v", err)
	}
	t.Logf("stopped %v after cancel", time.Since(start))
}

// runGroup consumes in group until every invoice is granted, then leaves.
func runGroup(t *testing.T, addrs []string, group string, g *invoicetest.Granter, want []lottery.Invoice) *invoice.Distributor {
	t.Helper()
	d := invoice.NewDistributor(g)
	var c *invoice.Consumer
	t.Run("group", func(t *testing.T) { // the consumer leaves when this subtest ends
		c = invoicetest.StartConsumer(t, addrs, group, d)
		invoicetest.WaitGranted(t, g, want)
	})
	if t.Failed() {
		t.FailNow()
	}
	if st := c.Stats(); st.Failures != 0 {
		t.Errorf("consumer stats %+v", st)
	}
	return d
}

func newProducer(t testing.TB, addrs []string) *invoice.Producer {
	t.Helper()
	p, err := invoice.NewProducer(invoice.ProducerConfig{Brokers: addrs, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	return p
}

func invoices(firstID int64, n int) []lottery.Invoice {
	out := make([]lottery.Invoice, n)
	for i := range out {
		id := firstID + int64(i)
		out[i] = lottery.Invoice{
			OrderID: id, TakeID: id, UserID: "user-" + string(rune('a'+i%5)), ActivityID: 1,
			Award: lottery.Award{ID: "a1", Type: lottery.AwardType(i%4 + 1), Name: "prize"},
			At:    time.Unix(1_700_000_000, 0).UTC(),
		}
	}
	return out
}

func TestNewProducerNoBroker(t *testing.T) {
	start := time.Now()
	_, err := invoice.NewProducer(invoice.ProducerConfig{Brokers: []string{"127.0.0.1:1"}, Timeout: time.Second})
	if err == nil {
		t.Fatal("NewProducer without a broker succeeded")
	}
	if !errors.Is(err, lottery.ErrUnavailable) {
		t.Errorf("error %v does not wrap ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("NewProducer without a broker took %v", d)
	}
}

func TestConfigValidation(t *testing.T) {
	if _, err := invoice.NewProducer(invoice.ProducerConfig{}); !errors.Is(err, lottery.ErrInvalid) {
		t.Errorf("NewProducer without brokers: %v, want ErrInvalid", err)
	}
	if _, err := invoice.NewConsumer(invoice.ConsumerConfig{}, invoice.NewDistributor(invoicetest.NewGranter())); !errors.Is(err, lottery.ErrInvalid) {
		t.Errorf("NewConsumer without brokers: %v, want ErrInvalid", err)
	}
	if _, err := invoice.NewConsumer(invoice.ConsumerConfig{Brokers: []string{"x:1"}}, nil); !errors.Is(err, lottery.ErrInvalid) {
		t.Errorf("NewConsumer without handler: %v, want ErrInvalid", err)
	}
}
