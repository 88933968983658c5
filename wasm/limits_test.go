package wasm

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
)

func TestCorpusRejected(t *testing.T) {
	h := newHost(t, HostConfig{InitFuel: 50_000_000})
	for _, tc := range []struct {
		file string
		kind abi.Kind
		want string
	}{
		{"too_big.wasm", abi.KindDraw, "above the cap of 1048576"},
		{"malformed.wasm", abi.KindDraw, "malformed module"},
		{"import_env.wasm", abi.KindDraw, "forbidden import env.foo"},
		{"import_wasi_unknown.wasm", abi.KindDraw, "forbidden import wasi_snapshot_preview1.sock_open"},
		{"abi_version.wasm", abi.KindDraw, "ABI version 2"},
		{"bad_signature.wasm", abi.KindDraw, `export "draw" has signature (i32, i32) -> i64; ABI v1 wants (i32, i32) -> i32`},
		{"rule.wasm", abi.KindDraw, `missing function export "draw"`},
		{"trap.wasm", abi.KindRule, `missing function export "decide"`},
		{"reserved_export.wasm", abi.KindDraw, "__lottery_fuel is reserved"},
		{"memory_min.wasm", abi.KindDraw, "memory starts at 17 pages (1088 KiB), above the cap of 16 pages"},
		{"start_loop.wasm", abi.KindDraw, "instantiating"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := h.Upload(ctx, "corpus", tc.kind, corpus(t, tc.file))
			var rej *RejectError
			if !errors.As(err, &rej) || !errors.Is(err, lottery.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a rejection containing %q", err, tc.want)
			}
			if _, ok := h.Active("corpus"); ok {
				t.Fatal("a rejected module is active")
			}
		})
	}
	if h.lookup("corpus") != nil {
		t.Fatal("a rejected upload registered its name")
	}
	for v := range h.live {
		if strings.HasPrefix(v.id, "corpus@") {
			t.Fatalf("a rejected version is still live: %s", v.id)
		}
	}
}

// waitFull waits until every token of v's pool is an idle instance again.
func waitFull(t *testing.T, v *version) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v.mu.Lock()
		n := len(v.live)
		v.mu.Unlock()
		if n == v.size && len(v.tokens) == v.size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool of %s has %d live instances and %d idle tokens, want %d", v.id, n, len(v.tokens), v.size)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCorpusContained uploads the modules that misbehave only on some
