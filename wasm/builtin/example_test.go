package builtin_test

import (
	"context"
	"fmt"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/flashlottery/lottery/wasm/builtin"
	"github.com/tetratelabs/wazero"
)

// Example runs the total-rate module with wazero the way the host does:
// find the input buffer once, then per draw write the encoded input there
// and call draw. It picks what lottery.NativeDrawer picks.
func Example() {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	mod, err := r.Instantiate(ctx, builtin.Module(lottery.ModeTotal))
	if err != nil {
		panic(err)
	}
	res, err := mod.ExportedFunction(abi.ExportInputPtr).Call(ctx)
	if err != nil {
		panic(err)
	}
	ptr := uint32(res[0])
	draw := mod.ExportedFunction(abi.ExportDraw)

	// Three awards at 20%, 30% and 50%; the second is sold out, so the
	// others share its rate: 2/7 and 5/7.
	in := abi.DrawInput{Mode: abi.ModeTotal, Awards: []abi.Award{
		{Rate: 200_000, InStock: true}, {Rate: 300_000, InStock: false}, {Rate: 500_000, InStock: true},
	}}
	s := &lottery.Strategy{ID: 1, Mode: lottery.ModeTotal, Details: []lottery.StrategyDetail{{Rate: 200_000}, {Rate: 300_000}, {Rate: 500_000}}}
	var native lottery.NativeDrawer
	buf := make([]byte, 0, abi.MaxDrawInputSize)
	for seed := uint64(1); seed <= 5; seed++ {
		in.Seed = seed
		b, err := in.AppendBinary(buf[:0])
		if err != nil {
			panic(err)
		}
		mod.Memory().Write(ptr, b)
		res, err := draw.Call(ctx, uint64(ptr), uint64(len(b)))
		if err != nil {
			panic(err)
		}
		idx, err := abi.DrawResult(int32(res[0]), len(in.Awards))
		if err != nil {
			panic(err)
		}
		want, _ := native.Draw(ctx, lottery.DrawRequest{Strategy: s, InStock: []bool{true, false, true}, Seed: seed})
		fmt.Println(seed, idx, idx == want.Index)
	}
	fmt.Println(builtin.Name(lottery.ModeTotal), len(builtin.Module(lottery.ModeTotal)) < 2048)
	// Output:
	// 1 2 true
	// 2 2 true
	// 3 0 true
	// 4 2 true
	// 5 2 true
	// builtin/draw-total true
}
