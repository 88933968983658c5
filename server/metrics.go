package server

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/flashlottery/lottery/invoice"
	"github.com/flashlottery/lottery/lottery"
)

// metrics holds the edge's Prometheus registry. It is per Server (no global
// registry), so tests can run several servers in one process.
type metrics struct {
	reg      *prometheus.Registry
	draws    map[lottery.Outcome]prometheus.Counter
	other    prometheus.Counter
	latency  prometheus.Histogram
	handler  fasthttp.RequestHandler
	stockFn  func(ctx context.Context) ([]lottery.ActivityView, error)
	stockDsc *prometheus.Desc
}

var outcomes = []lottery.Outcome{lottery.OutcomeWin, lottery.OutcomeLose, lottery.OutcomeSoldOut, lottery.OutcomeLimitReached, lottery.OutcomeNotActive, lottery.OutcomeError, outcomeInvalid}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), draws: make(map[lottery.Outcome]prometheus.Counter)}
	drawVec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lottery_draws_total", Help: "Draw requests by outcome (invalid: refused before the domain; error: failed)."}, []string{"outcome"})
	for _, o := range outcomes {
		m.draws[o] = drawVec.WithLabelValues(string(o))
	}
	m.other = m.draws[lottery.OutcomeError]
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "lottery_draw_duration_seconds", Help: "Draw request latency in the handler.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	})
	m.stockFn = func(ctx context.Context) ([]lottery.ActivityView, error) { return s.svc.Activities(ctx, 0, 1000) }
	m.stockDsc = prometheus.NewDesc("lottery_stock_left", "Activity stock left (live, from the stock port), first 1000 activities.", []string{"activity"}, nil)
	m.reg.MustRegister(drawVec, m.latency, m,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		gaugeFunc("lottery_outbox_backlog", "Invoices queued in the relay, not yet published.", func() float64 { return float64(s.relay.Stats().Queued) }),
		gaugeFunc("lottery_outbox_confirming", "Acknowledged invoices whose mq_state 1 waits for the relay's next confirmation write (every 500ms or staleAfter/4).", func() float64 { return float64(s.relay.Stats().Confirming) }),
		counterFunc("lottery_outbox_unconfirmed_total", "Acknowledged invoices whose mq_state 1 could not be written (left at 0: the compensation scan sends them again).", func() uint64 { return s.relay.Stats().Unconfirmed }),
		counterFunc("lottery_outbox_enqueued_total", "Invoices handed to the relay after their order committed.", func() uint64 { return s.relay.Stats().Enqueued }),
		counterFunc("lottery_outbox_sent_total", "Invoices acknowledged by the broker (relay and compensation).", func() uint64 { return s.relay.Stats().Sent }),
		counterFunc("lottery_outbox_failed_total", "Invoice publications that failed (left mq_state 2 for the scan).", func() uint64 { return s.relay.Stats().Failed }),
		counterFunc("lottery_outbox_dropped_total", "Invoices not queued because the relay queue was full (left to the scan).", func() uint64 { return s.relay.Stats().Dropped }),
		counterFunc("lottery_outbox_compensated_total", "Invoices re-sent by the compensation scan.", func() uint64 { return s.relay.Stats().Compensated }),
		counterFunc("lottery_orders_commits_total", "Group-commit transactions of the orders store.", func() uint64 { return s.store.WriteStats().Commits }),
		counterFunc("lottery_orders_writes_total", "Write requests carried by the group commits (writes/commits is the batch size).", func() uint64 { return s.store.WriteStats().Writes }),
		counterFunc("lottery_orders_retries_total", "Group commits run again after the server rolled them back (a deadlock or lock wait between concurrent batches).", func() uint64 { return s.store.WriteStats().Retries }),
		counterFunc("lottery_orders_blind_total", "Group commits of first takes written without reading the users' count rows first (MySQL).", func() uint64 { return s.store.WriteStats().Blind }),
		counterFunc("lottery_orders_blind_misses_total", "Blind group commits that met an existing count row, rolled back, and were read and written again.", func() uint64 { return s.store.WriteStats().BlindMisses }),
		counterFunc("lottery_orders_fallbacks_total", "Multi-row group commits run again one request at a time because a request failed on its own terms (a duplicate, a row another batch inserted first).", func() uint64 { return s.store.WriteStats().Fallbacks }),
		counterFunc("lottery_analytics_recorded_total", "Draw events handed to the analytics sink.", func() uint64 { return s.sink.Stats().Recorded }),
		counterFunc("lottery_analytics_flushed_total", "Draw events written to the analytics store.", func() uint64 { return s.sink.Stats().Flushed }),
		gaugeFunc("lottery_analytics_buffered", "Draw events waiting in the analytics buffer (bounded by analytics.capacity).", func() float64 { return float64(s.sink.Stats().Buffered) }),
		counterFunc("lottery_analytics_dropped_total", "Draw events dropped because the analytics buffer was full.", func() uint64 { return s.sink.Stats().Dropped }),
		gaugeFunc("lottery_module_generation", "The module store generation this edge has applied.", func() float64 { return float64(s.modules.Stats().Generation) }),
		gaugeFunc("lottery_module_sync_ok", "1 when this edge serves every module's active version in the store and the store answers, else 0 (see /readyz).", func() float64 {
			if st := s.modules.Stats(); st.Failing == 0 && st.StoreErr == nil {
				return 1
			}
			return 0
		}),
		gaugeFunc("lottery_module_failing", "Modules whose active version in the store did not load on this edge (the previous version serves).", func() float64 { return float64(s.modules.Stats().Failing) }),
		counterFunc("lottery_module_load_failures_total", "Attempts to load a module version from the store that failed (retries count).", func() uint64 { return s.modules.Stats().LoadFailures }),
		counterFunc("lottery_module_store_errors_total", "Polls of the module store that failed.", func() uint64 { return s.modules.Stats().StoreErrors }),
		counterFunc("lottery_analytics_flush_errors_total", "Analytics flushes that failed (retried).", func() uint64 { return s.sink.Stats().FlushErrors }),
	)
	m.reg.MustRegister(invoiceCollectors(s.dist, s.consumer)...)
	m.reg.MustRegister(stockCollectors(s.stock)...) // stock_metrics.go
	m.handler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	return m
}