// inputs: each bad call fails alone, its instance is replaced and every
// other call keeps succeeding.
func TestCorpusContained(t *testing.T) {
	h := newHost(t, HostConfig{})
	for _, tc := range []struct {
		file   string
		reason error  // errors.Is on the failed call
		text   string // or a substring of its message
	}{
		{"loop.wasm", errFuel, ""},
		{"trap.wasm", nil, "unreachable"},
		{"memory_bomb.wasm", nil, "unreachable"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			name := "corpus/" + strings.TrimSuffix(tc.file, ".wasm")
			ver, err := h.Upload(ctx, name, abi.KindDraw, corpus(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			v := h.lookup(name).active.Load()
			s := strategy(lottery.ModeSingle, name, 3)
			var best time.Duration = time.Hour
			const tries = 5 // the best of them is timed: a loaded machine deschedules some
			for i := range tries {
				start := time.Now()
				_, err := h.Draw(ctx, drawReq(s, 7))
				best = min(best, time.Since(start))
				var ce *CallError
				if !errors.As(err, &ce) || !errors.Is(err, ErrDrawUnavailable) || ce.Module != name || ce.Version != ver.SHA256[:12] ||
					(tc.reason != nil && !errors.Is(err, tc.reason)) || !strings.Contains(err.Error(), tc.text) {
					t.Fatalf("odd seed, try %d: %v", i, err)
				}
				if !strings.Contains(err.Error(), ver.ID()) {
					t.Fatalf("the error does not name the version: %v", err)
				}
				for seed := uint64(0); seed < 20; seed += 2 {
					if res, err := h.Draw(ctx, drawReq(s, seed)); err != nil || res.Index != 0 {
						t.Fatalf("even seed %d after a failure: %+v, %v", seed, res, err)
					}
				}
			}
			if tc.reason == errFuel && best > 5*time.Millisecond {
				t.Errorf("fuel stopped the infinite loop after %v, want under 5ms", best)
			}
			t.Logf("a failed call took %v", best)
			waitFull(t, v)
			if got := v.replaced.Load(); got != tries {
				t.Errorf("%d instances replaced, want %d", got, tries)
			}
		})
	}

	t.Run("memory_max.wasm", func(t *testing.T) {
		if _, err := h.Upload(ctx, "corpus/memory_max", abi.KindDraw, corpus(t, "memory_max.wasm")); err != nil {
			t.Fatal(err)
		}
		res, err := h.Draw(ctx, drawReq(strategy(lottery.ModeSingle, "corpus/memory_max", 1), 1))
		if err != nil || res.Index != abi.NoAward {
			t.Fatalf("growing past the page cap: %+v, %v; want NoAward (growth refused)", res, err)
		}
	})
	t.Run("wasi_sandbox.wasm", func(t *testing.T) {
		if _, err := h.Upload(ctx, "corpus/wasi", abi.KindDraw, corpus(t, "wasi_sandbox.wasm")); err != nil {
			t.Fatal(err)
		}
		res, err := h.Draw(ctx, drawReq(strategy(lottery.ModeSingle, "corpus/wasi", 1), 1))
		if err != nil || res.Index != abi.NoAward {
			t.Fatalf("path_open and sock_accept: %+v, %v; want both to fail (NoAward)", res, err)
		}
	})
	t.Run("rule.wasm", func(t *testing.T) {
		if _, err := h.Upload(ctx, "corpus/rule", abi.KindRule, corpus(t, "rule.wasm")); err != nil {
			t.Fatal(err)
		}
		attrs := make([]abi.Attr, 13)
		for i := range attrs {
			attrs[i] = abi.IntAttr(abi.Key(200+i), int64(i))
		}
		_, _, err := h.Decide(ctx, "corpus/rule", abi.RuleInput{Attrs: attrs})
		if !errors.Is(err, ErrRuleUnavailable) || !errors.Is(err, lottery.ErrUnavailable) || errors.Is(err, ErrDrawUnavailable) {
			t.Fatalf("13 attributes: %v", err)
		}
		if id, ok, err := h.Decide(ctx, "corpus/rule", abi.RuleInput{Attrs: attrs[:2]}); err != nil || !ok || id != 100002 {
			t.Fatalf("2 attributes: %d, %v, %v", id, ok, err)
		}
		if id, ok, err := h.Decide(ctx, "corpus/rule", abi.RuleInput{}); err != nil || ok || id != 0 {
			t.Fatalf("no attributes: %d, %v, %v", id, ok, err)
		}
		// Calling a module as the other kind, or one that does not exist.
		if _, err := h.Draw(ctx, drawReq(strategy(lottery.ModeSingle, "corpus/rule", 1), 1)); !errors.Is(err, ErrDrawUnavailable) {
			t.Fatalf("draw on a rule module: %v", err)
		}
		if _, _, err := h.Decide(ctx, "corpus/trap", abi.RuleInput{}); !errors.Is(err, ErrRuleUnavailable) {
			t.Fatalf("decide on a draw module: %v", err)
		}
		if _, _, err := h.Decide(ctx, "nobody", abi.RuleInput{}); !errors.Is(err, ErrRuleUnavailable) {
			t.Fatalf("decide on a missing module: %v", err)
		}
		// An input the ABI cannot carry is the caller's error.
		bad := abi.RuleInput{Attrs: []abi.Attr{abi.StrAttr(abi.KeyUserAge, "x")}}
		if _, _, err := h.Decide(ctx, "corpus/rule", bad); !errors.Is(err, lottery.ErrInvalid) {
			t.Fatalf("bad input: %v", err)
		}
	})
	t.Run("bad draw requests", func(t *testing.T) {
		s := strategy(lottery.ModeSingle, "corpus/trap", 2)
		for _, req := range []lottery.DrawRequest{
			{},
			{Strategy: s, InStock: []bool{true}},
			{Strategy: strategy(lottery.ModeSingle, "corpus/trap", 65), InStock: make([]bool, 65)},
			{Strategy: &lottery.Strategy{Mode: lottery.ModeSingle, Module: "corpus/trap", Details: []lottery.StrategyDetail{{Rate: -1}}}, InStock: []bool{true}},
			{Strategy: &lottery.Strategy{Mode: 9, Module: "corpus/trap", Details: []lottery.StrategyDetail{{Rate: 1}}}, InStock: []bool{true}},
		} {
			if res, err := h.Draw(ctx, req); !errors.Is(err, lottery.ErrInvalid) || res.Index != abi.NoAward {
				t.Errorf("Draw(%+v) = %+v, %v", req, res, err)
			}
		}
		waitFull(t, h.lookup("corpus/trap").active.Load())
	})
}

// TestDeadlineBackstop turns fuel off (a huge budget) and checks that the
// watchdog stops the infinite loop.
func TestDeadlineBackstop(t *testing.T) {
	h := newHost(t, HostConfig{Fuel: 1 << 60, Deadline: 20 * time.Millisecond})
	if _, err := h.Upload(ctx, "loop", abi.KindDraw, corpus(t, "loop.wasm")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := h.Draw(ctx, drawReq(strategy(lottery.ModeSingle, "loop", 1), 1))
	took := time.Since(start)
	if !errors.Is(err, errDeadline) || !errors.Is(err, ErrDrawUnavailable) {
		t.Fatalf("got %v after %v", err, took)
	}
	if took < 20*time.Millisecond || took > 500*time.Millisecond {
		t.Fatalf("the watchdog stopped the call after %v, want 20ms to 25ms (plus scheduling on a loaded machine)", took)
	}
	t.Logf("stopped after %v: %v", took, err)
	if _, err := h.Draw(ctx, drawReq(strategy(lottery.ModeSingle, "loop", 1), 2)); err != nil {
		t.Fatal(err)
	}
}

func TestStartFunctionFuel(t *testing.T) {
	h := newHost(t, HostConfig{})
	start := time.Now()
	_, err := h.Upload(ctx, "start", abi.KindDraw, corpus(t, "start_loop.wasm"))
	if !errors.Is(err, lottery.ErrInvalid) {
		t.Fatal(err)
	}
	t.Logf("rejected after %v with the default InitFuel: %v", time.Since(start), err)
}

// TestPrecheck covers the inputs that would make a decoder allocate by an
// untrusted count: each is refused in microseconds.
func TestPrecheck(t *testing.T) {
	hdr := "\x00asm\x01\x00\x00\x00"
	for _, tc := range []struct {
		name string
		bin  string
		want string // "" means accepted
	}{
		{"empty module", hdr, ""},
		{"export count bomb", hdr + "\x07\x05\xff\xff\xff\xff\x0f", "count 4294967295"},
		{"type params bomb", hdr + "\x01\x07\x01\x60\xff\xff\xff\xff\x0f", "count 4294967295"},
		{"section longer than the module", hdr + "\x01\x10\x00", "exceeds"},
		{"locals bomb", hdr + "\x0a\x09\x01\x07\x01\xff\xff\xff\xff\x0f\x7f", "count 4294967295"},
		{"many locals", hdr + "\x0a\x0b\x01\x09\x02\xc0\x84\x3d\x7f\xc0\x84\x3d\x7e", "count 1000000"},
		{"name section bomb", hdr + "\x00\x0c\x04name\x01\x05\xff\xff\xff\xff\x0f", "count 4294967295"},
		{"element vector bomb", hdr + "\x09\x0a\x01\x00\x41\x00\x0b\xff\xff\xff\xff\x0f", "count 4294967295"},
		{"bad magic", "\x00wasm\x01\x00\x00", "magic"},
		{"empty custom section", hdr + "\x00\x03\x02v2", ""},
	} {
		err := precheck([]byte(tc.bin))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if got := stripCustom([]byte(hdr + "\x00\x03\x02v2\x00\x05\x04name")); string(got) != hdr+"\x00\x05\x04name" {
		t.Errorf("stripCustom kept % x", got)
	}
}
