package server

import (
	"context"
	"testing"
	"time"

	"github.com/flashlottery/lottery/configs"
	"github.com/flashlottery/lottery/invoice"
)

// TestWorkerDelivers runs the distributor apart from the edge: the edge
// publishes, a Worker on the same store and broker grants.
func TestWorkerDelivers(t *testing.T) {
	b, err := invoice.StartBroker(invoice.BrokerConfig{Addr: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	var cfg configs.Config
	e := startEdge(t, func(c *configs.Config) {
		c.Kafka.Brokers, c.Kafka.Consume, c.Demo = b.Addrs(), false, false
		cfg = *c
	})
	e.deployAllWin(7, 100)
	for _, u := range []string{"a", "b", "c"} {
		if st, m := e.draw(u, 7); st != 200 || m["outcome"] != "win" {
			t.Fatalf("draw: %d %v", st, m)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if got := e.audit(7)["ByGrantState"].(map[string]any)["1"]; got != nil {
		t.Fatalf("granted without a distributor: %v", got)
	}
	w, err := NewWorker(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, "127.0.0.1:0") }()
	waitFor(t, "worker grants", func() bool { return e.audit(7)["ByGrantState"].(map[string]any)["1"] == float64(3) })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("worker: %v", err)
	}
	cfg.Kafka.Brokers = nil
	if _, err := NewWorker(cfg, nil); err == nil {
		t.Fatal("a worker without brokers started")
	}
}