// counterFunc is a counter read from f at each scrape.
func counterFunc(name, help string, f func() uint64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
}

// invoiceCollectors are the prize distributor's metrics, the same on an
// edge and on a worker; consumer is nil where none runs (kafka.consume off).
func invoiceCollectors(dist *invoice.Distributor, consumer *invoice.Consumer) []prometheus.Collector {
	cs := []prometheus.Collector{
		counterFunc("lottery_invoices_delivered_total", "Prizes granted by the distributor (grant_state 0 -> 1).", func() uint64 { return dist.Stats().Granted }),
		counterFunc("lottery_invoices_duplicate_total", "Invoice deliveries that found the prize already granted.", func() uint64 { return dist.Stats().Duplicates }),
	}
	if consumer != nil {
		cs = append(cs, counterFunc("lottery_invoices_retries_total", "Invoice deliveries retried after a failure.", func() uint64 { return consumer.Stats().Retries }))
	}
	return cs
}

// gaugeFunc is a gauge read from f at each scrape.
func gaugeFunc(name, help string, f func() float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
}

// Describe implements prometheus.Collector for the stock gauge.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.stockDsc }

// Collect implements prometheus.Collector: stock left per activity, read live.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	views, err := m.stockFn(ctx)
	if err != nil {
		return // a scrape without the gauge says more than a made-up value
	}
	for _, v := range views {
		ch <- prometheus.MustNewConstMetric(m.stockDsc, prometheus.GaugeValue, float64(v.StockLeft), strconv.FormatInt(v.ID, 10))
	}
}

func (m *metrics) draw(o lottery.Outcome, start time.Time) {
	c, ok := m.draws[o]
	if !ok {
		c = m.other
	}
	c.Inc()
	m.latency.Observe(time.Since(start).Seconds())
}
