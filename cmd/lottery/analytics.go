package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flashlottery/lottery/configs"
)

// analyticsCmd asks a running edge's analytics endpoint and prints the
// answer as a table: `lottery analytics summary|awards|timeline|latency|modules`.
func analyticsCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("usage: lottery analytics summary|awards|timeline|latency|modules --activity ID [--from T] [--to T] [--step D] [--url URL] [--token T] [--json]")
	}
	name := args[0]
	fs := flag.NewFlagSet("analytics "+name, flag.ContinueOnError)
	admin := addAdminFlags(fs)
	activity := fs.Int64("activity", configs.DemoActivityID, "activity id")
	from := fs.String("from", "", "window start: RFC 3339 or unix seconds (default: an hour ago)")
	to := fs.String("to", "", "window end (default: now)")
	step := fs.String("step", "", "timeline step, e.g. 10s (default: the window over 600 points)")
	asJSON := fs.Bool("json", false, "print the JSON answer")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	q := url.Values{"activityId": {fmt.Sprint(*activity)}}
	for k, v := range map[string]string{"from": *from, "to": *to, "step": *step} {
		if v != "" {
			q.Set(k, v)
		}
	}
	resp, body, err := admin.send(ctx, http.MethodGet, "/api/v1/analytics/"+name+"?"+q.Encode(), nil, 30*time.Second)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if *asJSON {
		_, err := os.Stdout.Write(append(body, '\n'))
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return err
	}
	return printAnalytics(os.Stdout, name, m)
}

// printAnalytics renders an analytics answer: scalar fields as lines, the
// one list of rows (awards, points, modules) as a table.
func printAnalytics(w io.Writer, name string, m map[string]any) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	keys := slices.Sorted(maps.Keys(m))
	var rows []any
	var rowsName string
	for _, k := range keys {
		switch v := m[k].(type) {
		case []any:
			rows, rowsName = v, k
		case map[string]any:
			fmt.Fprintf(tw, "%s:\n", k)
			for _, sk := range slices.Sorted(maps.Keys(v)) {
				fmt.Fprintf(tw, "  %s\t%v\n", sk, v[sk])
			}
		default:
			fmt.Fprintf(tw, "%s\t%v\n", k, v)
		}
	}
	if rowsName != "" {
		fmt.Fprintf(tw, "\n%s %s (%d):\n", name, rowsName, len(rows))
		var cols []string
		for i, r := range rows {
			row, ok := r.(map[string]any)
			if !ok {
				continue
			}
			if i == 0 {
				cols = slices.Sorted(maps.Keys(row))
				fmt.Fprintln(tw, strings.Join(cols, "\t"))
			}
			vals := make([]string, len(cols))
			for j, c := range cols {
				vals[j] = fmt.Sprint(row[c])
			}
			fmt.Fprintln(tw, strings.Join(vals, "\t"))
		}
	}
	return tw.Flush()
}
