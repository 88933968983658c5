package server

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/flashlottery/lottery/configs"
)

// TestClickHouseSummaryMatchesOrders drives draws through an edge whose
// analytics go to a real ClickHouse: afterwards the summary equals the
// orders store exactly (draws, prizes, prizes per award).
func TestClickHouseSummaryMatchesOrders(t *testing.T) {
	addr := os.Getenv("LOTTERY_TEST_CLICKHOUSE")
	if addr == "" {
		t.Skip("LOTTERY_TEST_CLICKHOUSE not set (make test starts ClickHouse and sets it)")
	}
	db := fmt.Sprintf("lottery_test_server_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
		if err == nil {
			_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
			_ = conn.Close()
		}
	})
	e := startEdge(t, func(c *configs.Config) {
		c.Demo = false
		c.Analytics.Backend = "clickhouse"
		c.Analytics.ClickHouse = configs.ClickHouse{Addr: addr, Database: db, Username: "default"}
	})
	e.deployAllWin(7, 150) // stock 150, takeCount 5: the tail of the load sells out
	draws := 0
	for i := range 60 {
		for range 3 {
			e.draw(fmt.Sprintf("user-%d", i), 7)
			draws++
		}
	}
	a := e.audit(7)
	byAward := a["OrdersByAward"].(map[string]any)
	var sum map[string]any
	// Wait for the draws and their awards: the summary's queries of outcomes
	// and of awards run apart, and ClickHouse may show a freshly inserted
	// block to one before the other.
	waitFor(t, "every draw and award in ClickHouse", func() bool {
		_, sum = e.do("GET", "/api/v1/analytics/summary?activityId=7", testToken, nil)
		awards, _ := sum["awards"].(map[string]any)
		var n float64
		for _, v := range awards {
			n += v.(float64)
		}
		return sum["draws"] == float64(draws) && n == sum["wins"]
	})
	if sum["wins"] != a["Orders"] {
		t.Fatalf("ClickHouse counts %v wins, the orders store %v orders", sum["wins"], a["Orders"])
	}
	awards := sum["awards"].(map[string]any)
	for id, n := range byAward {
		if awards[id] != n {
			t.Fatalf("award %s: ClickHouse %v, orders store %v (all: %v vs %v)", id, awards[id], n, awards, byAward)
		}
	}
	if len(awards) != len(byAward) {
		t.Fatalf("awards in ClickHouse %v, in the orders store %v", awards, byAward)
	}
	outcomes := sum["outcomes"].(map[string]any)
	if outcomes["win"] != a["Orders"] || outcomes["sold_out"] != float64(draws)-a["Takes"].(float64) {
		t.Fatalf("outcomes %v against takes %v and orders %v of %d draws", outcomes, a["Takes"], a["Orders"], draws)
	}
}
