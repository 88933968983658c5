package builtin

//go:generate go run ./internal/gen

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"slices"

	"github.com/flashlottery/lottery/lottery"
)

var (
	//go:embed draw_single.wasm
	drawSingle []byte
	//go:embed draw_total.wasm
	drawTotal []byte
)

func embedded(mode lottery.Mode) []byte {
	switch mode {
	case lottery.ModeSingle:
		return drawSingle
	case lottery.ModeTotal:
		return drawTotal
	}
	return nil
}

// Module returns a copy of the built-in draw module for mode, or nil if
// there is none. The module implements ABI v1 (sdk/abi) and draws exactly
// what lottery.NativeDrawer draws for the same strategy, stock and seed.
func Module(mode lottery.Mode) []byte { return slices.Clone(embedded(mode)) }

// Name returns the registry name of the built-in draw module for mode
// ("builtin/draw-single", "builtin/draw-total"), or "" if there is none.
func Name(mode lottery.Mode) string {
	switch mode {
	case lottery.ModeSingle:
		return "builtin/draw-single"
	case lottery.ModeTotal:
		return "builtin/draw-total"
	}
	return ""
}

// SHA256 returns the hex-encoded SHA-256 of the module for mode (its
// version, as recorded with each draw), or "" if there is none.
func SHA256(mode lottery.Mode) string {
	b := embedded(mode)
	if b == nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
