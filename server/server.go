package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/flashlottery/lottery/analytics"
	"github.com/flashlottery/lottery/configs"
	"github.com/flashlottery/lottery/invoice"
	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/wasm"
)

// Server is the edge: it owns the adapters, the HTTP server and every
// background goroutine.
type Server struct {
	cfg   configs.Config
	log   *slog.Logger
	token string

	svc      *lottery.Service
	modules  *wasm.Host
	relay    *lottery.Relay
	store    ordersStore
	stock    stockStore
	broker   *invoice.Broker // nil with external brokers
	producer *invoice.Producer
	consumer *invoice.Consumer // nil when kafka.consume is off
	dist     *invoice.Distributor
	sink     *analytics.Sink
	events   eventStore
	metrics  *metrics
	native   nativeTrees // rule trees served by the reference evaluator (native_rules.go)

	http *fasthttp.Server
	ln   net.Listener

	// ctx is the server's life; draws derive their deadline from it.
	ctx    context.Context
	cancel context.CancelFunc
	// Background goroutines in shutdown order, each with its own stop.
	jobs, relayG, consumerG, sinkG group
	serveErr                       chan error
	started, stopping              atomic.Bool
	stopOnce                       sync.Once
}

// group is a set of goroutines with one stop.
type group struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (g *group) start(parent context.Context, fns ...func(context.Context)) {
	ctx, cancel := context.WithCancel(parent)
	g.cancel = cancel
	for _, fn := range fns {
		g.wg.Go(func() { fn(ctx) })
	}
}

func (g *group) stop() {
	if g.cancel != nil {
		g.cancel()
	}
	g.wg.Wait()
}

// relayLinger is how long a relay worker waits to fill a batch: invoices
// leave a few milliseconds later, in batches of tens (the draws answered
// before).
const relayLinger = 2 * time.Millisecond

