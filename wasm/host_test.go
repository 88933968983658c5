package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/flashlottery/lottery/sdk/wasmgen"
	"github.com/flashlottery/lottery/wasm/builtin"
)

var ctx = context.Background()

// newHost starts a host on a fresh data directory (unless cfg names one)
// and closes it with the test.
func newHost(tb testing.TB, cfg HostConfig) *Host {
	tb.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = tb.TempDir()
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h, err := NewHost(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := h.Close(ctx); err != nil {
			tb.Error(err)
		}
	})
	return h
}

// variant returns the built-in module for mode with a custom section that
// makes its bytes, and so its version, differ by n.
func variant(mode lottery.Mode, n int) []byte {
	return wasmgen.AppendCustomSection(builtin.Module(mode), "variant", []byte(fmt.Sprint(n)))
}

// strategy returns a strategy of the given mode and module with n awards
// sharing the rate space.
func strategy(mode lottery.Mode, module string, n int) *lottery.Strategy {
	s := &lottery.Strategy{ID: int64(100 + n), Mode: mode, Module: module}
	for i := range n {
		s.Details = append(s.Details, lottery.StrategyDetail{
			Award: lottery.Award{ID: fmt.Sprint("a", i)},
			Rate:  int64(lottery.RateScale / (n + 1)),
		})
	}
	return s
}

func drawReq(s *lottery.Strategy, seed uint64) lottery.DrawRequest {
	in := make([]bool, len(s.Details))
	for i := range in {
		in[i] = true
	}
	return lottery.DrawRequest{Strategy: s, InStock: in, Seed: seed}
}

func TestBuiltinsMatchNative(t *testing.T) {
	h := newHost(t, HostConfig{})
	var native lottery.NativeDrawer
	for _, mode := range []lottery.Mode{lottery.ModeSingle, lottery.ModeTotal} {
		name := builtin.Name(mode)
		v, ok := h.Active(name)
		if !ok || !v.Builtin || v.SHA256 != builtin.SHA256(mode) {
			t.Fatalf("%s: active %+v, %v", name, v, ok)
		}
		s := strategy(mode, name, 7)
		ns := *s
		ns.Module = ""
		for seed := range uint64(2000) {
			got, err := h.Draw(ctx, drawReq(s, seed))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := native.Draw(ctx, drawReq(&ns, seed))
			if got.Index != want.Index || got.Module != v.ID() {
				t.Fatalf("%s seed %d: %+v, native %+v", name, seed, got, want)
			}
		}
	}
	got, err := h.Draw(ctx, drawReq(strategy(lottery.ModeTotal, "", 3), 1))
	if err != nil || got.Module != lottery.NativeModule {
		t.Fatalf("native fallback: %+v, %v", got, err)
	}
	// A mode the module does not implement is the module's error.
	_, err = h.Draw(ctx, drawReq(strategy(lottery.ModeTotal, builtin.Name(lottery.ModeSingle), 3), 1))
	if !errors.Is(err, ErrDrawUnavailable) || !errors.Is(err, lottery.ErrUnavailable) || !errors.Is(err, abi.CodeUnsupported) {
		t.Fatalf("mode mismatch: %v", err)
	}
}

func TestUploadListRollback(t *testing.T) {
	h := newHost(t, HostConfig{KeepVersions: 3})
	s := strategy(lottery.ModeSingle, "team/draw", 4)
	var vs []Version
	for i := range 4 {
		v, err := h.Upload(ctx, "team/draw", abi.KindDraw, variant(lottery.ModeSingle, i))
		if err != nil {
			t.Fatal(err)
		}
		if !v.Active || v.Kind != abi.KindDraw || v.Name != "team/draw" || len(v.SHA256) != 64 {
			t.Fatalf("upload %d: %+v", i, v)
		}
		res, err := h.Draw(ctx, drawReq(s, 1))
		if err != nil || res.Module != v.ID() {
			t.Fatalf("draw after upload %d: %+v, %v", i, res, err)
		}
		vs = append(vs, v)
	}
	// Uploading the active version again changes nothing.
	if v, err := h.Upload(ctx, "team/draw", abi.KindDraw, variant(lottery.ModeSingle, 3)); err != nil || v.SHA256 != vs[3].SHA256 || !v.Active {
		t.Fatalf("re-upload: %+v, %v", v, err)
	}
	var kept []string
	for _, v := range h.List() {
		if v.Name == "team/draw" {
			kept = append(kept, v.SHA256)
			if v.Active != (v.SHA256 == vs[3].SHA256) {
				t.Errorf("List: %+v", v)
			}
		}
	}
	if want := []string{vs[3].SHA256, vs[2].SHA256, vs[1].SHA256}; strings.Join(kept, ",") != strings.Join(want, ",") {
		t.Fatalf("kept %v, want %v", kept, want)
	}
	if _, err := os.Stat(filepath.Join(h.cfg.DataDir, "modules", vs[0].SHA256+".wasm")); !os.IsNotExist(err) {
		t.Errorf("the pruned version's bytes are still stored: %v", err)
	}

	v, err := h.Rollback(ctx, "team/draw", vs[1].SHA256[:12])
	if err != nil || v.SHA256 != vs[1].SHA256 || !v.Active {
		t.Fatalf("rollback: %+v, %v", v, err)
	}
	if res, err := h.Draw(ctx, drawReq(s, 1)); err != nil || res.Module != vs[1].ID() {
		t.Fatalf("draw after rollback: %+v, %v", res, err)
	}
	for _, tc := range []struct {
		name, sha string
		want      error
	}{
		{"team/draw", vs[0].SHA256, lottery.ErrNotFound}, // pruned
		{"team/draw", "abc", lottery.ErrNotFound},
		{"nobody", vs[1].SHA256, lottery.ErrNotFound},
		{builtin.Name(lottery.ModeSingle), builtin.SHA256(lottery.ModeSingle), lottery.ErrInvalid},
	} {
		if _, err := h.Rollback(ctx, tc.name, tc.sha); !errors.Is(err, tc.want) {
			t.Errorf("Rollback(%s, %.12s) = %v, want %v", tc.name, tc.sha, err, tc.want)
		}
	}

	for _, tc := range []struct {
		name string
		kind abi.Kind
		bin  []byte
		want string
	}{
		{"team/draw", abi.KindRule, corpus(t, "rule.wasm"), "is a draw module"},
		{"builtin/mine", abi.KindDraw, variant(lottery.ModeTotal, 9), "reserved"},
		{"../etc", abi.KindDraw, variant(lottery.ModeTotal, 9), "not a clean path"},
		{"a b", abi.KindDraw, variant(lottery.ModeTotal, 9), "only letters"},
		{"", abi.KindDraw, variant(lottery.ModeTotal, 9), "1 to 128"},
		{"x", 7, variant(lottery.ModeTotal, 9), "unknown module kind"},
	} {
		_, err := h.Upload(ctx, tc.name, tc.kind, tc.bin)
		var rej *RejectError
		if !errors.As(err, &rej) || !errors.Is(err, lottery.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Upload(%q, %v) = %v, want a rejection containing %q", tc.name, tc.kind, err, tc.want)
		}
	}
	if v, _ := h.Active("team/draw"); v.SHA256 != vs[1].SHA256 {
		t.Fatalf("a rejected upload changed the active version to %s", v.ID())
	}
	b, err := json.Marshal(v)
	if err != nil || !strings.Contains(string(b), `"kind":"draw"`) || !strings.Contains(string(b), `"version":"team/draw@`+vs[1].SHA256[:12]+`"`) {
		t.Fatalf("JSON %s, %v", b, err)
	}
}

func TestRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := HostConfig{DataDir: dir, PoolSize: 2, Logger: slog.New(slog.DiscardHandler)}
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := h.Upload(ctx, "d", abi.KindDraw, variant(lottery.ModeTotal, 1))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := h.Upload(ctx, "d", abi.KindDraw, variant(lottery.ModeTotal, 2))
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.Upload(ctx, "r", abi.KindRule, corpus(t, "rule.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Rollback(ctx, "d", v1.SHA256); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Draw(ctx, drawReq(strategy(lottery.ModeTotal, "d", 2), 1)); !errors.Is(err, lottery.ErrUnavailable) {
		t.Fatalf("draw after Close: %v", err)
	}
	if _, err := h.Upload(ctx, "d", abi.KindDraw, variant(lottery.ModeTotal, 3)); !errors.Is(err, lottery.ErrUnavailable) {
		t.Fatalf("upload after Close: %v", err)
	}

	h = newHost(t, cfg)
	if v, ok := h.Active("d"); !ok || v.SHA256 != v1.SHA256 {
		t.Fatalf("after restart d is %+v, %v; want %s", v, ok, v1.ID())
	}
	if v, ok := h.Active("r"); !ok || v.SHA256 != r.SHA256 {
		t.Fatalf("after restart r is %+v, %v", v, ok)
	}
	if res, err := h.Draw(ctx, drawReq(strategy(lottery.ModeTotal, "d", 2), 1)); err != nil || res.Module != v1.ID() {
		t.Fatalf("draw after restart: %+v, %v", res, err)
	}
	if _, err := h.Rollback(ctx, "d", v2.SHA256); err != nil {
		t.Fatal(err)
	}
	if id, ok, err := h.Decide(ctx, "r", abi.RuleInput{Attrs: []abi.Attr{abi.IntAttr(abi.KeyUserAge, 30)}}); err != nil || !ok || id != 100001 {
		t.Fatalf("decide after restart: %d, %v, %v", id, ok, err)
	}
}

func TestRestartWithCorruptModule(t *testing.T) {
	dir := t.TempDir()
	cfg := HostConfig{DataDir: dir, PoolSize: 1, Logger: slog.New(slog.DiscardHandler)}
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := h.Upload(ctx, "d", abi.KindDraw, variant(lottery.ModeTotal, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules", v.SHA256+".wasm"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	h = newHost(t, cfg)
	if _, ok := h.Active("d"); ok {
		t.Fatal("a corrupt module is active")
	}
	_, err = h.Draw(ctx, drawReq(strategy(lottery.ModeTotal, "d", 2), 1))
	if !errors.Is(err, ErrDrawUnavailable) || !strings.Contains(err.Error(), "no version is loaded") {
		t.Fatalf("draw: %v", err)
	}
	if len(h.List()) != 3 { // the two built-ins and d's kept version
		t.Fatalf("List: %+v", h.List())
	}
	if _, err := h.Upload(ctx, "d", abi.KindDraw, variant(lottery.ModeTotal, 2)); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewHost(cfg); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("NewHost with a corrupt index: %v", err)
	}
}

func TestInMemoryHost(t *testing.T) {
	h, err := NewHost(HostConfig{PoolSize: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	v1, err := h.Upload(ctx, "d", abi.KindDraw, variant(lottery.ModeSingle, 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Upload(ctx, "d", abi.KindDraw, variant(lottery.ModeSingle, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Rollback(ctx, "d", v1.SHA256); err != nil {
		t.Fatal(err)
	}
}

func TestConfig(t *testing.T) {
	for _, cfg := range []HostConfig{{Fuel: -1}, {MaxMemoryPages: 65537}, {Fuel: 1 << 62}} {
		if h, err := NewHost(cfg); err == nil {
			h.Close(ctx)
			t.Errorf("NewHost(%+v) accepted", cfg)
		}
	}
}
