// Command lottery is the flash-sale lottery edge: one binary that serves,
// migrates, drives load, and administers a running edge (analytics, rules,
// modules). It only wires: flags and config into the packages that do the
// work, and admin requests to the edge's API.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/rcrowley/go-metrics"

	"github.com/flashlottery/lottery/configs"
	"github.com/flashlottery/lottery/invoice"
	"github.com/flashlottery/lottery/loadgen"
	"github.com/flashlottery/lottery/server"
)

const usage = `lottery: a flash-sale lottery edge

usage:
  lottery serve   [--config FILE] [--addr HOST:PORT] [--data DIR]   run the edge (embedded defaults without a config)
  lottery migrate [--config FILE] [--data DIR]                      create or update the store's tables
  lottery bench   [--url URL] [--requests N] [--concurrency C] [--users U] [--activity ID] [--verify]
                                                                    drive draws and verify stock, prizes, orders and invoices
  lottery bare    [--addr HOST:PORT]                                a bare fasthttp handler, the benchmark baseline
  lottery benchsuite [--out BENCHMARKS.md] [--profiles LIST]        bare handler vs the draw endpoint of each edge profile (make bench)
  lottery analytics summary|awards|timeline|latency|modules --activity ID [--from T] [--to T] [--step D]
                                                                    print an analytics query of a running edge
  lottery rules   compile FILE [--out F.wasm] | test FILE --attrs JSON | push FILE
                                                                    compile, try and upload a rule tree (JSON or YAML)
  lottery modules list | push NAME draw|rule FILE.wasm | rollback NAME SHA256
                                                                    manage the Wasm modules of a running edge
  lottery worker  [--config FILE] [--metrics HOST:PORT]              the prize distributor apart from the edges (needs kafka.brokers)
  lottery broker  [--addr HOST:PORT] [--data DIR]                   a standalone Kafka-protocol broker (kfake) for machines without Kafka
`

func main() {
	// sarama records histograms and meters of every request into
	// go-metrics, which nothing here exports; in an edge that publishes and
	// consumes an invoice per winning draw that bookkeeping costs about 2% of
	// its CPU. The switch is go-metrics' own, process-wide, so it is the
	// binary's choice, made before any client exists.
	metrics.UseNilMetrics = true
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(ctx, os.Args[2:])
	case "migrate":
		err = migrate(ctx, os.Args[2:])
	case "bench":
		err = bench(ctx, os.Args[2:])
	case "bare":
		err = bare(ctx, os.Args[2:])
	case "benchsuite":
		err = benchsuite(ctx, os.Args[2:])
	case "broker":
		err = broker(ctx, os.Args[2:])
	case "worker":
		err = worker(ctx, os.Args[2:])
	case "analytics":
		err = analyticsCmd(ctx, os.Args[2:])
	case "rules":
		err = rulesCmd(ctx, os.Args[2:])
	case "modules":
		err = modulesCmd(ctx, os.Args[2:])
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "lottery: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lottery:", err)
		os.Exit(1)
	}
}

