package server

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/valyala/fasthttp"

	"github.com/flashlottery/lottery/configs"
	"github.com/flashlottery/lottery/loadgen"
	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/orders"
	"github.com/flashlottery/lottery/wasm"
	"github.com/flashlottery/lottery/wasm/builtin"
	"github.com/flashlottery/lottery/wasm/storetest"
)

// testMySQL returns an orders MySQL configuration over fresh databases
// (lottery_test_<random>, a 1 x 1 router) on the server LOTTERY_TEST_MYSQL
// names, dropped with the test; it skips the test when the variable is not
// set.
func testMySQL(t *testing.T) configs.Orders {
	t.Helper()
	dsn := os.Getenv("LOTTERY_TEST_MYSQL")
	if dsn == "" {
		t.Skip("LOTTERY_TEST_MYSQL is not set: MariaDB tests skipped (`. .services/env` sets it)")
	}
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("LOTTERY_TEST_MYSQL: %v", err)
	}
	prefix := fmt.Sprintf("lottery_test_%08x", rand.Uint32())
	names := []string{prefix, prefix + "_00"}
	at := func(name string) string {
		c := mc.Clone()
		c.DBName = name
		return c.FormatDSN()
	}
	t.Cleanup(func() {
		db, err := sql.Open("mysql", at(""))
		if err != nil {
			t.Error(err)
			return
		}
		defer db.Close()
		for _, n := range names {
			if _, err := db.Exec("DROP DATABASE IF EXISTS `" + n + "`"); err != nil {
				t.Errorf("drop %s: %v", n, err)
			}
		}
	})
	c := configs.Default().Orders
	c.Backend, c.DBCount, c.TBCount = "mysql", 1, 1
	c.MySQL = configs.MySQL{Base: at(names[0]), Shards: []string{at(names[1])}}
	return c
}

// openModules opens the orders store of c (closed with the test) and
// returns its module store through the server's adapter.
func openModules(t *testing.T, c configs.Orders) wasm.ModuleStore {
	t.Helper()
	router, err := orders.NewRouter(c.DBCount, c.TBCount)
	if err != nil {
		t.Fatal(err)
	}
	st, err := orders.OpenMySQL(t.Context(), orders.MySQLConfig{Base: c.MySQL.Base, Shards: c.MySQL.Shards, Router: router})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return mysqlModules{st.Modules()}
}

func TestMySQLModuleStoreContract(t *testing.T) {
	testMySQL(t) // skip early
	storetest.Run(t, func(t *testing.T) wasm.ModuleStore { return openModules(t, testMySQL(t)) })
}

