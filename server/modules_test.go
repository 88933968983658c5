package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flashlottery/lottery/configs"
	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/wasm/builtin"
)

// TestModulesOverHTTP uploads a draw module, deploys a strategy that names
// it, draws through it, pushes a new version and rolls back.
func TestModulesOverHTTP(t *testing.T) {
	e := startEdge(t, func(c *configs.Config) { c.Demo = false })
	total := builtin.Module(lottery.ModeTotal)
	st, m := e.do("POST", "/api/v1/modules?name=team/draw&kind=draw", testToken, total)
	if st != 201 || m["sha256"] == nil {
		t.Fatalf("upload: %d %v", st, m)
	}
	first := m["sha256"].(string)
	for _, bad := range []struct {
		path string
		body []byte
		code string
	}{
		{"/api/v1/modules?name=x&kind=draw", []byte("not wasm"), "invalid_argument"},
		{"/api/v1/modules?name=x&kind=banana", total, "invalid_argument"},
		{"/api/v1/modules?kind=draw", total, "invalid_argument"},
	} {
		if st, m := e.do("POST", bad.path, testToken, bad.body); st != 400 || m["code"] != bad.code {
			t.Fatalf("upload %s: %d %v", bad.path, st, m)
		}
	}
	now := time.Now().UTC()
	deploy := func(id int64, module string) (int, map[string]any) {
		body := fmt.Sprintf(`{"activity":{"activityId":%d,"name":"wasm","beginTime":%q,"endTime":%q,"stockCount":100,"takeCount":5,"strategyId":%d},
		"strategy":{"strategyId":%d,"strategyMode":2,"grantType":1,"drawModule":%q,"awards":[{"awardId":"a","awardType":1,"awardName":"a","awardCount":100,"awardRate":1}]}}`,
			id, now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339), id, id, module)
		return e.do("POST", "/api/v1/activities", testToken, []byte(body))
	}
	if st, m := deploy(11, "no/such"); st != 400 || !strings.Contains(fmt.Sprint(m["message"]), "no/such") {
		t.Fatalf("deploy with an unknown module: %d %v", st, m)
	}
	if st, m := deploy(12, "team/draw"); st != 201 {
		t.Fatalf("deploy: %d %v", st, m)
	}
	for _, a := range []string{"submit", "approve", "start"} {
		e.do("POST", "/api/v1/activities/12/"+a, testToken, nil)
	}
	st, m = e.draw("zoe", 12)
	if st != 200 || m["outcome"] != "win" || m["module"] != "team/draw@"+first[:12] {
		t.Fatalf("draw through the module: %d %v", st, m)
	}
	// A new version (the same code with a custom section: other bytes) serves at once.
	st, m = e.do("POST", "/api/v1/modules?name=team/draw&kind=draw", testToken, append(total, 0x00, 0x05, 0x04, 'n', 'o', 't', 'e'))
	if st != 201 {
		t.Fatalf("second upload: %d %v", st, m)
	}
	second := m["sha256"].(string)
	if _, m := e.draw("yan", 12); m["module"] != "team/draw@"+second[:12] {
		t.Fatalf("draw after the push ran %v, want version %s", m["module"], second[:12])
	}
	// A module that refuses the strategy's mode answers 503 draw_unavailable.
	st, m = e.do("POST", "/api/v1/modules?name=team/draw&kind=draw", testToken, builtin.Module(lottery.ModeSingle))
	if st != 201 {
		t.Fatalf("third upload: %d %v", st, m)
	}
	if st, m := e.draw("wen", 12); st != 503 || m["code"] != "draw_unavailable" {
		t.Fatalf("draw through a module of the wrong mode: %d %v", st, m)
	}
	if st, m := e.do("POST", "/api/v1/modules/team/draw/rollback", testToken, []byte(`{"sha256":"`+first[:12]+`"}`)); st != 200 {
		t.Fatalf("rollback: %d %v", st, m)
	}
	if _, m := e.draw("xia", 12); m["module"] != "team/draw@"+first[:12] {
		t.Fatalf("draw after the rollback ran %v", m["module"])
	}
	if st, m := e.do("GET", "/api/v1/modules", testToken, nil); st != 200 || len(m["modules"].([]any)) < 2 {
		t.Fatalf("list: %d %v", st, m)
	}
}
