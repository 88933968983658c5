package examples_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/flashlottery/lottery/wasm"
)

var ctx = context.Background()

// asArtifact is the committed AssemblyScript build of the happy-hour draw.
const asArtifact = "../assemblyscript/testdata/happyhour.wasm"

// Go guests are about 2.7 MB and grow their memory to a few MiB at
// _initialize: above the host's defaults, which are sized for small
// modules.
const (
	goModuleBytes = 8 << 20
	goMemoryPages = 64
)

// newHost starts a host whose clock is *now and closes it with the test.
func newHost(t *testing.T, now *atomic.Int64) *wasm.Host {
	t.Helper()
	h, err := wasm.NewHost(wasm.HostConfig{
		MaxModuleBytes: goModuleBytes,
		MaxMemoryPages: goMemoryPages,
		PoolSize:       2,
		Logger:         slog.New(slog.DiscardHandler),
		Now:            func() time.Time { return time.UnixMilli(now.Load()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return h
}

// buildGo builds the example in dir with GOOS=wasip1 as a reactor, as
// `make wasm` does.
func buildGo(t *testing.T, dir string) []byte {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a Go program")
	}
	out := filepath.Join(t.TempDir(), "module.wasm")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-buildmode=c-shared", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=-buildvcs=false", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func upload(t *testing.T, h *wasm.Host, name string, kind abi.Kind, bin []byte) {
	t.Helper()
	if _, err := h.Upload(ctx, name, kind, bin); err != nil {
		t.Fatal(err)
	}
}

// happyHour is the happy-hour draw as its documentation states it, written
// apart from the modules: cumulative weights searched with sort.Search.
func happyHour(in abi.DrawInput) int {
	local := time.UnixMilli(in.TimeMs).In(time.FixedZone("UTC+8", 8*3600))
	sinceMidnight := time.Duration(local.Hour())*time.Hour + time.Duration(local.Minute())*time.Minute +
		time.Duration(local.Second())*time.Second + time.Duration(local.Nanosecond())
	happy := sinceMidnight >= 20*time.Hour && sinceMidnight < 22*time.Hour

	cum := make([]uint64, len(in.Awards))
	var sum uint64
	for i, a := range in.Awards {
		w := uint64(a.Rate)
		switch {
		case in.Mode == abi.ModeTotal && !a.InStock:
			w = 0
		case in.Mode == abi.ModeSingle && happy:
			w *= 2
		}
		sum += w
		cum[i] = sum
	}
	total := sum
	if in.Mode == abi.ModeSingle && total < abi.RateScale {
		total = abi.RateScale
	}
	if total == 0 {
		return abi.NoAward
	}
	r, _ := bits.Mul64(lottery.SplitMix64(in.Seed), total)
	i := sort.Search(len(cum), func(i int) bool { return cum[i] > r })
	if i == len(cum) || !in.Awards[i].InStock {
		return abi.NoAward
	}
	return i
}

// drawCase is a strategy with stock flags.
type drawCase struct {
	name    string
	mode    lottery.Mode
	rates   []int64
	inStock []bool
}

var drawCases = []drawCase{
	{"single small rates", lottery.ModeSingle, []int64{10_000, 50_000, 100_000}, []bool{true, true, true}},
	{"single renormalised in happy hour", lottery.ModeSingle, []int64{300_000, 200_000, 250_000}, []bool{true, false, true}},
	{"single full", lottery.ModeSingle, []int64{1_000_000}, []bool{true}},
	{"single zero rates", lottery.ModeSingle, []int64{0, 0}, []bool{true, true}},
	{"total", lottery.ModeTotal, []int64{1, 500_000, 999_999, 7}, []bool{true, true, false, true}},
	{"total none in stock", lottery.ModeTotal, []int64{100, 200}, []bool{false, false}},
	{"total 64 awards", lottery.ModeTotal, rates(64, 15_625), stock(64)},
}

func rates(n int, r int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = r + int64(i)
	}
	return out
}

func stock(n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = i%3 != 0
	}
	return out
}

// The times drawn at, in unix milliseconds: either side of each edge of the
// happy hour, before 1970, and far from it.
var drawTimes = func() []int64 {
	cst := time.FixedZone("UTC+8", 8*3600)
	day := time.Date(2026, 11, 11, 0, 0, 0, 0, cst)
	at := func(d time.Duration) int64 { return day.Add(d).UnixMilli() }
	return []int64{
		at(20*time.Hour - time.Millisecond), at(20 * time.Hour), at(21 * time.Hour),
		at(22*time.Hour - time.Millisecond), at(22 * time.Hour), at(9 * time.Hour),
		time.Date(1969, 7, 20, 20, 17, 0, 0, cst).UnixMilli(), // in happy hour, negative
		time.Date(1969, 7, 20, 12, 0, 0, 0, cst).UnixMilli(),
		0, -1,
	}
}()

// checkHappyHour draws with module name over every case, time and seeds
// and compares each answer with happyHour.
func checkHappyHour(t *testing.T, h *wasm.Host, now *atomic.Int64, name string, seeds uint64) {
	for _, c := range drawCases {
		s := &lottery.Strategy{ID: 1, Mode: c.mode, Module: name}
		in := abi.DrawInput{Mode: abi.Mode(c.mode)}
		for i, r := range c.rates {
			s.Details = append(s.Details, lottery.StrategyDetail{Award: lottery.Award{ID: "a"}, Rate: r})
			in.Awards = append(in.Awards, abi.Award{Rate: uint32(r), InStock: c.inStock[i]})
		}
		for _, ms := range drawTimes {
			now.Store(ms)
			in.TimeMs = ms
			for seed := range seeds {
				seed *= 0x9e3779b97f4a7c15 // spread the seeds over 64 bits
				in.Seed = seed
				res, err := h.Draw(ctx, lottery.DrawRequest{Strategy: s, InStock: c.inStock, Seed: seed})
				if err != nil {
					t.Fatalf("%s at %d seed %#x: %v", c.name, ms, seed, err)
				}
				if want := happyHour(in); res.Index != want {
					t.Fatalf("%s at %d seed %#x: award %d, want %d", c.name, ms, seed, res.Index, want)
				}
			}
		}
	}
}

// checkBoost checks that happy hour doubles the chance to win in single
// mode: 20% outside, 40% inside, over 2000 seeds.
func checkBoost(t *testing.T, h *wasm.Host, now *atomic.Int64, name string) {
	s := &lottery.Strategy{ID: 2, Mode: lottery.ModeSingle, Module: name, Details: []lottery.StrategyDetail{
		{Award: lottery.Award{ID: "a"}, Rate: 50_000}, {Award: lottery.Award{ID: "b"}, Rate: 150_000},
	}}
	for _, c := range []struct {
		ms     int64
		lo, hi int
	}{{drawTimes[0], 340, 460}, {drawTimes[1], 720, 880}} {
		now.Store(c.ms)
		wins := 0
		for seed := range uint64(2000) {
			res, err := h.Draw(ctx, lottery.DrawRequest{Strategy: s, InStock: []bool{true, true}, Seed: seed})
			if err != nil {
				t.Fatal(err)
			}
			if res.Index != abi.NoAward {
				wins++
			}
		}
		if wins < c.lo || wins > c.hi {
			t.Errorf("at %d: %d wins of 2000, want %d..%d", c.ms, wins, c.lo, c.hi)
		}
	}
}

func TestHappyHourGo(t *testing.T) {
	bin := buildGo(t, "happyhour")
	var now atomic.Int64
	h := newHost(t, &now)
	upload(t, h, "go/happyhour", abi.KindDraw, bin)
	checkHappyHour(t, h, &now, "go/happyhour", 100)
	checkBoost(t, h, &now, "go/happyhour")
}

func TestHappyHourAssemblyScript(t *testing.T) {
	bin, err := os.ReadFile(asArtifact)
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Int64
	h := newHost(t, &now)
	upload(t, h, "as/happyhour", abi.KindDraw, bin)
	seeds := uint64(500)
	if testing.Short() {
		seeds = 50
	}
	checkHappyHour(t, h, &now, "as/happyhour", seeds)
	checkBoost(t, h, &now, "as/happyhour")
}

// TestAssemblyScriptSmall checks what the template promises: the module
// imports nothing, so the host's default limits take it.
func TestAssemblyScriptSmall(t *testing.T) {
	bin, err := os.ReadFile(asArtifact)
	if err != nil {
		t.Fatal(err)
	}
	h, err := wasm.NewHost(wasm.HostConfig{PoolSize: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	upload(t, h, "as/happyhour", abi.KindDraw, bin)
	if _, err := h.Upload(ctx, "as/rule", abi.KindRule, bin); !errors.Is(err, lottery.ErrInvalid) {
		t.Fatalf("a draw module uploaded as a rule module: %v", err)
	}
}

// TestAssemblyScriptReproducible rebuilds the AssemblyScript example with
// the pinned compiler, when it is installed (npm ci in sdk/assemblyscript),
// and checks the committed artifact is what the sources build to.
func TestAssemblyScriptReproducible(t *testing.T) {
	asc, err := filepath.Abs("../assemblyscript/node_modules/.bin/asc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(asc); err != nil {
		t.Skip("the AssemblyScript compiler is not installed (make wasm, or npm ci in sdk/assemblyscript)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not on PATH")
	}
	out := filepath.Join(t.TempDir(), "happyhour.wasm")
	cmd := exec.Command(asc, "assembly/happyhour.ts", "--target", "release", "--outFile", out)
	cmd.Dir = "../assemblyscript"
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("asc: %v\n%s", err, b)
	}
	fresh, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(asArtifact)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Fatalf("%s (%d bytes) differs from a fresh build (%d bytes): run make wasm and commit it", asArtifact, len(committed), len(fresh))
	}
}

func TestSegment(t *testing.T) {
	bin := buildGo(t, "segment")
	var now atomic.Int64
	h := newHost(t, &now)
	upload(t, h, "go/segment", abi.KindRule, bin)
	age, level, days := abi.KeyUserAge, abi.KeyUserLevel, abi.KeyDaysSinceRegistration
	tags, city := abi.KeyUserTags, abi.KeyUserCity
	for _, c := range []struct {
		name  string
		attrs []abi.Attr
		want  int64 // 0: no match
		code  abi.Code
	}{
		{"nothing", nil, 0, 0},
		{"vip at level 3", []abi.Attr{abi.StrAttr(tags, "new"), abi.StrAttr(tags, "vip"), abi.IntAttr(level, 3)}, 100101, 0},
		{"vip at level 2", []abi.Attr{abi.StrAttr(tags, "vip"), abi.IntAttr(level, 2)}, 0, 0},
		{"vip without level", []abi.Attr{abi.StrAttr(tags, "vip")}, 0, 0},
		{"level 9 without the tag", []abi.Attr{abi.StrAttr(tags, "VIP"), abi.IntAttr(level, 9)}, 0, 0},
		{"vip before newcomer", []abi.Attr{abi.IntAttr(days, 1), abi.IntAttr(level, 5), abi.StrAttr(tags, "vip")}, 100101, 0},
		{"newcomer", []abi.Attr{abi.IntAttr(days, 6)}, 100102, 0},
		{"a week old", []abi.Attr{abi.IntAttr(days, 7)}, 0, 0},
		{"newcomer before campus", []abi.Attr{abi.IntAttr(age, 20), abi.StrAttr(city, "wuhan"), abi.IntAttr(days, 0)}, 100102, 0},
		{"campus", []abi.Attr{abi.IntAttr(age, 18), abi.StrAttr(city, "hangzhou")}, 100103, 0},
		{"campus at 25", []abi.Attr{abi.StrAttr(city, "beijing"), abi.IntAttr(age, 25)}, 100103, 0},
		{"too old for campus", []abi.Attr{abi.IntAttr(age, 26), abi.StrAttr(city, "beijing")}, 0, 0},
		{"too young for campus", []abi.Attr{abi.IntAttr(age, 17), abi.StrAttr(city, "beijing")}, 0, 0},
		{"other city", []abi.Attr{abi.IntAttr(age, 20), abi.StrAttr(city, "shenzhen")}, 0, 0},
		{"campus without city", []abi.Attr{abi.IntAttr(age, 20)}, 0, 0},
		{"unknown keys ignored", []abi.Attr{{Key: 200, Type: abi.AttrString, Str: "vip"}, {Key: 7, Type: abi.AttrInt, Int: 1}, abi.IntAttr(days, 2)}, 100102, 0},
		{"gender does not matter", []abi.Attr{abi.StrAttr(abi.KeyUserGender, "woman"), abi.IntAttr(days, 3)}, 100102, 0},
		{"negative age", []abi.Attr{abi.IntAttr(age, -1), abi.IntAttr(days, 1)}, 0, abi.CodeBadInput},
	} {
		t.Run(c.name, func(t *testing.T) {
			id, ok, err := h.Decide(ctx, "go/segment", abi.RuleInput{TimeMs: 1, Attrs: c.attrs})
			if c.code != 0 {
				if !errors.Is(err, c.code) || !errors.Is(err, wasm.ErrRuleUnavailable) {
					t.Fatalf("got %d, %v, %v; want error %v", id, ok, err, c.code)
				}
				return
			}
			if err != nil || id != c.want || ok != (c.want != 0) {
				t.Fatalf("got %d, %v, %v; want %d", id, ok, err, c.want)
			}
		})
	}
	if _, err := h.Upload(ctx, "go/draw", abi.KindDraw, bin); !errors.Is(err, lottery.ErrInvalid) {
		t.Fatalf("a rule module uploaded as a draw module: %v", err)
	}
}