// TestMySQLModulesAcrossEdges runs two edges (servers with their own
// orders pools, as two processes would have) on one MariaDB: a module
// uploaded on one serves on the other within a second; a version in the
// store that neither can load (its bytes corrupt) leaves both serving the
// previous one, with readyz degraded and lottery_module_sync_ok 0, until a
// rollback names a good version.
func TestMySQLModulesAcrossEdges(t *testing.T) {
	oc := testMySQL(t)
	mutate := func(c *configs.Config) {
		c.Demo = false
		c.Orders = oc
		c.Modules.PollEvery = 200 * time.Millisecond
	}
	a, b := startEdge(t, mutate), startEdge(t, mutate)
	total := builtin.Module(lottery.ModeTotal)
	upload := func(e *edge, bin []byte) string {
		t.Helper()
		st, m := e.do("POST", "/api/v1/modules?name=team/draw&kind=draw", testToken, bin)
		if st != 201 {
			t.Fatalf("upload: %d %v", st, m)
		}
		return m["sha256"].(string)
	}
	active := func(e *edge) string {
		_, m := e.do("GET", "/api/v1/modules", testToken, nil)
		for _, x := range m["modules"].([]any) {
			if v := x.(map[string]any); v["name"] == "team/draw" && v["active"] == true {
				return v["sha256"].(string)
			}
		}
		return ""
	}
	propagates := func(what string, to *edge, sha string) {
		t.Helper()
		t0 := time.Now()
		waitFor(t, what, func() bool { return active(to) == sha })
		took := time.Since(t0)
		t.Logf("%s: serves on the other edge after %s", what, took.Round(time.Millisecond))
		if took > time.Second {
			t.Errorf("%s took %s, want within 1s", what, took)
		}
	}
	v1 := upload(a, total)
	propagates("upload on a", b, v1)
	v2 := upload(b, append(total, 0x00, 0x05, 0x04, 'n', 'o', 't', 'e'))
	propagates("upload on b", a, v2)
	if st, m := a.do("POST", "/api/v1/modules/team/draw/rollback", testToken, []byte(`{"sha256":"`+v1[:12]+`"}`)); st != 200 {
		t.Fatalf("rollback: %d %v", st, m)
	}
	propagates("rollback on a", b, v1)

	// An activity deployed on a names the module; b draws through it.
	now := time.Now().UTC()
	body := fmt.Sprintf(`{"activity":{"activityId":41,"name":"wasm","beginTime":%q,"endTime":%q,"stockCount":100,"takeCount":5,"strategyId":41},
		"strategy":{"strategyId":41,"strategyMode":2,"grantType":1,"drawModule":"team/draw","awards":[{"awardId":"a","awardType":1,"awardName":"a","awardCount":100,"awardRate":1}]}}`,
		now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	if st, m := a.do("POST", "/api/v1/activities", testToken, []byte(body)); st != 201 {
		t.Fatalf("deploy: %d %v", st, m)
	}
	for _, action := range []string{"submit", "approve", "start"} {
		if st, m := a.do("POST", "/api/v1/activities/41/"+action, testToken, nil); st != 200 {
			t.Fatalf("%s: %d %v", action, st, m)
		}
	}
	drawsWith := func(e *edge, sha string) func() bool {
		return func() bool {
			st, m := e.draw(fmt.Sprint("u", rand.Uint32()), 41)
			return st == 200 && m["module"] == "team/draw@"+sha[:12]
		}
	}
	waitFor(t, "a draw on b through v1", drawsWith(b, v1))

	// Bytes that are not a module, recorded as the active version behind the
	// edges' backs: neither loads them, both keep v1.
	bad := []byte("not a module")
	badSum := sha256Hex(bad)
	store := openModules(t, oc)
	if _, _, err := store.Update(t.Context(), "team/draw", bad, func(cur *wasm.StoredModule) (wasm.StoredModule, error) {
		next := *cur
		next.Versions = append([]wasm.StoredVersion{{SHA256: badSum, Size: len(bad), Uploaded: time.Now()}}, cur.Versions...)
		next.Active = badSum
		return next, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*edge{a, b} {
		waitFor(t, "readyz degraded", func() bool {
			st, m := e.do("GET", "/readyz", "", nil)
			return st == 200 && m["status"] == "degraded"
		})
		st, m := e.do("GET", "/readyz", "", nil)
		mods, _ := m["modules"].([]any)
		if st != 200 || len(mods) != 1 || !strings.Contains(fmt.Sprint(mods[0]), badSum) || !strings.Contains(fmt.Sprint(mods[0]), "team/draw@"+v1[:12]) {
			t.Fatalf("readyz: %d %v", st, m)
		}
		if !drawsWith(e, v1)() {
			t.Fatal("an edge stopped serving v1 when the store named a version it cannot load")
		}
		if v := metricValue(t, e, "lottery_module_sync_ok"); v != 0 {
			t.Fatalf("lottery_module_sync_ok %v, want 0", v)
		}
		if v := metricValue(t, e, "lottery_module_load_failures_total"); v < 1 {
			t.Fatalf("lottery_module_load_failures_total %v", v)
		}
	}
	if st, m := b.do("POST", "/api/v1/modules/team/draw/rollback", testToken, []byte(`{"sha256":"`+v2+`"}`)); st != 200 {
		t.Fatalf("rollback from the bad version: %d %v", st, m)
	}
	propagates("rollback on b from a bad version", a, v2)
	for _, e := range []*edge{a, b} {
		waitFor(t, "readyz ready", func() bool {
			st, m := e.do("GET", "/readyz", "", nil)
			return st == 200 && m["status"] == "ready"
		})
		if v := metricValue(t, e, "lottery_module_sync_ok"); v != 1 {
			t.Fatalf("lottery_module_sync_ok %v, want 1", v)
		}
	}
}

// metricValue reads one unlabelled sample from the edge's /metrics.
func metricValue(t *testing.T, e *edge, name string) float64 {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://edge/metrics")
	if err := e.c.DoTimeout(req, resp, 10*time.Second); err != nil || resp.StatusCode() != 200 {
		t.Fatalf("metrics: %v %d", err, resp.StatusCode())
	}
	v, ok := loadgen.ParseMetrics(resp.Body())[name]
	if !ok {
		t.Fatalf("metric %s not found", name)
	}
	return v
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
