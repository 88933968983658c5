package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/flashlottery/lottery/configs"
	"github.com/flashlottery/lottery/lottery"
)

const testToken = "test-admin-token-0123456789"

// edge is a server on an in-memory listener with a client.
type edge struct {
	t       *testing.T
	srv     *Server
	c       *fasthttp.Client
	timeout time.Duration // of one request; zero: 10 s
}

func startEdge(t *testing.T, mutate func(*configs.Config)) *edge {
	t.Helper()
	cfg := configs.Default()
	cfg.DataDir = t.TempDir()
	cfg.AdminToken = testToken
	cfg.Jobs.CompensateEvery = 200 * time.Millisecond
	cfg.Jobs.StaleAfter = time.Second
	cfg.Analytics.FlushEvery = 50 * time.Millisecond
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	if err := srv.Start(ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	return &edge{t: t, srv: srv, c: c}
}

// do sends a request and returns the status and the body decoded into a map.
func (e *edge) do(method, path, token string, body []byte) (int, map[string]any) {
	e.t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://edge" + path)
	req.Header.SetMethod(method)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.SetBody(body)
	timeout := e.timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	if err := e.c.DoTimeout(req, resp, timeout); err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	var m map[string]any
	if ct := string(resp.Header.ContentType()); strings.HasPrefix(ct, "application/json") {
		if err := json.Unmarshal(resp.Body(), &m); err != nil {
			e.t.Fatalf("%s %s: answer is not JSON: %v: %s", method, path, err, resp.Body())
		}
	}
	return resp.StatusCode(), m
}

func (e *edge) draw(user string, activity int64) (int, map[string]any) {
	return e.do("POST", "/api/v1/draw", "", fmt.Appendf(nil, `{"userId":%q,"activityId":%d}`, user, activity))
}

// deployAllWin deploys and starts (through the state machine) an activity
// whose every draw wins until its awards run out.
func (e *edge) deployAllWin(id int64, stock int64) {
	e.t.Helper()
	now := time.Now().UTC()
	body := fmt.Sprintf(`{"activity":{"activityId":%d,"name":"all win","beginTime":%q,"endTime":%q,"stockCount":%d,"takeCount":5,"strategyId":%d},
	"strategy":{"strategyId":%d,"strategyMode":2,"grantType":1,"awards":[
	 {"awardId":"c1","awardType":2,"awardName":"code","awardContent":"gift code","awardCount":%d,"awardRate":0.5},
	 {"awardId":"g1","awardType":4,"awardName":"goods","awardContent":"a mug","awardCount":%d,"awardRate":0.5}]}}`,
		id, now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339), stock, id, id, stock, stock)
	if st, m := e.do("POST", "/api/v1/activities", testToken, []byte(body)); st != 201 {
		e.t.Fatalf("deploy: %d %v", st, m)
	}
	for _, action := range []string{"submit", "approve", "start"} {
		st, m := e.do("POST", fmt.Sprintf("/api/v1/activities/%d/%s", id, action), testToken, nil)
		if st == 409 && action == "start" {
			// The edge's activity-state job may have started the approved
			// activity first (its begin time has passed): then it runs.
			if st, a := e.do("GET", fmt.Sprintf("/api/v1/activities/%d", id), testToken, nil); st == 200 && a["activity"].(map[string]any)["state"] == "running" {
				continue
			}
		}
		if st != 200 {
			e.t.Fatalf("%s: %d %v", action, st, m)
		}
	}
}

func (e *edge) audit(id int64) map[string]any {
	e.t.Helper()
	st, m := e.do("GET", fmt.Sprintf("/api/v1/activities/%d/audit", id), testToken, nil)
	if st != 200 {
		e.t.Fatalf("audit: %d %v", st, m)
	}
	return m["audit"].(map[string]any)
}

