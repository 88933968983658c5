package loadgen

import (
	"fmt"
	"slices"
	"time"
)

// ratioTarget is a goal on a row's req/s: at least want times the req/s of
// base (the bare handler when base is "").
type ratioTarget struct {
	row, base string
	want      float64
	why       string
}

// ratioTargets are the speed goals of the issues, each against a row
// measured in the same run.
var ratioTargets = []ratioTarget{
	{row: rowEmbeddedFlash, want: 0.8, why: "issue 2"},
	{row: rowEmbeddedAllWin, want: 0.2, why: "issue 2"},
	{row: rowEmbedded1x1, want: 0.2, why: "issue 2"},
	{row: rowRedisFlash, want: 0.5, why: "issue 4"},
	{row: rowMariaDBAllWin, want: 0.1, why: "issue 4"},
	{row: rowMariaDB1x1, want: 0.1, why: "issue 4"},
	{row: rowRuleFlash + suffixWasm, base: rowRuleFlash + suffixNative, want: 0.9, why: "issue 3"},
	{row: rowRuleAllWin + suffixWasm, base: rowRuleAllWin + suffixNative, want: 0.9, why: "issue 3"},
}

// reloadServeWithin is how soon a pushed version must serve (issue 3).
const reloadServeWithin = 100 * time.Millisecond

// median returns the median of xs (not empty).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// checkTargets measures the suite's rows against the targets.
func checkTargets(s *Suite) []Target {
	row := func(name string) *Scenario {
		for i := range s.Scenarios {
			if s.Scenarios[i].Name == name {
				return &s.Scenarios[i]
			}
		}
		return nil
	}
	var out []Target
	for _, t := range ratioTargets {
		base := "bare"
		if t.base != "" {
			base = t.base
		}
		tg := Target{What: fmt.Sprintf("%s at least %.1f of %s (%s)", t.row, t.want, base, t.why)}
		r, b := row(t.row), row(t.base)
		if t.base == "" {
			b = &s.Scenarios[0]
		}
		switch {
		case r == nil || b == nil:
			continue // a profile not selected
		case r.Skipped != "" || b.Skipped != "":
			tg.Skipped = r.Skipped + b.Skipped
		case len(r.RoundRatios) > 0 && t.base != "":
			got := median(r.RoundRatios)
			tg.Measured = fmt.Sprintf("median %.2f over %d rounds (%.2f to %.2f); all rounds together %.2f (%.0f / %.0f req/s)",
				got, len(r.RoundRatios), slices.Min(r.RoundRatios), slices.Max(r.RoundRatios), r.Result.RPS/b.Result.RPS, r.Result.RPS, b.Result.RPS)
			tg.Met = got >= t.want
		default:
			got := r.Result.RPS / b.Result.RPS
			tg.Measured, tg.Met = fmt.Sprintf("%.2f (%.0f / %.0f req/s)", got, r.Result.RPS, b.Result.RPS), got >= t.want
		}
		out = append(out, tg)
	}
	if r := row(rowReload); r != nil {
		failed := Target{What: "hot reload: no failed draw during the ten pushes (issue 3)"}
		served := Target{What: fmt.Sprintf("hot reload: every pushed version serves within %s of its upload's answer, and no later draw gets an older one (issue 3)", reloadServeWithin)}
		if rep := s.Reload; r.Skipped != "" || rep == nil {
			failed.Skipped, served.Skipped = r.Skipped, r.Skipped
			if r.Skipped == "" {
				failed.Skipped, served.Skipped = "no report", "no report"
			}
		} else {
			failed.Measured, failed.Met = fmt.Sprintf("%d failed of %d", rep.Failed, rep.Requests), rep.Failed == 0
			slow := rep.SlowestServed()
			served.Measured = fmt.Sprintf("slowest %s over %d pushes; %d older answers", fmtServed(slow), len(rep.Pushes), rep.Stale())
			served.Met = slow >= 0 && slow <= reloadServeWithin && rep.Stale() == 0 && len(rep.Pushes) == reloadPushes
		}
		out = append(out, failed, served)
	}
	return out
}
