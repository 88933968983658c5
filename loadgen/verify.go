package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// auditAnswer is the part of GET /api/v1/activities/{id}/audit that Verify reads.
type auditAnswer struct {
	Activity struct {
		StockCount int64 `json:"stockCount"`
	} `json:"activity"`
	StockLeft int64 `json:"stockLeft"`
	Strategy  struct {
		Awards []struct {
			ID         string `json:"awardId"`
			AwardCount int64  `json:"awardCount"`
			AwardLeft  *int64 `json:"awardLeft"`
		} `json:"awards"`
	} `json:"strategy"`
	Audit struct {
		Takes, UsedTakes, WonTakes, Orders                          int64
		OrdersByAward                                               map[string]int64
		WonWithoutOrder, OrphanOrders, AwardMismatch, CountMismatch int64
		ByMQState                                                   map[string]int64
		ByGrantState                                                map[string]int64
	} `json:"audit"`
}

// Report is what verification found.
type Report struct {
	StockCount  int64            `json:"stockCount"`
	Accepted    int64            `json:"accepted"`
	Prizes      int64            `json:"prizes"`
	Delivered   int64            `json:"delivered"`
	ByAward     map[string]int64 `json:"byAward"`
	AwardCounts map[string]int64 `json:"awardCounts"`
	Violations  []string         `json:"violations,omitempty"`
	Waited      time.Duration    `json:"waitedNs"`
}

// Verify reads the activity's audit and checks the promises: accepted
// draws (takes) within the stock and equal to what the stock port says is
// used, prizes within each award's count, every won take with exactly one
// order, and every order delivered (it polls up to wait for deliveries).
// Violations are listed in the report; the error is for failing to ask.
func Verify(ctx context.Context, baseURL, token string, activityID int64, wait time.Duration) (Report, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" {
		return Report{}, fmt.Errorf("verify: bad url %q", baseURL)
	}
	start := time.Now()
	for {
		var a auditAnswer
		if err := getJSON(u, "/api/v1/activities/"+strconv.FormatInt(activityID, 10)+"/audit", token, &a); err != nil {
			return Report{}, err
		}
		rep := check(&a)
		rep.Waited = time.Since(start)
		if rep.Delivered >= rep.Prizes || time.Since(start) > wait || ctx.Err() != nil {
			if rep.Delivered < rep.Prizes {
				rep.Violations = append(rep.Violations, fmt.Sprintf("%d of %d prizes not delivered after %s", rep.Prizes-rep.Delivered, rep.Prizes, wait))
			}
			return rep, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func check(a *auditAnswer) Report {
	au := &a.Audit
	rep := Report{StockCount: a.Activity.StockCount, Accepted: au.Takes, Prizes: au.Orders, Delivered: au.ByGrantState["1"], ByAward: au.OrdersByAward, AwardCounts: map[string]int64{}}
	bad := func(format string, args ...any) {
		rep.Violations = append(rep.Violations, fmt.Sprintf(format, args...))
	}
	if au.Takes > a.Activity.StockCount {
		bad("oversold: %d accepted draws for stock %d", au.Takes, a.Activity.StockCount)
	}
	if used := a.Activity.StockCount - a.StockLeft; used != au.Takes {
		bad("stock port says %d used, the store has %d takes", used, au.Takes)
	}
	for _, aw := range a.Strategy.Awards {
		rep.AwardCounts[aw.ID] = aw.AwardCount
		if n := au.OrdersByAward[aw.ID]; n > aw.AwardCount {
			bad("award %s oversold: %d prizes for %d", aw.ID, n, aw.AwardCount)
		}
		if aw.AwardLeft != nil && aw.AwardCount-*aw.AwardLeft != au.OrdersByAward[aw.ID] {
			bad("award %s: stock port says %d used, the store has %d orders", aw.ID, aw.AwardCount-*aw.AwardLeft, au.OrdersByAward[aw.ID])
		}
	}
	if au.WonTakes != au.Orders {
		bad("%d won takes but %d orders", au.WonTakes, au.Orders)
	}
	for name, n := range map[string]int64{"won takes without an order": au.WonWithoutOrder, "orders without a used take": au.OrphanOrders, "orders whose award differs from the take's": au.AwardMismatch, "users whose count differs from their takes": au.CountMismatch} {
		if n != 0 {
			bad("%d %s", n, name)
		}
	}
	return rep
}

// getJSON decodes the body of GET path on the edge at u into v.
func getJSON(u *url.URL, path, token string, v any) error {
	body, err := adminCall("http://"+u.Host, token, fasthttp.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// adminCall sends an admin request with token to the edge at base and
// returns the body of a 2xx answer; any other answer is an error naming it.
func adminCall(base, token, method, path string, body []byte) ([]byte, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(base + path)
	req.Header.SetMethod(method)
	req.Header.Set(fasthttp.HeaderAuthorization, "Bearer "+token)
	req.SetBody(body)
	if err := fasthttp.DoTimeout(req, resp, 30*time.Second); err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if sc := resp.StatusCode(); sc < 200 || sc >= 300 {
		return nil, fmt.Errorf("%s %s: status %d: %s", method, path, sc, resp.Body())
	}
	return append([]byte(nil), resp.Body()...), nil
}

// Format renders a report for a terminal.
func (r Report) Format() string {
	var b strings.Builder
	fmt.Fprintf(&b, "verify: accepted %d of stock %d, prizes %d, delivered %d (waited %s)\n", r.Accepted, r.StockCount, r.Prizes, r.Delivered, r.Waited.Round(time.Millisecond))
	for _, id := range sortedKeys(r.AwardCounts) {
		fmt.Fprintf(&b, "  award %s: %d of %d\n", id, r.ByAward[id], r.AwardCounts[id])
	}
	if len(r.Violations) == 0 {
		b.WriteString("verify: OK, nothing oversold, every prize has one order and one delivered invoice\n")
	}
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "verify: VIOLATION: %s\n", v)
	}
	return b.String()
}
