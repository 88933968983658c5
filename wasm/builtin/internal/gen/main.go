// Command gen writes the built-in draw modules (draw_single.wasm and
// draw_total.wasm) into the current directory. It is run by go generate in
// wasm/builtin.
package main

import (
	"fmt"
	"os"

	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/flashlottery/lottery/wasm/builtin/internal/drawgen"
)

func main() {
	for _, mode := range []abi.Mode{abi.ModeSingle, abi.ModeTotal} {
		b, err := drawgen.Module(mode)
		if err == nil {
			err = os.WriteFile(drawgen.Name(mode)+".wasm", b, 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}
