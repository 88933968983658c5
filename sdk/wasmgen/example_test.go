package wasmgen_test

import (
	"context"
	"fmt"

	"github.com/flashlottery/lottery/sdk/wasmgen"
	"github.com/tetratelabs/wazero"
)

// Example builds a module exporting factorial(n) with a loop, then runs it
// with wazero.
func Example() {
	var m wasmgen.Module
	i64 := []wasmgen.ValType{wasmgen.I64}
	f := m.Func("factorial", wasmgen.FuncType{Params: i64, Results: i64})
	n := f.Param(0)
	acc := f.Local(wasmgen.I64)
	f.I64Const(1)
	f.LocalSet(acc)
	done := f.Block(wasmgen.Void)
	loop := f.Loop(wasmgen.Void)
	f.LocalGet(n)
	f.I64Const(1)
	f.Op(wasmgen.I64LeU)
	f.BrIf(done) // n <= 1: leave
	f.LocalGet(acc)
	f.LocalGet(n)
	f.Op(wasmgen.I64Mul)
	f.LocalSet(acc)
	f.LocalGet(n)
	f.I64Const(1)
	f.Op(wasmgen.I64Sub)
	f.LocalSet(n)
	f.Br(loop)
	f.End() // loop
	f.End() // block
	f.LocalGet(acc)
	m.ExportFunc("factorial", f)

	bin, err := m.Encode()
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	mod, err := r.Instantiate(ctx, bin)
	if err != nil {
		panic(err)
	}
	res, err := mod.ExportedFunction("factorial").Call(ctx, 20)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(bin), "bytes; 20! =", res[0])
	// Output: 78 bytes; 20! = 2432902008176640000
}
