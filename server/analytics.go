package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/flashlottery/lottery/analytics"
	"github.com/flashlottery/lottery/lottery"
)

// analyticsQuery is the validated query string of an analytics endpoint.
type analyticsQuery struct {
	activityID int64
	from, to   time.Time
	step       time.Duration
}

// parseAnalytics reads activityId (required), from and to (RFC 3339, unix
// seconds, or a negative duration from now such as -60s; default the last
// hour) and step (a Go duration; default
// the window over 600 points, at least 1s). The stores bound the window.
func parseAnalytics(ctx *fasthttp.RequestCtx) (analyticsQuery, error) {
	var q analyticsQuery
	var err error
	if q.activityID, err = queryInt(ctx, "activityId", -1, 1, 1<<62); err != nil {
		return q, err
	}
	now := time.Now().UTC()
	if q.to, err = queryTime(ctx, "to", now.Add(time.Second)); err != nil {
		return q, err
	}
	if q.from, err = queryTime(ctx, "from", q.to.Add(-time.Hour)); err != nil {
		return q, err
	}
	if !q.from.Before(q.to) {
		return q, fmt.Errorf("%w: from must be before to", lottery.ErrInvalid)
	}
	q.step = max(time.Second, (q.to.Sub(q.from) / 600).Truncate(time.Second))
	if raw := ctx.QueryArgs().Peek("step"); len(raw) > 0 {
		if q.step, err = time.ParseDuration(string(raw)); err != nil || q.step < time.Second {
			return q, fmt.Errorf("%w: step must be a duration of at least 1s, like 10s or 1m", lottery.ErrInvalid)
		}
	}
	return q, nil
}

func queryTime(ctx *fasthttp.RequestCtx, name string, def time.Time) (time.Time, error) {
	raw := string(ctx.QueryArgs().Peek(name))
	if raw == "" {
		return def, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, raw); err == nil {
		return t.UTC(), nil
	}
	if strings.HasPrefix(raw, "-") { // relative to the server's clock, e.g. -60s
		if d, err := time.ParseDuration(raw); err == nil && d >= -analytics.MaxWindow {
			return time.Now().Add(d).UTC(), nil
		}
	}
	if n, err := strconv.ParseInt(raw, 10, 64); err == nil && n >= 0 && n < 1<<32 {
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%w: %s must be RFC 3339, unix seconds, or a negative duration such as -60s", lottery.ErrInvalid, name)
}

// handleAnalytics answers GET /api/v1/analytics/{summary|awards|timeline|latency|modules}.
func (s *Server) handleAnalytics(ctx *fasthttp.RequestCtx, name string) {
	q, err := parseAnalytics(ctx)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	var out any
	switch name {
	case "summary":
		out, err = s.events.Summary(s.ctx, q.activityID, q.from, q.to)
	case "awards":
		out, err = s.awardRates(q)
	case "timeline":
		var pts []analytics.TimelinePoint
		pts, err = s.events.Timeline(s.ctx, q.activityID, q.from, q.to, q.step)
		out = map[string]any{"activityId": q.activityID, "from": q.from, "to": q.to, "stepSeconds": int64(q.step / time.Second), "points": nonNil(pts)}
	case "latency":
		out, err = s.events.Latency(s.ctx, q.activityID, q.from, q.to)
	case "modules":
		var mods []analytics.ModuleOutcomes
		mods, err = s.events.Modules(s.ctx, q.activityID, q.from, q.to)
		out = map[string]any{"activityId": q.activityID, "from": q.from, "to": q.to, "modules": nonNil(mods)}
	default:
		s.writeError(ctx, http.StatusNotFound, apiError{Code: codeNotFound, Message: "no analytics query " + name + "; use summary, awards, timeline, latency or modules"})
		return
	}
	if err != nil {
		s.fail(ctx, err)
		return
	}
	s.writeJSON(ctx, http.StatusOK, out)
}

// awardRates counts prizes per award and compares their share of the draws
// with the configured rates of the activity's strategy.
func (s *Server) awardRates(q analyticsQuery) (any, error) {
	v, err := s.svc.Activity(s.ctx, q.activityID)
	if err != nil {
		return nil, err
	}
	sum, err := s.events.Summary(s.ctx, q.activityID, q.from, q.to)
	if err != nil {
		return nil, err
	}
	counts, err := s.events.Awards(s.ctx, q.activityID, q.from, q.to)
	if err != nil {
		return nil, err
	}
	// Sold-out, limit and not-active attempts never reached a draw: the
	// rates apply to the draws that did (wins and loses).
	drawn := sum.Outcomes[string(lottery.OutcomeWin)] + sum.Outcomes[string(lottery.OutcomeLose)]
	return map[string]any{"activityId": q.activityID, "from": q.from, "to": q.to, "draws": drawn,
		"awards": nonNil(analytics.CompareRates(counts, drawn, analytics.RatesOf(v.Strategy)))}, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
