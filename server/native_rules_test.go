package server

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/flashlottery/lottery/configs"
)

// TestNativeTree registers the seed's tree for the native evaluator, then
// compiled: both engines pick the same activities through /api/v1/draw/rule,
// and the compiled registration takes over from the native one.
func TestNativeTree(t *testing.T) {
	e := startEdge(t, nil)
	tree, err := os.ReadFile("../rules/testdata/seed_tree.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		attrs    string
		status   int
		activity float64
	}{
		{`{"userGender":"man","userAge":20}`, 200, 100001},
		{`{"userGender":"man","userAge":30}`, 404, 0}, // activity 100002 does not exist
		{`{"userGender":"other"}`, 409, 0},
		{`{"userAge":"old"}`, 400, 0},
	}
	drawAll := func(engine string) {
		t.Helper()
		for i, c := range cases {
			st, m := e.do("POST", "/api/v1/draw/rule", "", fmt.Appendf(nil, `{"userId":"%s-%d","treeId":"seed-gender-age","attributes":%s}`, engine, i, c.attrs))
			if st != c.status || (c.activity != 0 && m["activityId"] != c.activity) {
				t.Errorf("%s engine, %s: %d %v, want %d activity %v", engine, c.attrs, st, m, c.status, c.activity)
			}
		}
	}
	if st, m := e.do("POST", "/api/v1/rules/trees?engine=native", testToken, tree); st != 201 || m["engine"] != "native" {
		t.Fatalf("native tree: %d %v", st, m)
	}
	drawAll("native")
	if st, m := e.do("GET", "/api/v1/modules", testToken, nil); st != 200 || strings.Contains(fmt.Sprint(m), "tree/seed-gender-age") {
		t.Fatalf("a native tree registered a module: %d %v", st, m)
	}
	if st, m := e.do("POST", "/api/v1/rules/trees?engine=wasm", testToken, tree); st != 201 || m["treeId"] != "seed-gender-age" {
		t.Fatalf("compiled tree: %d %v", st, m)
	}
	if e.srv.native.get("seed-gender-age") != nil {
		t.Fatal("the compiled registration left the native tree serving")
	}
	drawAll("wasm")
	if st, m := e.do("POST", "/api/v1/rules/trees?engine=jit", testToken, tree); st != 400 || m["code"] != "invalid_argument" {
		t.Fatalf("unknown engine: %d %v", st, m)
	}
}

// TestRedisStockMetrics checks that an edge on the Redis stock exposes the
// adapter's counters, when LOTTERY_TEST_REDIS names a Redis.
func TestRedisStockMetrics(t *testing.T) {
	addr := os.Getenv("LOTTERY_TEST_REDIS")
	if addr == "" {
		t.Skip("LOTTERY_TEST_REDIS is not set: run scripts/services.sh start and . .services/env")
	}
	e := startEdge(t, func(c *configs.Config) {
		c.Stock.Backend = "redis"
		c.Stock.Redis.Addr = addr
		c.Stock.Redis.Prefix = fmt.Sprintf("lottery-test-%d:", time.Now().UnixNano())
	})
	e.deployAllWin(7, 10)
	if st, m := e.draw("metrics-user", 7); st != 200 {
		t.Fatalf("draw: %d %v", st, m)
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://edge/metrics")
	if err := e.c.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	body := string(resp.Body())
	for _, name := range []string{"lottery_stock_redis_roundtrips_total", "lottery_stock_redis_reservations_total", "lottery_stock_redis_batches_total"} {
		if !strings.Contains(body, "\n"+name+" ") {
			t.Errorf("/metrics has no %s", name)
		}
	}
}