// TestDrawToDeliveredInvoice drives one draw from HTTP to a delivered
// invoice, then makes the broker deliver the same invoice again: the prize
// is granted once.
func TestDrawToDeliveredInvoice(t *testing.T) {
	e := startEdge(t, nil)
	e.deployAllWin(7, 100)
	st, m := e.draw("alice", 7)
	if st != 200 || m["outcome"] != "win" {
		t.Fatalf("draw: %d %v", st, m)
	}
	award := m["award"].(map[string]any)
	for _, k := range []string{"id", "name", "type", "content"} {
		if award[k] == nil || award[k] == "" {
			t.Fatalf("award lacks %s: %v", k, award)
		}
	}
	if m["orderId"] == "" || m["takeId"] == "" || m["seed"] == "" {
		t.Fatalf("win lacks ids: %v", m)
	}
	waitFor(t, "invoice delivered", func() bool {
		_, o := e.do("GET", "/api/v1/users/alice/orders", testToken, nil)
		orders := o["orders"].([]any)
		return len(orders) == 1 && orders[0].(map[string]any)["grantState"] == float64(1) && orders[0].(map[string]any)["mqState"] == float64(1)
	})
	if got := e.srv.dist.Stats().Granted; got != 1 {
		t.Fatalf("granted %d, want 1", got)
	}
	// The broker redelivers: publish the same invoice twice more.
	_, o := e.do("GET", "/api/v1/users/alice/orders", testToken, nil)
	var order lottery.Order
	b, _ := json.Marshal(o["orders"].([]any)[0])
	if err := json.Unmarshal(b, &order); err != nil {
		t.Fatal(err)
	}
	if want := m["orderId"]; fmt.Sprint(order.ID) != want {
		t.Fatalf("order id %d in the orders list, %v in the draw answer", order.ID, want)
	}
	inv := lottery.InvoiceOf(&order)
	for _, err := range e.srv.producer.Publish(context.Background(), []lottery.Invoice{inv, inv}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "redeliveries seen", func() bool { return e.srv.dist.Stats().Duplicates >= 2 })
	if got := e.srv.dist.Stats().Granted; got != 1 {
		t.Fatalf("granted %d after redelivery, want 1", got)
	}
	a := e.audit(7)
	if a["Orders"] != float64(1) || a["ByGrantState"].(map[string]any)["1"] != float64(1) {
		t.Fatalf("audit after redelivery: %v", a)
	}
	// Metrics say the same.
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://edge/metrics")
	if err := e.c.Do(req, resp); err != nil {
		t.Fatal(err)
	}
	body := string(resp.Body())
	for _, want := range []string{`lottery_draws_total{outcome="win"} 1`, "lottery_invoices_delivered_total 1", `lottery_stock_left{activity="7"} 99`, "lottery_draw_duration_seconds_bucket"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBadInput sends malformed and hostile requests: each gets a 4xx with a
// clear code, and nothing is written.
func TestBadInput(t *testing.T) {
	e := startEdge(t, nil)
	e.deployAllWin(7, 100)
	huge := []byte(`{"userId":"` + strings.Repeat("a", 1<<20) + `","activityId":7}`)
	tests := []struct {
		name, method, path, token string
		body                      []byte
		status                    int
		code                      string
	}{
		{"malformed json", "POST", "/api/v1/draw", "", []byte(`{"userId":`), 400, "invalid_argument"},
		{"not an object", "POST", "/api/v1/draw", "", []byte(`[1,2]`), 400, "invalid_argument"},
		{"empty body", "POST", "/api/v1/draw", "", nil, 400, "invalid_argument"},
		{"missing userId", "POST", "/api/v1/draw", "", []byte(`{"activityId":7}`), 400, "invalid_argument"},
		{"missing activityId", "POST", "/api/v1/draw", "", []byte(`{"userId":"bob"}`), 400, "invalid_argument"},
		{"userId wrong type", "POST", "/api/v1/draw", "", []byte(`{"userId":42,"activityId":7}`), 400, "invalid_argument"},
		{"activityId wrong type", "POST", "/api/v1/draw", "", []byte(`{"userId":"bob","activityId":"7"}`), 400, "invalid_argument"},
		{"activityId fraction", "POST", "/api/v1/draw", "", []byte(`{"userId":"bob","activityId":7.5}`), 400, "invalid_argument"},
		{"negative activityId", "POST", "/api/v1/draw", "", []byte(`{"userId":"bob","activityId":-7}`), 400, "invalid_argument"},
		{"zero activityId", "POST", "/api/v1/draw", "", []byte(`{"userId":"bob","activityId":0}`), 400, "invalid_argument"},
		{"huge activityId", "POST", "/api/v1/draw", "", []byte(`{"userId":"bob","activityId":99999999999999999999999}`), 400, "invalid_argument"},
		{"empty userId", "POST", "/api/v1/draw", "", []byte(`{"userId":"","activityId":7}`), 400, "invalid_argument"},
		{"long userId", "POST", "/api/v1/draw", "", []byte(`{"userId":"` + strings.Repeat("x", 65) + `","activityId":7}`), 400, "invalid_argument"},
		{"control char userId", "POST", "/api/v1/draw", "", []byte(`{"userId":"a\u0000b","activityId":7}`), 400, "invalid_argument"},
		{"unknown field", "POST", "/api/v1/draw", "", []byte(`{"userId":"bob","activityId":7,"admin":true}`), 400, "invalid_argument"},
		{"trailing data", "POST", "/api/v1/draw", "", []byte(`{"userId":"bob","activityId":7}{}`), 400, "invalid_argument"},
		{"trailing bracket", "POST", "/api/v1/draw", "", []byte(`{"userId":"bob","activityId":7}}`), 400, "invalid_argument"},
		{"trailing bracket, slow path", "POST", "/api/v1/draw", "", []byte(`{"activityId":7, "userId":"b\u006fb"}]`), 400, "invalid_argument"},
		{"trailing whitespace passes the strict decoder", "POST", "/api/v1/draw", "", []byte("{\"userId\":\"b\\u006fb\",\"activityId\":424242}\n "), 404, "not_found"},
		{"1 MiB body", "POST", "/api/v1/draw", "", huge, 413, "body_too_large"},
		{"unknown activity", "POST", "/api/v1/draw", "", []byte(`{"userId":"bob","activityId":424242}`), 404, "not_found"},
		{"draw with GET", "GET", "/api/v1/draw", "", nil, 405, "method_not_allowed"},
		{"no token", "GET", "/api/v1/activities", "", nil, 401, "unauthorized"},
		{"wrong token", "GET", "/api/v1/activities", "wrong-token-0123456789", nil, 401, "unauthorized"},
		{"wrong token deploy", "POST", "/api/v1/activities", "nope", []byte(`{}`), 401, "unauthorized"},
		{"forbidden move", "POST", "/api/v1/activities/7/submit", testToken, nil, 409, "bad_transition"},
		{"unknown action", "POST", "/api/v1/activities/7/explode", testToken, nil, 400, "invalid_argument"},
		{"bad activity id in path", "GET", "/api/v1/activities/abc", testToken, nil, 400, "invalid_argument"},
		{"deploy invalid", "POST", "/api/v1/activities", testToken, []byte(`{"activity":{"activityId":8,"name":"","stockCount":-1},"strategy":{"strategyId":8,"awards":[]}}`), 400, "invalid_argument"},
		{"deploy duplicate", "POST", "/api/v1/activities", testToken, nil, 409, "conflict"},
		{"bad limit", "GET", "/api/v1/activities?limit=100000", testToken, nil, 400, "invalid_argument"},
		{"unknown route", "GET", "/nope", "", nil, 404, "not_found"},
	}
	// A duplicate deploy of activity 7 with a valid body.
	now := time.Now().UTC()
	dup := fmt.Sprintf(`{"activity":{"activityId":7,"name":"dup","beginTime":%q,"endTime":%q,"stockCount":5,"takeCount":1,"strategyId":9},"strategy":{"strategyId":9,"strategyMode":1,"grantType":1,"awards":[{"awardId":"x","awardType":1,"awardName":"x","awardCount":1,"awardRate":0.1}]}}`,
		now.Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	before := e.audit(7)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if tt.name == "deploy duplicate" {
				body = []byte(dup)
			}
			st, m := e.do(tt.method, tt.path, tt.token, body)
			if st != tt.status || m["code"] != tt.code || m["message"] == "" {
				t.Fatalf("got %d %v, want %d with code %s and a message", st, m, tt.status, tt.code)
			}
		})
	}
	after := e.audit(7)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("bad input changed the store:\nbefore %v\nafter  %v", before, after)
	}
	_, list := e.do("GET", "/api/v1/activities", testToken, nil)
	if n := len(list["activities"].([]any)); n != 2 { // the demo and activity 7; no 8, no 9
		t.Fatalf("%d activities after bad deploys, want 2", n)
	}
}

