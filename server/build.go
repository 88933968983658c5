package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/flashlottery/lottery/analytics"
	"github.com/flashlottery/lottery/configs"
	"github.com/flashlottery/lottery/invoice"
	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/orders"
	"github.com/flashlottery/lottery/stock"
)

// ordersStore is what the server needs from an orders backend: the domain's
// ports plus the audit, the group-commit counters and Close.
type ordersStore interface {
	lottery.Orders
	lottery.Outbox
	lottery.Granter
	lottery.CatalogAdmin
	lottery.Ledger
	Audit(ctx context.Context, activityID int64) (orders.Audit, error)
	lottery.SurplusWriter
	WriteStats() orders.WriteStats
	Close() error
}

// stockStore is what the server needs from a stock backend.
type stockStore interface {
	lottery.Stock
	lottery.StockAdmin
	Close() error
}

// eventStore is what the server needs from an analytics backend.
type eventStore interface {
	analytics.Store
	analytics.Querier
	Close() error
}

// memoryStock adapts stock.Memory (which holds nothing to close).
type memoryStock struct{ *stock.Memory }

func (memoryStock) Close() error { return nil }

// openOrders opens the configured orders backend.
func openOrders(ctx context.Context, cfg configs.Config) (ordersStore, error) {
	router, err := orders.NewRouter(cfg.Orders.DBCount, cfg.Orders.TBCount)
	if err != nil {
		return nil, err
	}
	switch cfg.Orders.Backend {
	case "sqlite":
		st, err := orders.OpenSQLite(filepath.Join(cfg.DataDir, "orders"), router)
		if err != nil {
			return nil, fmt.Errorf("orders: %w", err)
		}
		return st, nil
	case "mysql":
		st, err := orders.OpenMySQL(ctx, orders.MySQLConfig{Base: cfg.Orders.MySQL.Base, Shards: cfg.Orders.MySQL.Shards, Router: router})
		if err != nil {
			return nil, fmt.Errorf("orders: %w", err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("orders backend %q is not available in this build", cfg.Orders.Backend)
}

// openStock opens the configured stock backend.
func openStock(cfg configs.Config) (stockStore, error) {
	switch cfg.Stock.Backend {
	case "memory":
		return memoryStock{stock.NewMemory()}, nil
	case "redis":
		r := cfg.Stock.Redis
		st, err := stock.NewRedis(stock.RedisConfig{
			Addr: r.Addr, Password: r.Password, DB: r.DB, Prefix: r.Prefix, Mode: r.Mode, Shards: r.Shards,
			DialTimeout: r.Timeout, ReadTimeout: r.Timeout, WriteTimeout: r.Timeout,
		})
		if err != nil {
			return nil, fmt.Errorf("stock: %w", err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("stock backend %q is not available in this build", cfg.Stock.Backend)
}

// ensureTopic creates the invoice topic on cfg.Kafka.Brokers if it is
// missing. A failure is only logged: the producer and consumer say soon
// enough if the topic is missing.
func ensureTopic(cfg configs.Config, log *slog.Logger) {
	if err := invoice.EnsureTopic(cfg.Kafka.Brokers, cfg.Kafka.Topic, invoice.DefaultPartitions, cfg.Kafka.Timeout); err != nil {
		log.Warn("invoice topic not ensured", "topic", cfg.Kafka.Topic, "err", err)
	}
}

// openEvents opens the configured analytics backend.
func openEvents(ctx context.Context, cfg configs.Config) (eventStore, error) {
	switch cfg.Analytics.Backend {
	case "embedded":
		ev, err := analytics.OpenEmbedded(filepath.Join(cfg.DataDir, "analytics"))
		if err != nil {
			return nil, fmt.Errorf("analytics: %w", err)
		}
		return ev, nil
	case "clickhouse":
		c := cfg.Analytics.ClickHouse
		ch, err := analytics.OpenClickHouse(ctx, analytics.ClickHouseConfig{Addr: c.Addr, Database: c.Database, Username: c.Username, Password: c.Password})
		if err != nil {
			return nil, fmt.Errorf("analytics: %w", err)
		}
		if err := ch.Migrate(ctx); err != nil {
			_ = ch.Close()
			return nil, fmt.Errorf("analytics: %w", err)
		}
		return ch, nil
	}
	return nil, fmt.Errorf("analytics backend %q is not available in this build", cfg.Analytics.Backend)
}

// Migrate creates or updates the configured orders store's databases and
// tables (opening a store migrates it) and closes it.
func Migrate(ctx context.Context, cfg configs.Config) error {
	st, err := openOrders(ctx, cfg)
	if err != nil {
		return err
	}
	return st.Close()
}
