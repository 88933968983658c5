package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flashlottery/lottery/configs"
	"github.com/flashlottery/lottery/invoice"
)

// Worker is the prize distributor run apart from the edges (`lottery
// worker`): it consumes invoices from the broker and grants them in the
// orders store, idempotently, and serves /metrics on its own address.
type Worker struct {
	cfg      configs.Config
	log      *slog.Logger
	store    ordersStore
	consumer *invoice.Consumer
	dist     *invoice.Distributor
}

// NewWorker opens the orders store and a consumer of the configured brokers.
// A worker needs brokers: the embedded broker lives inside an edge.
func NewWorker(cfg configs.Config, log *slog.Logger) (w *Worker, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Kafka.Brokers) == 0 {
		return nil, errors.New("worker: kafka.brokers is empty; a worker consumes from a shared broker (the embedded one lives inside an edge)")
	}
	if log == nil {
		log = slog.Default()
	}
	w = &Worker{cfg: cfg, log: log}
	if w.store, err = openOrders(context.Background(), cfg); err != nil {
		return nil, err
	}
	ensureTopic(cfg, log)
	w.dist = invoice.NewDistributor(w.store, invoice.WithLogger(log))
	if w.consumer, err = invoice.NewConsumer(invoice.ConsumerConfig{Brokers: cfg.Kafka.Brokers, Topic: cfg.Kafka.Topic, Group: cfg.Kafka.Group, Logger: log}, w.dist); err != nil {
		_ = w.store.Close()
		return nil, fmt.Errorf("worker: %w", err)
	}
	return w, nil
}

// Run consumes until ctx ends, serving metrics on metricsAddr when it is
// not empty, then closes the consumer and the store.
func (w *Worker) Run(ctx context.Context, metricsAddr string) error {
	var srv *http.Server
	if metricsAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector())
		reg.MustRegister(invoiceCollectors(w.dist, w.consumer)...)
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			return fmt.Errorf("worker metrics: %w", err)
		}
		srv = &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}
		go func() { _ = srv.Serve(ln) }() // owned: shut down below
		w.log.Info("worker metrics", "addr", ln.Addr().String())
	}
	w.log.Info("prize distributor consuming", "brokers", w.cfg.Kafka.Brokers, "topic", w.cfg.Kafka.Topic, "group", w.cfg.Kafka.Group)
	err := w.consumer.Run(ctx)
	if srv != nil {
		_ = srv.Close()
	}
	return errors.Join(err, w.consumer.Close(), w.store.Close())
}