// TestOutcomes covers the 409 outcomes and the admin reads.
func TestOutcomes(t *testing.T) {
	e := startEdge(t, func(c *configs.Config) { c.Demo = false })
	e.deployAllWin(7, 3)
	for i := range 5 { // takeCount 5: the sixth draw of one user is over the limit
		if st, m := e.draw("carol", 7); st != 200 && !(i >= 3 && st == 409) {
			t.Fatalf("draw %d: %d %v", i, st, m)
		}
	}
	st, m := e.draw("dave", 7)
	if st != 409 || m["outcome"] != "sold_out" || m["code"] != "sold_out" {
		t.Fatalf("after stock 3: %d %v", st, m)
	}
	// Limit: a fresh activity, one user, takeCount 5.
	e.deployAllWin(8, 100)
	for range 5 {
		e.draw("erin", 8)
	}
	if st, m := e.draw("erin", 8); st != 409 || m["outcome"] != "limit_reached" {
		t.Fatalf("sixth draw: %d %v", st, m)
	}
	// Not active: close it.
	if st, m := e.do("POST", "/api/v1/activities/8/close", testToken, nil); st != 200 {
		t.Fatalf("close: %d %v", st, m)
	}
	if st, m := e.draw("frank", 8); st != 409 || m["outcome"] != "not_active" {
		t.Fatalf("closed activity: %d %v", st, m)
	}
	st, m = e.do("GET", "/api/v1/activities", testToken, nil)
	acts := m["activities"].([]any)
	if st != 200 || len(acts) != 2 {
		t.Fatalf("list: %d %v", st, m)
	}
	first := acts[0].(map[string]any)
	if first["state"] != "running" || first["stockLeft"] != float64(0) || first["name"] != "all win" {
		t.Fatalf("activity 7 in list: %v", first)
	}
	if st, m := e.do("GET", "/api/v1/activities/8", testToken, nil); st != 200 || m["activity"].(map[string]any)["state"] != "closed" {
		t.Fatalf("get 8: %d %v", st, m)
	}
	if st, _ := e.do("GET", "/readyz", "", nil); st != 200 {
		t.Fatalf("readyz %d", st)
	}
	// Every attempt on activity 8 is one event: 5 wins, 1 limit_reached, 1 not_active.
	waitFor(t, "analytics summary", func() bool {
		_, s := e.do("GET", "/api/v1/analytics/summary?activityId=8", testToken, nil)
		o, _ := s["outcomes"].(map[string]any)
		return s["draws"] == float64(7) && s["wins"] == float64(5) && o["limit_reached"] == float64(1) && o["not_active"] == float64(1)
	})
}

