package server

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flashlottery/lottery/configs"
	"github.com/flashlottery/lottery/loadgen"
)

// TestDashboardInBrowser loads /dashboard in headless Chromium while draws
// run: the page's charts show non-zero data (read back from the DOM the
// script filled in), and the test saves a screenshot.
func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: runs Chromium")
	}
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: make services installs it (Debian's chromium package)")
	}
	cfg := configs.Default()
	cfg.DataDir, cfg.AdminToken, cfg.Addr = t.TempDir(), testToken, "127.0.0.1:0"
	cfg.Analytics.FlushEvery = 100 * time.Millisecond
	srv, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	base := "http://" + srv.Addr()

	// A steady trickle of draws on the demo activity while the page polls.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			_, _ = loadgen.Run(ctx, loadgen.Config{URL: base, Requests: 200, Concurrency: 4, Users: 200, UserPrefix: "page" + string(rune('a'+i%26)) + "-", ActivityID: configs.DemoActivityID})
			time.Sleep(50 * time.Millisecond)
		}
	}()
	time.Sleep(1500 * time.Millisecond) // a few seconds of events for the timeline

	url := base + "/dashboard/?activity=100001&token=" + testToken
	profile := t.TempDir()
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + profile, "--window-size=1300,1000", "--virtual-time-budget=5000"}
	run := func(extra ...string) string {
		cctx, ccancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer ccancel()
		out, err := exec.CommandContext(cctx, browser, append(append(flags, extra...), url)...).Output()
		if err != nil {
			t.Fatalf("chromium %v: %v", extra, err)
		}
		return string(out)
	}
	dom := run("--dump-dom")
	shot := filepath.Join(os.TempDir(), "lottery-dashboard.png")
	run("--screenshot=" + shot)
	cancel()
	<-done

	text := func(id string) string {
		m := regexp.MustCompile(`id="` + id + `"[^>]*>([^<]*)<`).FindStringSubmatch(dom)
		if m == nil {
			t.Fatalf("dashboard DOM has no #%s:\n%s", id, dom)
		}
		return m[1]
	}
	if s := text("status"); !strings.HasPrefix(s, "updated") {
		t.Fatalf("dashboard status %q, want an update (DOM:\n%s)", s, dom)
	}
	if s := text("rate-now"); !regexp.MustCompile(`^[1-9][0-9]* draws/s$`).MatchString(s) {
		t.Fatalf("draws per second %q, want a non-zero rate", s)
	}
	if s := text("stock-now"); !regexp.MustCompile(`^[0-9]+ of 5000$`).MatchString(s) || strings.HasPrefix(s, "5000 ") {
		t.Fatalf("stock %q, want some of 5000 used", s)
	}
	if s := text("latency-now"); !regexp.MustCompile(`p99 [1-9]`).MatchString(s) {
		t.Fatalf("latency %q, want a non-zero p99", s)
	}
	if !strings.Contains(dom, "<td>101</td>") {
		t.Fatalf("the awards table lacks award 101:\n%s", dom)
	}
	st, err := os.Stat(shot)
	if err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v (size %d)", shot, err, st.Size())
	}
	t.Logf("screenshot saved: %s (%d bytes)", shot, st.Size())
}
