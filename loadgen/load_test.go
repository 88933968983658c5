package loadgen

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestOutcomeOf(t *testing.T) {
	for body, want := range map[string]string{
		`{"outcome":"win","orderId":"1"}`:   "win",
		`{"code":"x","outcome":"sold_out"}`: "sold_out",
		`{"code":"invalid_argument"}`:       "none",
		`{"outcome":"unterminated`:          "none",
		``:                                  "none",
	} {
		if got := outcomeOf([]byte(body)); got != want {
			t.Errorf("outcomeOf(%q) = %q, want %q", body, got, want)
		}
	}
}

func TestPercentiles(t *testing.T) {
	lat := make([]int64, 100)
	for i := range lat {
		lat[i] = int64(i + 1)
	}
	if p := pct(lat, 50); p != 50 {
		t.Errorf("p50 = %d", p)
	}
	if p := pct(lat, 99); p != 99 {
		t.Errorf("p99 = %d", p)
	}
	if p := pct(nil, 99); p != 0 {
		t.Errorf("p99 of nothing = %d", p)
	}
}

// TestRunAgainstBare drives the bare handler and checks the counts add up.
func TestRunAgainstBare(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: BareHandler}
	go srv.Serve(ln) //nolint:errcheck // stopped below
	defer srv.Shutdown()
	res, err := Run(context.Background(), Config{URL: "http://" + ln.Addr().String(), Requests: 500, Concurrency: 8, Users: 50, ActivityID: 1, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 500 || res.Errors != 0 || res.ByStatus[200] != 500 || res.ByOutcome["lose"] != 500 || res.P99 <= 0 || res.RPS <= 0 {
		t.Fatalf("unexpected result: %+v", res)
	}
	if !strings.Contains(res.Format(), "requests 500") {
		t.Fatalf("format: %s", res.Format())
	}
}

func TestReplaceSection(t *testing.T) {
	p := filepath.Join(t.TempDir(), "B.md")
	if err := os.WriteFile(p, []byte("# Title\n\nkept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"first\n", "second\n"} {
		if err := ReplaceSection(p, "s", body); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(p)
	got := string(b)
	if !strings.Contains(got, "kept") || strings.Contains(got, "first") || strings.Count(got, "second") != 1 || strings.Count(got, "<!-- begin s -->") != 1 {
		t.Fatalf("file after two replacements:\n%s", got)
	}
}