func FuzzParseDraw(f *testing.F) {
	for _, s := range []string{`{"userId":"a","activityId":1}`, `{"userId":"","activityId":-1}`, `{}`, `[`, `{"userId":"\u00ff","activityId":1e3}`, `{"activityId":9223372036854775807,"userId":"x"}`, ` { "activityId" : 12 , "userId" : "bob" } `, `{"userId":"a","userId":"b","activityId":1}`, `{"userId":"a","activityId":01}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if fu, fid, ok := parseDrawFast(body); ok {
			// The fast path must agree with the strict decoder.
			var req drawRequest
			if err := decodeStrict(body, &req); err != nil || req.UserID == nil || req.ActivityID == nil || *req.UserID != fu || *req.ActivityID != fid {
				t.Fatalf("fast path accepted %q as (%q, %d); strict says %v %+v", body, fu, fid, err, req)
			}
		}
		user, id, err := parseDraw(body)
		if err != nil {
			if !strings.Contains(err.Error(), "invalid input") {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if id <= 0 || lottery.ValidateUserID(user) != nil {
			t.Fatalf("accepted invalid input: %q %d", user, id)
		}
	})
}

// The admin token file may end in a newline (an editor's); the edge
// trims it as the CLI does, and a file too short to be a token is replaced.
func TestAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(p, []byte("  0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := configs.Config{DataDir: dir}
	if tok, err := adminToken(cfg); err != nil || tok != "0123456789abcdef0123" {
		t.Fatalf("token %q, %v; want the file's, trimmed", tok, err)
	}
	if err := os.WriteFile(p, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := adminToken(cfg)
	if err != nil || len(tok) != 32 {
		t.Fatalf("token %q, %v; want a new one of 32 hex digits", tok, err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != tok {
		t.Fatalf("file holds %q, %v; want the new token", b, err)
	}
}
