package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration of the edge.
type Config struct {
	// Addr is where the HTTP edge listens.
	Addr string `yaml:"addr"`
	// DataDir holds the embedded stores (SQLite, broker log, analytics log).
	DataDir string `yaml:"dataDir"`
	// Node is this edge's number in the cluster (0..1023); it goes into ids.
	Node int64 `yaml:"node"`
	// AdminToken guards the admin endpoints. Empty: a random token is made at
	// start and written to DataDir/admin.token.
	AdminToken string `yaml:"adminToken"`
	// Demo seeds the demo activity at start when no activity exists.
	Demo bool `yaml:"demo"`

	HTTP      HTTP      `yaml:"http"`
	Stock     Stock     `yaml:"stock"`
	Orders    Orders    `yaml:"orders"`
	Kafka     Kafka     `yaml:"kafka"`
	Analytics Analytics `yaml:"analytics"`
	Jobs      Jobs      `yaml:"jobs"`
	Modules   Modules   `yaml:"modules"`
}

// HTTP tunes the fasthttp server.
type HTTP struct {
	// MaxBodyBytes bounds any request body; larger ones are refused by the server.
	MaxBodyBytes int `yaml:"maxBodyBytes"`
	// MaxDrawBodyBytes bounds a draw request body.
	MaxDrawBodyBytes int           `yaml:"maxDrawBodyBytes"`
	ReadTimeout      time.Duration `yaml:"readTimeout"`
	WriteTimeout     time.Duration `yaml:"writeTimeout"`
	// DrawTimeout bounds one draw end to end.
	DrawTimeout time.Duration `yaml:"drawTimeout"`
	Concurrency int           `yaml:"concurrency"`
}

// Stock configures the stock port.
type Stock struct {
	// Backend is "memory" (embedded default) or "redis".
	Backend string `yaml:"backend"`
	Redis   Redis  `yaml:"redis"`
}

// Redis configures the Redis sliding stock.
type Redis struct {
	Addr     string `yaml:"addr"`
	Password string `yaml:"password"`
	DB       int    `yaml:"db"`
	Prefix   string `yaml:"prefix"`
	// Mode is "lua" (one round trip, exact) or "lock" (the seed's INCR and slot lock).
	Mode string `yaml:"mode"`
	// Shards splits a hot activity's stock over this many keys.
	Shards  int           `yaml:"shards"`
	Timeout time.Duration `yaml:"timeout"`
}

// Orders configures the orders store and its sharding.
type Orders struct {
	// Backend is "sqlite" (embedded default) or "mysql".
	Backend string `yaml:"backend"`
	DBCount int    `yaml:"dbCount"`
	TBCount int    `yaml:"tbCount"`
	MySQL   MySQL  `yaml:"mysql"`
	// CatalogTTL is how long an edge caches an activity and its strategy:
	// a change made through another edge (a deploy, a state move) reaches
	// this one within it and the one catalog read that follows (never
	// later than twice it). Changes made through this edge apply at once.
	CatalogTTL time.Duration `yaml:"catalogTTL"`
}

// Modules configures where rule and draw modules persist and how an edge
// learns of changes made through the others.
type Modules struct {
	// Store is "file" (DataDir/modules, one edge) or "mysql" (the orders
	// base database, shared by every edge of a cluster). Empty: mysql when
	// orders.backend is mysql, else file.
	Store string `yaml:"store"`
	// PollEvery is how often the edge reads the store's generation and, when
	// it moved, loads the versions that changed: an upload or rollback on
	// one edge serves on the others within about this period.
	PollEvery time.Duration `yaml:"pollEvery"`
	// The sandbox of every module (zero: the host's defaults, right for
	// the built-in, compiled-tree and AssemblyScript modules). A Go (wasip1)
	// guest needs about maxBytes 4 MiB and maxMemoryPages 64.
	//
	// MaxBytes caps an upload (default 1 MiB; at most http.maxBodyBytes).
	MaxBytes int `yaml:"maxBytes"`
	// MaxMemoryPages caps an instance's memory in 64 KiB pages (default 16).
	MaxMemoryPages uint32 `yaml:"maxMemoryPages"`
	// Fuel is the instruction budget of one call (default 10,000,000).
	Fuel int64 `yaml:"fuel"`
	// PoolSize is the number of instances per module version (default
	// 2 x GOMAXPROCS).
	PoolSize int `yaml:"poolSize"`
}

// ModuleStore returns the module store in effect: Modules.Store, or its
// default for the orders backend.
func (c *Config) ModuleStore() string {
	if c.Modules.Store != "" {
		return c.Modules.Store
	}
	if c.Orders.Backend == "mysql" {
		return "mysql"
	}
	return "file"
}

// MySQL configures the MySQL (MariaDB) orders store: one DSN for the base
// database and one per shard database (dbCount of them).
type MySQL struct {
	Base   string   `yaml:"base"`
	Shards []string `yaml:"shards"`
}