// New validates cfg, opens every adapter (embedded defaults where no
// address is configured), restores stock from the durable record and seeds
// the demo activity when asked. It does not listen yet: call Start.
func New(cfg configs.Config, log *slog.Logger) (s *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	s = &Server{cfg: cfg, log: log, serveErr: make(chan error, 1)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			s.closeAdapters()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if s.token, err = adminToken(cfg); err != nil {
		return nil, err
	}
	if s.store, err = openOrders(s.ctx, cfg); err != nil {
		return nil, err
	}
	if s.stock, err = openStock(cfg); err != nil {
		return nil, err
	}
	brokers := cfg.Kafka.Brokers
	if len(brokers) == 0 {
		s.broker, err = invoice.StartBroker(invoice.BrokerConfig{Addr: cfg.Kafka.EmbeddedAddr, DataDir: filepath.Join(cfg.DataDir, "broker"), Topic: cfg.Kafka.Topic, Retention: cfg.Kafka.Retention})
		if err != nil {
			return nil, fmt.Errorf("embedded broker: %w", err)
		}
		brokers = s.broker.Addrs()
		log.Info("embedded Kafka-protocol broker started", "addrs", brokers)
	} else {
		ensureTopic(cfg, log)
	}
	if s.producer, err = invoice.NewProducer(invoice.ProducerConfig{Brokers: brokers, Topic: cfg.Kafka.Topic, ClientID: fmt.Sprintf("lottery-edge-%d", cfg.Node), Timeout: cfg.Kafka.Timeout}); err != nil {
		return nil, fmt.Errorf("invoice producer: %w", err)
	}
	s.dist = invoice.NewDistributor(s.store)
	if cfg.Kafka.Consume {
		if s.consumer, err = invoice.NewConsumer(invoice.ConsumerConfig{Brokers: brokers, Topic: cfg.Kafka.Topic, Group: cfg.Kafka.Group}, s.dist); err != nil {
			return nil, fmt.Errorf("invoice consumer: %w", err)
		}
	}
	if s.events, err = openEvents(s.ctx, cfg); err != nil {
		return nil, err
	}
	s.sink = analytics.NewSink(s.events, analytics.SinkConfig{Capacity: cfg.Analytics.Capacity, BatchSize: cfg.Analytics.BatchSize, FlushEvery: cfg.Analytics.FlushEvery, RetryMax: time.Second, Logger: log})
	s.relay = lottery.NewRelay(s.producer, s.store, lottery.RelayConfig{Timeout: cfg.Kafka.Timeout, Linger: relayLinger, ConfirmEvery: max(min(500*time.Millisecond, cfg.Jobs.StaleAfter/4), time.Millisecond)})
	modStore, err := openModuleStore(cfg, s.store)
	if err != nil {
		return nil, err
	}
	if s.modules, err = wasm.NewHost(wasm.HostConfig{
		DataDir: filepath.Join(cfg.DataDir, "modules"), Store: modStore, Logger: log,
		MaxModuleBytes: cfg.Modules.MaxBytes, MaxMemoryPages: cfg.Modules.MaxMemoryPages, Fuel: cfg.Modules.Fuel, PoolSize: cfg.Modules.PoolSize,
	}); err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	ids, err := lottery.NewSnowflake(cfg.Node)
	if err != nil {
		return nil, err
	}
	s.svc, err = lottery.NewService(lottery.Deps{
		Catalog: s.store, Orders: s.store, Ledger: s.store, Stock: s.stock, Admin: s.stock,
		Drawer: s.modules, Events: s.sink, Relay: s.relay, IDs: ids,
	}, lottery.ServiceConfig{DrawTimeout: cfg.HTTP.DrawTimeout, CatalogTTL: cfg.Orders.CatalogTTL})
	if err != nil {
		return nil, err
	}
	n, err := s.svc.Restore(s.ctx)
	if err != nil {
		return nil, fmt.Errorf("restore stock: %w", err)
	}
	if cfg.Demo && n == 0 {
		a, st := configs.Demo(time.Now())
		if err := s.svc.Deploy(s.ctx, a, st); err != nil {
			return nil, fmt.Errorf("seed demo activity: %w", err)
		}
		log.Info("demo activity seeded", "activity", a.ID, "stock", a.StockCount)
	}
	s.metrics = newMetrics(s)
	s.http = &fasthttp.Server{
		Handler:                      s.handle,
		Name:                         "lottery-edge",
		MaxRequestBodySize:           cfg.HTTP.MaxBodyBytes,
		ReadTimeout:                  cfg.HTTP.ReadTimeout,
		WriteTimeout:                 cfg.HTTP.WriteTimeout,
		IdleTimeout:                  time.Minute,
		Concurrency:                  cfg.HTTP.Concurrency,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		ReduceMemoryUsage:            false,
		Logger:                       fasthttpLogger{log},
		ErrorHandler:                 s.transportError,
		DisablePreParseMultipartForm: true,
	}
	return s, nil
}

// adminToken returns the configured token or makes one and writes it to
// DataDir/admin.token so operators can read it.
func adminToken(cfg configs.Config) (string, error) {
	if cfg.AdminToken != "" {
		return cfg.AdminToken, nil
	}
	p := filepath.Join(cfg.DataDir, "admin.token")
	// An operator may have written the file with an editor (a trailing
	// newline); the CLI trims what it reads, and so does the edge.
	if b, err := os.ReadFile(p); err == nil {
		if tok := strings.TrimSpace(string(b)); len(tok) >= 16 {
			return tok, nil
		}
	}
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	tok := hex.EncodeToString(buf)
	if err := os.WriteFile(p, []byte(tok), 0o600); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return tok, nil
}

// Start listens (on ln, or on cfg.Addr when ln is nil) and starts the
// background goroutines. It returns once the server accepts connections.
func (s *Server) Start(ln net.Listener) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("server already started")
	}
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			return fmt.Errorf("listen %s: %w", s.cfg.Addr, err)
		}
	}
	s.ln = ln
	s.sinkG.start(s.ctx, s.sink.Run)
	if s.consumer != nil {
		s.consumerG.start(s.ctx, func(ctx context.Context) {
			if err := s.consumer.Run(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("invoice consumer stopped", "err", err)
			}
		})
	}
	s.relayG.start(s.ctx, s.relay.Run)
	s.jobs.start(s.ctx, s.stateJob, s.compensationJob, s.reconcileJob, s.moduleWatcher)
	go func() { s.serveErr <- s.http.Serve(ln) }() // owned: Shutdown stops it and reads serveErr
	s.log.Info("lottery edge listening", "addr", ln.Addr().String())
	return nil
}

