package orders

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MySQLTestServer returns the test server's DSN config from
// LOTTERY_TEST_MYSQL, or skips the test when it is not set.
func MySQLTestServer(t testing.TB) *mysql.Config {
	t.Helper()
	dsn := os.Getenv("LOTTERY_TEST_MYSQL")
	if dsn == "" {
		t.Skip("LOTTERY_TEST_MYSQL is not set: MariaDB tests skipped " +
			"(`make services` starts one; `. .services/env` sets LOTTERY_TEST_MYSQL='root@tcp(127.0.0.1:13306)/')")
	}
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("LOTTERY_TEST_MYSQL: %v", err)
	}
	return mc
}

// MySQLTestConfig returns a configuration over a base database and
// router.DBCount shard databases with fresh, unique names
// (lottery_test_<random>, lottery_test_<random>_00, ...) on the test
// server. OpenMySQL creates them; the test's cleanup drops them, and only
// them.
func MySQLTestConfig(t testing.TB, router Router) MySQLConfig {
	t.Helper()
	mc := MySQLTestServer(t)
	prefix := fmt.Sprintf("lottery_test_%08x", rand.Uint32())
	names := []string{prefix}
	for i := range router.DBCount {
		names = append(names, fmt.Sprintf("%s_%02d", prefix, i))
	}
	dsn := func(name string) string {
		c := mc.Clone()
		c.DBName = name
		return c.FormatDSN()
	}
	t.Cleanup(func() { dropTestDatabases(t, mc, names) })
	cfg := MySQLConfig{Base: dsn(names[0]), Router: router}
	for _, name := range names[1:] {
		cfg.Shards = append(cfg.Shards, dsn(name))
	}
	return cfg
}

func dropTestDatabases(t testing.TB, mc *mysql.Config, names []string) {
	server := mc.Clone()
	server.DBName = ""
	db, err := sql.Open("mysql", server.FormatDSN())
	if err != nil {
		t.Errorf("drop test databases: %v", err)
		return
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range names {
		if !strings.HasPrefix(name, "lottery_test_") {
			panic("orders test: refusing to drop " + name)
		}
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(name)); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	}
}

// MySQLTestDatabases returns the names of cfg's databases, base first.
func MySQLTestDatabases(t testing.TB, cfg MySQLConfig) []string {
	t.Helper()
	var names []string
	for _, dsn := range append([]string{cfg.Base}, cfg.Shards...) {
		mc, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, mc.DBName)
	}
	return names
}

// MySQLTestServerDB opens a pool on the test server, on no database; the
// test's cleanup closes it.
func MySQLTestServerDB(t testing.TB) *sql.DB {
	t.Helper()
	mc := MySQLTestServer(t)
	mc.DBName = ""
	db, err := sql.Open("mysql", mc.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// HoldCountRow locks user's count row of activity 1 in the
// shard database at dsn, from a connection of its own, as another edge
// would, and checks that its left count is want. Committing the returned
// transaction frees the row; the test's cleanup rolls back one left open.
func HoldCountRow(t testing.TB, dsn string, user string, want int) *sql.Tx {
	t.Helper()
	other, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	ctx := t.Context()
	tx, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT left_count FROM `+TableTakeCount+
		` WHERE user_id = ? AND activity_id = 1 FOR UPDATE`, user).Scan(&n); err != nil || n != want {
		t.Fatalf("lock the count row: left %d, %v", n, err)
	}
	return tx
}