// loadConfig reads --config (or the defaults), the environment and the flags, then validates once.
func loadConfig(fs *flag.FlagSet, args []string) (configs.Config, error) {
	path := fs.String("config", "", "YAML config file (default: embedded defaults)")
	addr := fs.String("addr", "", "listen address, overrides the config")
	data := fs.String("data", "", "data directory, overrides the config")
	if err := fs.Parse(args); err != nil {
		return configs.Config{}, err
	}
	cfg := configs.Default()
	if *path != "" {
		var err error
		if cfg, err = configs.Load(*path); err != nil {
			return cfg, err
		}
	}
	cfg.ApplyEnv(os.Getenv)
	if *addr != "" {
		cfg.Addr = *addr
	}
	if *data != "" {
		cfg.DataDir = *data
	}
	return cfg, cfg.Validate()
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memprofile := fs.String("memprofile", "", "write a heap profile to this file at shutdown (what is live, after a GC)")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	srv, err := server.New(cfg, log)
	if err != nil {
		return err
	}
	if err := srv.Start(nil); err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	log.Info("admin token", "file", filepath.Join(cfg.DataDir, "admin.token"), "hint", "Authorization: Bearer $(cat "+filepath.Join(cfg.DataDir, "admin.token")+")")
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-waitErr(srv):
		log.Error("server stopped", "err", err)
	}
	if *memprofile != "" { // before the shutdown releases what the edge held
		if err := writeHeapProfile(*memprofile); err != nil {
			log.Error("heap profile", "err", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// writeHeapProfile writes what is live on the heap, after a collection.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func waitErr(srv *server.Server) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- srv.Wait() }() // ends when the HTTP server stops
	return ch
}

func migrate(ctx context.Context, args []string) error {
	cfg, err := loadConfig(flag.NewFlagSet("migrate", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	if err := server.Migrate(ctx, cfg); err != nil {
		return err
	}
	fmt.Printf("migrated the %s orders store (%d databases x %d tables)\n", cfg.Orders.Backend, cfg.Orders.DBCount, cfg.Orders.TBCount)
	return nil
}

func bench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var cfg loadgen.Config
	admin := addAdminFlags(fs) // --url, and --token and --data for verify
	fs.IntVar(&cfg.Requests, "requests", 20000, "total draw requests")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "connections")
	fs.IntVar(&cfg.Users, "users", 10000, "distinct user ids")
	fs.StringVar(&cfg.UserPrefix, "user-prefix", "", "user id prefix (default: a fresh one per run)")
	fs.Int64Var(&cfg.ActivityID, "activity", configs.DemoActivityID, "activity id")
	fs.StringVar(&cfg.Path, "path", "/api/v1/draw", "endpoint")
	verify := fs.Bool("verify", true, "verify stock, prizes, orders and invoices afterwards (needs the admin token)")
	wait := fs.Duration("wait", 60*time.Second, "how long verification waits for invoices to be delivered")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.URL = *admin.url
	if cfg.UserPrefix == "" {
		cfg.UserPrefix = fmt.Sprintf("b%x-", time.Now().UnixNano()&0xffffff)
	}
	if !*quiet && !*asJSON {
		cfg.Progress = os.Stderr
	}
	var tok string
	if *verify { // find the token before the load, not after it
		var err error
		if tok, err = admin.adminToken(); err != nil {
			return fmt.Errorf("verify needs the admin token: --token, LOTTERY_ADMIN_TOKEN or %s: %w", filepath.Join(*admin.data, "admin.token"), err)
		}
	}
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	out := struct {
		loadgen.Result
		Verify *loadgen.Report `json:"verify,omitempty"`
	}{Result: res}
	if *verify {
		rep, err := loadgen.Verify(ctx, cfg.URL, tok, cfg.ActivityID, *wait)
		if err != nil {
			return err
		}
		out.Verify = &rep
	}
	if *asJSON {
		if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
			return err
		}
	} else {
		fmt.Print(res.Format())
		if out.Verify != nil {
			fmt.Print(out.Verify.Format())
		}
	}
	if out.Verify != nil && len(out.Verify.Violations) > 0 {
		return fmt.Errorf("verification failed: %s", strings.Join(out.Verify.Violations, "; "))
	}
	return nil
}

func bare(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bare", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return loadgen.ServeBare(ctx, *addr, io.Discard)
}

func broker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	cfg := invoice.BrokerConfig{}
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:9092", "listen address (the address clients are told to use)")
	fs.StringVar(&cfg.DataDir, "data", "data/broker", "data directory (messages and committed offsets survive restarts)")
	fs.StringVar(&cfg.Topic, "topic", invoice.DefaultTopic, "topic to create")
	fs.IntVar(&cfg.Partitions, "partitions", invoice.DefaultPartitions, "partitions of the topic")
	fs.DurationVar(&cfg.Retention, "retention", invoice.DefaultRetention, "how long a message is kept")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	b, err := invoice.StartBroker(cfg)
	if err != nil {
		return err
	}
	cfg.Logger.Info("Kafka-protocol broker listening", "addrs", b.Addrs(), "data", cfg.DataDir, "topic", cfg.Topic, "retention", cfg.Retention)
	<-ctx.Done()
	b.Close()
	return nil
}

func worker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	metrics := fs.String("metrics", "", "serve Prometheus metrics on this address")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	w, err := server.NewWorker(cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return err
	}
	return w.Run(ctx, *metrics)
}