// Addr returns the listening address (after Start).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Wait blocks until the HTTP server stops on its own (an accept error).
func (s *Server) Wait() error { return <-s.serveErr }

// degraded lists what keeps a ready edge from serving exactly what the
// cluster's module store says: modules whose store version did not load
// here (the previous version serves), and a store that stopped answering.
func (s *Server) degraded() (failures []wasm.LoadFailure, storeErr string) {
	st := s.modules.Stats()
	if st.StoreErr != nil {
		storeErr = fmt.Sprintf("module store unreachable since %s: %v", st.StoreErrSince.UTC().Format(time.RFC3339), st.StoreErr)
	}
	return s.modules.Failures(), storeErr
}

func (s *Server) ready() error {
	switch {
	case !s.started.Load():
		return errors.New("starting")
	case s.stopping.Load():
		return errors.New("shutting down")
	}
	return nil
}

// Shutdown stops in order: stop taking requests (in-flight ones finish),
// stop the jobs, drain the outbox relay, stop the consumer, flush analytics,
// then close the producer, the broker and the stores.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		s.stopping.Store(true)
		if s.started.Load() {
			err = s.http.ShutdownWithContext(ctx)
		}
		s.jobs.stop()
		s.relayG.stop()
		s.consumerG.stop()
		s.sinkG.stop()
		s.cancel()
		err = errors.Join(err, s.closeAdapters())
	})
	return err
}

func (s *Server) closeAdapters() error {
	var errs []error
	if s.consumer != nil {
		errs = append(errs, s.consumer.Close())
	}
	if s.producer != nil {
		errs = append(errs, s.producer.Close())
	}
	if s.broker != nil {
		s.broker.Close()
	}
	if s.events != nil {
		errs = append(errs, s.events.Close())
	}
	if s.stock != nil {
		errs = append(errs, s.stock.Close())
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
	}
	if s.modules != nil {
		errs = append(errs, s.modules.Close(context.Background()))
	}
	return errors.Join(errs...)
}

func (s *Server) stateJob(ctx context.Context) {
	s.every(ctx, s.cfg.Jobs.StateEvery, func() {
		n, err := s.svc.AdvanceStates(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("activity-state job", "err", err)
		} else if n > 0 {
			s.log.Info("activity-state job moved activities", "moved", n)
		}
	})
}

func (s *Server) compensationJob(ctx context.Context) {
	s.every(ctx, s.cfg.Jobs.CompensateEvery, func() {
		n, err := s.relay.Compensate(ctx, time.Now(), s.cfg.Jobs.StaleAfter)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("outbox compensation scan", "err", err, "resent", n)
		} else if n > 0 {
			s.log.Info("outbox compensation scan re-sent invoices", "resent", n)
		}
	})
}

// reconcileJob writes the stock port's view into the database's surplus
// columns, when the orders store keeps them.
func (s *Server) reconcileJob(ctx context.Context) {
	w := s.store
	s.every(ctx, s.cfg.Jobs.ReconcileEvery, func() {
		if _, err := s.svc.Reconcile(ctx, w); err != nil && ctx.Err() == nil {
			s.log.Warn("stock reconciliation", "err", err)
		}
	})
}

// moduleWatcher follows the module store: every modules.pollEvery it reads
// the store's generation and, when another edge changed a module, loads the
// versions that changed (a version that does not load leaves the previous
// one serving; readyz and the metrics say so).
func (s *Server) moduleWatcher(ctx context.Context) {
	s.modules.Watch(ctx, s.cfg.Modules.PollEvery)
}

// every runs fn now and then every period until ctx ends.
func (s *Server) every(ctx context.Context, period time.Duration, fn func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		fn()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// transportError answers requests fasthttp refused before the handler (a
// body over MaxBodyBytes, a malformed request) with the JSON error shape.
func (s *Server) transportError(ctx *fasthttp.RequestCtx, err error) {
	status, code := 400, codeInvalid
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		status, code = 413, codeTooLarge
	}
	s.writeError(ctx, status, apiError{Code: code, Message: err.Error()})
}

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
}
