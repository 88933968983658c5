package wasm

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
)

// TestGoGuest builds testdata/goguest.go with GOOS=wasip1 (-buildmode=c-shared,
// so it is a reactor with _initialize) and runs it: the instrumentation
// must handle what the Go compiler emits, the WASI imports of Go's runtime
// must link, and the runtime must start and draw under the default fuel.
func TestGoGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go program")
	}
	out := filepath.Join(t.TempDir(), "guest.wasm")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-buildmode=c-shared", "-o", out, "goguest.go")
	cmd.Dir = "testdata"
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=-buildvcs=false", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	h := newHost(t, HostConfig{MaxModuleBytes: 8 << 20, MaxMemoryPages: 512, PoolSize: 2})
	if _, err := h.Upload(ctx, "go/draw", abi.KindDraw, bin); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s := strategy(lottery.ModeSingle, "go/draw", 5)
	for seed := range uint64(200) {
		res, err := h.Draw(ctx, drawReq(s, seed))
		if err != nil {
			t.Fatal(err)
		}
		if want := int(seed&0xff) % 5; res.Index != want {
			t.Fatalf("seed %d: index %d, want %d", seed, res.Index, want)
		}
	}
	t.Logf("%d-byte Go guest: 200 draws in %v", len(bin), time.Since(start))

	small := newHost(t, HostConfig{MaxModuleBytes: 8 << 20})
	if _, err := small.Upload(ctx, "go/draw", abi.KindDraw, bin); err == nil || !strings.Contains(err.Error(), "above the cap of 16 pages") {
		t.Fatalf("with the default page cap: %v", err)
	}
}
