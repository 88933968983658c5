package loadgen

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// WriteMarkdown writes the suite's results as BENCHMARKS.md content.
func WriteMarkdown(w io.Writer, command string, s *Suite) error {
	if s == nil || len(s.Scenarios) == 0 {
		return errors.New("no scenarios")
	}
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	fmt.Fprintf(w, "## Draw endpoint against a bare fasthttp handler\n\n")
	fmt.Fprintf(w, "Measured %s on %d cores (%s), %s, load average %s at the start and %s at the end. Command: `%s`.\n",
		s.Started.Format("2006-01-02 15:04 MST"), cores(), cpu, runtime.Version(), s.LoadStart, s.LoadEnd, command)
	fmt.Fprintf(w, "The server (bare handler with GOMAXPROCS=1, or an edge with everything it runs in process) is pinned to one core with taskset, the load generator (this binary, requests pre-built) to the other; %d connections. "+
		"Each edge profile is a fresh `lottery serve` with its own config and data directory, warmed up with %d all-win draws (invoices delivered) before its scenarios; Redis and MariaDB are the servers of `scripts/services.sh`, not pinned.\n\n", s.Concurrency, s.Warmup)
	fmt.Fprintf(w, "Edge profiles:\n\n")
	for _, p := range s.Profiles {
		if p.Skipped != "" {
			fmt.Fprintf(w, "- %s: %s. **Skipped: %s.**\n", p.Name, p.Desc, p.Skipped)
		} else {
			fmt.Fprintf(w, "- %s: %s.\n", p.Name, p.Desc)
		}
	}
	fmt.Fprintf(w, "\n| scenario | requests | req/s | ratio to bare | p50 | p90 | p99 | outcomes | verified |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, sc := range s.Scenarios {
		if sc.Skipped != "" {
			fmt.Fprintf(w, "| %s | - | - | - | - | - | - | - | skipped: %s |\n", sc.Name, mdCell(sc.Skipped))
			continue
		}
		v := "-"
		if sc.Verify != nil {
			v = "OK"
			if len(sc.Verify.Violations) > 0 {
				v = "VIOLATION: " + mdCell(strings.Join(sc.Verify.Violations, "; "))
			}
		}
		var oc []string
		for _, k := range sortedKeys(sc.Result.ByOutcome) {
			oc = append(oc, fmt.Sprintf("%s %d", k, sc.Result.ByOutcome[k]))
		}
		if sc.Result.Errors > 0 {
			oc = append(oc, fmt.Sprintf("transport errors %d", sc.Result.Errors))
		}
		r := sc.Result
		fmt.Fprintf(w, "| %s | %d | %.0f | %.2f | %s | %s | %s | %s | %s |\n", sc.Name, r.Requests, r.RPS, sc.Ratio,
			r.P50.Round(time.Microsecond), r.P90.Round(time.Microsecond), r.P99.Round(time.Microsecond), strings.Join(oc, ", "), v)
	}
	for _, sc := range s.Scenarios {
		if sc.Skipped != "" {
			continue
		}
		for _, n := range append([]string{sc.Comment}, sc.Notes...) {
			if n != "" {
				fmt.Fprintf(w, "\n- %s: %s.", sc.Name, n)
			}
		}
	}
	fmt.Fprintln(w)
	if len(s.Targets) > 0 {
		fmt.Fprintf(w, "\n### Against the targets, this run\n\n| target | measured | met |\n|---|---|---|\n")
		for _, t := range s.Targets {
			switch {
			case t.Skipped != "":
				fmt.Fprintf(w, "| %s | - | not measured: %s |\n", t.What, mdCell(t.Skipped))
			case t.Met:
				fmt.Fprintf(w, "| %s | %s | met |\n", t.What, t.Measured)
			default:
				fmt.Fprintf(w, "| %s | %s | **not met** |\n", t.What, t.Measured)
			}
		}
	}
	if r := s.Reload; r != nil {
		fmt.Fprintf(w, "\n### Hot reload under load, this run\n\n")
		fmt.Fprintf(w, "Module %s, serving %s when the load started; each push uploads the same built-in code with a custom section naming the build, so each is a new version (sha256). "+
			"\"listed\" is from the upload's answer until `GET /api/v1/modules` lists the build active; \"first draw answer\" until a draw answer names it (0: one did before the upload's own answer arrived, the swap comes first); "+
			"\"older answers\" counts draws sent after the upload's answer that an older build answered. %d draws, %d failed.\n\n", r.Module, r.Initial, r.Requests, r.Failed)
		fmt.Fprintf(w, "| push | version | at | upload took | listed | first draw answer | older answers |\n|---|---|---|---|---|---|---|\n")
		for _, p := range r.Pushes {
			if p.Err != "" {
				fmt.Fprintf(w, "| %d | upload failed: %s | %s | %s | - | - | - |\n", p.N, mdCell(p.Err), p.Answered.Round(time.Millisecond), p.Took.Round(10*time.Microsecond))
				continue
			}
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %d |\n", p.N, p.Version, p.Answered.Round(time.Millisecond), p.Took.Round(10*time.Microsecond),
				fmtServed(p.Listed), fmtServed(p.Served), p.Stale)
		}
	}
	if len(s.Leftovers) > 0 || len(s.Failed) > 0 {
		fmt.Fprintln(w)
		for _, f := range s.Failed {
			fmt.Fprintf(w, "- **Profile failed**: %s.\n", f)
		}
		for _, l := range s.Leftovers {
			fmt.Fprintf(w, "- Not cleaned up: %s.\n", l)
		}
	}
	return nil
}

// mdCell keeps text inside one table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}

// ReplaceSection writes body into path between the markers
// <!-- begin NAME --> and <!-- end NAME -->, appending them if absent, so
// the suite refreshes its own numbers and leaves the rest of the file alone.
func ReplaceSection(path, name, body string) error {
	begin, end := "<!-- begin "+name+" -->\n", "<!-- end "+name+" -->\n"
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s := string(old)
	section := begin + body + end
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i >= 0 && j > i {
		s = s[:i] + section + s[j+len(end):]
	} else {
		if s != "" && !strings.HasSuffix(s, "\n\n") {
			s += "\n"
		}
		s += section
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// cores counts the machine's processors (runtime.NumCPU sees only the
// cores this process is pinned to).
func cores() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.NumCPU()
	}
	return strings.Count(string(b), "\nprocessor") + 1
}
