package wasm_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/flashlottery/lottery/wasm"
	"github.com/flashlottery/lottery/wasm/builtin"
)

// Example draws with a built-in module: a strategy names its draw module,
// and the result records which module and version decided.
func Example() {
	ctx := context.Background()
	h, err := wasm.NewHost(wasm.HostConfig{PoolSize: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer h.Close(ctx)

	s := &lottery.Strategy{ID: 1, Mode: lottery.ModeTotal, Module: builtin.Name(lottery.ModeTotal),
		Details: []lottery.StrategyDetail{
			{Award: lottery.Award{ID: "phone"}, Rate: 100_000},
			{Award: lottery.Award{ID: "coupon"}, Rate: 900_000},
		}}
	res, err := h.Draw(ctx, lottery.DrawRequest{Strategy: s, InStock: []bool{false, true}, Seed: 42})
	if err != nil {
		panic(err)
	}
	fmt.Println(s.Details[res.Index].ID, strings.HasPrefix(res.Module, "builtin/draw-total@"))
	// Output: coupon true
}

// ExampleHost_Upload pushes a new version of a draw module, draws with it,
// and rolls back to the first version.
func ExampleHost_Upload() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "modules")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	h, err := wasm.NewHost(wasm.HostConfig{DataDir: dir, PoolSize: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer h.Close(ctx)

	// Any module implementing ABI v1 will do; here, the built-in one.
	v1, err := h.Upload(ctx, "team/draw", abi.KindDraw, builtin.Module(lottery.ModeSingle))
	if err != nil {
		panic(err)
	}
	// A second version: the same code with an extra custom section.
	v2bytes := append(builtin.Module(lottery.ModeSingle), 0, 3, 2, 'v', '2')
	v2, err := h.Upload(ctx, "team/draw", abi.KindDraw, v2bytes)
	if err != nil {
		panic(err)
	}
	s := &lottery.Strategy{ID: 2, Mode: lottery.ModeSingle, Module: "team/draw",
		Details: []lottery.StrategyDetail{{Award: lottery.Award{ID: "all"}, Rate: lottery.RateScale}}}
	res, _ := h.Draw(ctx, lottery.DrawRequest{Strategy: s, InStock: []bool{true}, Seed: 7})
	fmt.Println(res.Index, res.Module == v2.ID())

	if _, err := h.Rollback(ctx, "team/draw", v1.SHA256[:12]); err != nil {
		panic(err)
	}
	active, _ := h.Active("team/draw")
	fmt.Println(active.SHA256 == v1.SHA256, len(h.List()))

	// An invalid module is refused with the reason, and changes nothing.
	_, err = h.Upload(ctx, "team/draw", abi.KindDraw, []byte("\x00asm\x01\x00\x00\x00\x02\x07\x01\x03env\x00"))
	fmt.Println(errors.Is(err, lottery.ErrInvalid))
	// Output:
	// 0 true
	// true 4
	// true
}

// ExampleHost_Decide runs a rule module. The module here is the test
// corpus's: activity 100000 plus the number of attributes.
func ExampleHost_Decide() {
	ctx := context.Background()
	h, err := wasm.NewHost(wasm.HostConfig{PoolSize: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer h.Close(ctx)
	bin, err := os.ReadFile("testdata/rule.wasm")
	if err != nil {
		panic(err)
	}
	if _, err := h.Upload(ctx, "tree/1", abi.KindRule, bin); err != nil {
		panic(err)
	}
	id, ok, err := h.Decide(ctx, "tree/1", abi.RuleInput{Attrs: []abi.Attr{
		abi.StrAttr(abi.KeyUserGender, "man"), abi.IntAttr(abi.KeyUserAge, 25),
	}})
	fmt.Println(id, ok, err)

	_, _, err = h.Decide(ctx, "tree/2", abi.RuleInput{})
	fmt.Println(errors.Is(err, wasm.ErrRuleUnavailable), errors.Is(err, lottery.ErrUnavailable))
	// Output:
	// 100002 true <nil>
	// true true
}