// Kafka configures the invoice broker. No brokers means the embedded broker.
type Kafka struct {
	Brokers []string `yaml:"brokers"`
	Topic   string   `yaml:"topic"`
	Group   string   `yaml:"group"`
	// EmbeddedAddr is where the embedded broker listens ("127.0.0.1:0" picks a port).
	EmbeddedAddr string `yaml:"embeddedAddr"`
	// Retention is how long the embedded broker keeps an invoice.
	Retention time.Duration `yaml:"retention"`
	Timeout   time.Duration `yaml:"timeout"`
	// Consume runs the invoice consumer (the distributor) in this process.
	Consume bool `yaml:"consume"`
}

// Analytics configures the draw-event sink.
type Analytics struct {
	// Backend is "embedded" (default) or "clickhouse".
	Backend    string        `yaml:"backend"`
	ClickHouse ClickHouse    `yaml:"clickhouse"`
	Capacity   int           `yaml:"capacity"`
	BatchSize  int           `yaml:"batchSize"`
	FlushEvery time.Duration `yaml:"flushEvery"`
}

// ClickHouse configures the ClickHouse analytics store (native protocol).
type ClickHouse struct {
	Addr     string `yaml:"addr"`
	Database string `yaml:"database"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Jobs configures the in-process scheduled jobs.
type Jobs struct {
	// StateEvery is the period of the activity-state job.
	StateEvery time.Duration `yaml:"stateEvery"`
	// CompensateEvery is the period of the outbox compensation scan.
	CompensateEvery time.Duration `yaml:"compensateEvery"`
	// StaleAfter is how old an unconfirmed (mq_state 0) order must be before
	// the scan re-sends it.
	StaleAfter time.Duration `yaml:"staleAfter"`
	// ReconcileEvery is the period of the stock reconciliation (database
	// surplus columns from the stock port).
	ReconcileEvery time.Duration `yaml:"reconcileEvery"`
}

// Default returns the embedded-mode configuration: every port on its
// in-process default, data under ./data, the demo activity seeded.
func Default() Config {
	return Config{
		Addr:    "127.0.0.1:8080",
		DataDir: "data",
		Demo:    true,
		HTTP: HTTP{
			MaxBodyBytes:     8 << 20,
			MaxDrawBodyBytes: 4 << 10,
			ReadTimeout:      10 * time.Second,
			WriteTimeout:     10 * time.Second,
			DrawTimeout:      2 * time.Second,
			Concurrency:      256 * 1024,
		},
		Stock:     Stock{Backend: "memory", Redis: Redis{Prefix: "lottery:", Mode: "lua", Shards: 1, Timeout: 50 * time.Millisecond}},
		Orders:    Orders{Backend: "sqlite", DBCount: 2, TBCount: 4, CatalogTTL: 500 * time.Millisecond},
		Kafka:     Kafka{Topic: "lottery_invoice", Group: "lottery_invoice_distributor", EmbeddedAddr: "127.0.0.1:0", Retention: 7 * 24 * time.Hour, Timeout: 5 * time.Second, Consume: true},
		Analytics: Analytics{Backend: "embedded", ClickHouse: ClickHouse{Database: "lottery", Username: "default"}, Capacity: 1 << 16, BatchSize: 4096, FlushEvery: time.Second},
		Jobs:      Jobs{StateEvery: 5 * time.Second, CompensateEvery: 10 * time.Second, StaleAfter: 30 * time.Second, ReconcileEvery: 10 * time.Second},
		Modules:   Modules{PollEvery: 200 * time.Millisecond},
	}
}

// MaxConfigBytes bounds a config file.
const MaxConfigBytes = 1 << 20

// Load reads a YAML file over the defaults. Unknown keys are errors. The
// result is not validated: call Validate after ApplyEnv and flags.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Default(), fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(b)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes a YAML document over the defaults, as Load does a file: at
// most MaxConfigBytes, unknown keys are errors, the result not validated.
func Parse(b []byte) (Config, error) {
	cfg := Default()
	if len(b) > MaxConfigBytes {
		return cfg, fmt.Errorf("%d bytes, more than %d", len(b), MaxConfigBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, err
	}
	return cfg, nil
}

// ApplyEnv overrides fields from the environment: LOTTERY_ADMIN_TOKEN,
// LOTTERY_ADDR, LOTTERY_DATA.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if v := getenv("LOTTERY_ADMIN_TOKEN"); v != "" {
		c.AdminToken = v
	}
	if v := getenv("LOTTERY_ADDR"); v != "" {
		c.Addr = v
	}
	if v := getenv("LOTTERY_DATA"); v != "" {
		c.DataDir = v
	}
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("addr %q: %v", c.Addr, err)
	}
	if c.DataDir == "" {
		bad("dataDir is required")
	}
	if c.Node < 0 || c.Node > 1023 {
		bad("node must be in 0..1023")
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		bad("adminToken must be at least 16 characters")
	}
	if c.HTTP.MaxBodyBytes < 1<<10 || c.HTTP.MaxBodyBytes > 64<<20 {
		bad("http.maxBodyBytes must be in 1KiB..64MiB")
	}
	if c.HTTP.MaxDrawBodyBytes < 64 || c.HTTP.MaxDrawBodyBytes > c.HTTP.MaxBodyBytes {
		bad("http.maxDrawBodyBytes must be in 64..maxBodyBytes")
	}
	for name, d := range map[string]time.Duration{"http.readTimeout": c.HTTP.ReadTimeout, "http.writeTimeout": c.HTTP.WriteTimeout, "http.drawTimeout": c.HTTP.DrawTimeout, "kafka.timeout": c.Kafka.Timeout, "analytics.flushEvery": c.Analytics.FlushEvery, "jobs.stateEvery": c.Jobs.StateEvery, "jobs.compensateEvery": c.Jobs.CompensateEvery, "jobs.staleAfter": c.Jobs.StaleAfter, "jobs.reconcileEvery": c.Jobs.ReconcileEvery, "orders.catalogTTL": c.Orders.CatalogTTL, "modules.pollEvery": c.Modules.PollEvery} {
		if d <= 0 || d > 24*time.Hour {
			bad("%s must be positive and at most 24h", name)
		}
	}
	if c.HTTP.Concurrency <= 0 {
		bad("http.concurrency must be positive")
	}
	switch c.Stock.Backend {
	case "memory":
	case "redis":
		if _, _, err := net.SplitHostPort(c.Stock.Redis.Addr); err != nil {
			bad("stock.redis.addr %q: %v", c.Stock.Redis.Addr, err)
		}
		if c.Stock.Redis.Mode != "lua" && c.Stock.Redis.Mode != "lock" {
			bad("stock.redis.mode must be lua or lock")
		}
		if c.Stock.Redis.Shards < 1 || c.Stock.Redis.Shards > 64 {
			bad("stock.redis.shards must be in 1..64")
		}
		if c.Stock.Redis.Timeout <= 0 || c.Stock.Redis.Timeout > time.Minute {
			bad("stock.redis.timeout must be positive and at most 1m")
		}
	default:
		bad("stock.backend %q: memory or redis", c.Stock.Backend)
	}
	switch c.Orders.Backend {
	case "sqlite":
	case "mysql":
		if c.Orders.MySQL.Base == "" {
			bad("orders.mysql.base (a DSN) is required")
		}
		if len(c.Orders.MySQL.Shards) != c.Orders.DBCount {
			bad("orders.mysql.shards must list dbCount (%d) DSNs", c.Orders.DBCount)
		}
	default:
		bad("orders.backend %q: sqlite or mysql", c.Orders.Backend)
	}
	switch c.Modules.Store {
	case "", "file":
	case "mysql":
		if c.Orders.Backend != "mysql" {
			bad("modules.store mysql needs orders.backend mysql (the modules live in its base database)")
		}
	default:
		bad("modules.store %q: file or mysql", c.Modules.Store)
	}
	if m := c.Modules; m.MaxBytes < 0 || m.MaxBytes > c.HTTP.MaxBodyBytes {
		bad("modules.maxBytes must be in 0..http.maxBodyBytes (%d)", c.HTTP.MaxBodyBytes)
	}
	if m := c.Modules; m.MaxMemoryPages > 16384 {
		bad("modules.maxMemoryPages must be at most 16384 (1 GiB)")
	}
	if m := c.Modules; m.Fuel < 0 || m.Fuel > 10_000_000_000 {
		bad("modules.fuel must be in 0..10000000000")
	}
	if m := c.Modules; m.PoolSize < 0 || m.PoolSize > 1024 {
		bad("modules.poolSize must be in 0..1024")
	}
	if c.Orders.DBCount < 1 || c.Orders.DBCount > 64 || c.Orders.TBCount < 1 || c.Orders.TBCount > 64 {
		bad("orders.dbCount and orders.tbCount must be in 1..64")
	}
	if c.Kafka.Topic == "" || c.Kafka.Group == "" {
		bad("kafka.topic and kafka.group are required")
	}
	for _, b := range c.Kafka.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			bad("kafka.brokers %q: %v", b, err)
		}
	}
	if len(c.Kafka.Brokers) == 0 {
		if _, _, err := net.SplitHostPort(c.Kafka.EmbeddedAddr); err != nil {
			bad("kafka.embeddedAddr %q: %v", c.Kafka.EmbeddedAddr, err)
		}
		if c.Kafka.Retention < time.Minute {
			bad("kafka.retention %s: want at least 1m", c.Kafka.Retention)
		}
	}
	switch c.Analytics.Backend {
	case "embedded":
	case "clickhouse":
		if _, _, err := net.SplitHostPort(c.Analytics.ClickHouse.Addr); err != nil {
			bad("analytics.clickhouse.addr %q: %v", c.Analytics.ClickHouse.Addr, err)
		}
		if c.Analytics.ClickHouse.Database == "" {
			bad("analytics.clickhouse.database is required")
		}
	default:
		bad("analytics.backend %q: embedded or clickhouse", c.Analytics.Backend)
	}
	if c.Analytics.Capacity < 1 || c.Analytics.BatchSize < 1 || c.Analytics.BatchSize > c.Analytics.Capacity {
		bad("analytics.capacity and analytics.batchSize must be positive, batchSize <= capacity")
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid config: %w", errors.Join(errs...))
	}
	return nil
}
