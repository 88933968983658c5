package server

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flashlottery/lottery/configs"
)

// TestGoGuestOverHTTP builds the SDK's Go draw example (sdk/examples/
// happyhour) and serves it from an edge: with the default sandbox the
// upload is refused with the limit it broke; with the modules limits
// raised in the config it uploads, and a strategy naming it draws.
func TestGoGuestOverHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go wasip1 module")
	}
	bin := filepath.Join(t.TempDir(), "happyhour.wasm")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-buildmode=c-shared", "-o", bin, "../sdk/examples/happyhour")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	wasm, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}

	// Compiling 2.7 MB of Wasm takes a second, and over 15 under the race
	// detector.
	small := startEdge(t, func(c *configs.Config) { c.Demo = false })
	if st, m := small.do("POST", "/api/v1/modules?name=go/happyhour&kind=draw", testToken, wasm); st != 400 || !strings.Contains(fmt.Sprint(m["message"]), "bytes") {
		t.Fatalf("upload over the default size cap: %d %v; want 400 naming the size", st, m)
	}

	e := startEdge(t, func(c *configs.Config) {
		c.Demo = false
		c.Modules.MaxBytes, c.Modules.MaxMemoryPages, c.Modules.PoolSize = 8<<20, 64, 2
	})
	e.timeout = 2 * time.Minute
	st, m := e.do("POST", "/api/v1/modules?name=go/happyhour&kind=draw", testToken, wasm)
	if st != 201 {
		t.Fatalf("upload with raised limits: %d %v", st, m)
	}
	sha := m["sha256"].(string)
	now := time.Now().UTC()
	body := fmt.Sprintf(`{"activity":{"activityId":31,"name":"go","beginTime":%q,"endTime":%q,"stockCount":1000,"takeCount":5,"strategyId":31},
		"strategy":{"strategyId":31,"strategyMode":1,"grantType":1,"drawModule":"go/happyhour","awards":[{"awardId":"a","awardType":1,"awardName":"a","awardCount":1000,"awardRate":0.5}]}}`,
		now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	if st, m := e.do("POST", "/api/v1/activities", testToken, []byte(body)); st != 201 {
		t.Fatalf("deploy: %d %v", st, m)
	}
	for _, a := range []string{"submit", "approve", "start"} {
		e.do("POST", "/api/v1/activities/31/"+a, testToken, nil)
	}
	outcomes := map[string]int{}
	for i := range 40 {
		st, m := e.draw(fmt.Sprint("g", i), 31)
		if st != 200 || m["module"] != "go/happyhour@"+sha[:12] {
			t.Fatalf("draw %d through the Go module: %d %v", i, st, m)
		}
		outcomes[fmt.Sprint(m["outcome"])]++
	}
	// Rate 0.5, or 1.0 in the happy hour: 40 draws that all lose are
	// one chance in 2^40.
	if outcomes["win"] == 0 {
		t.Fatalf("40 draws at rate 0.5 through the Go module: %v", outcomes)
	}
}
