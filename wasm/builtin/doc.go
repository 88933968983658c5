// Package builtin holds the built-in draw modules: WebAssembly versions of
// lottery.NativeDrawer for strategy modes 1 (single-item rates) and 2 (total
// rate), implementing ABI v1 (sdk/abi). They are what a strategy runs when
// it names "builtin/draw-single" or "builtin/draw-total", the reference a
// custom draw module is compared with, and the smallest complete example of
// a draw module.
//
// Design decisions:
//
//   - Generated from Go, committed as bytes. internal/drawgen emits the
//     modules with sdk/wasmgen; go generate (internal/gen) writes
//     draw_single.wasm and draw_total.wasm, which are embedded with
//     go:embed. go build needs nothing but Go, the artifacts are reviewable
//     by size and hash, and a test regenerates them and fails if the
//     committed bytes differ from their source.
//   - Exactly the native algorithm, not an approximation: the same integer
//     weights, Vose's alias method in integer arithmetic, SplitMix64 of the
//     seed and of seed^0x9e3779b97f4a7c15, and the high halves of 64x64-bit
//     products (built from 32-bit halves) for the column and the coin. A
//     differential test runs a million seeded draws over random strategies
//     through wazero and requires the same index as lottery.NativeDrawer
//     every time, so a draw is reproducible from (module sha256, input,
//     seed) whichever drawer made it.
//   - A one-entry table cache in linear memory, keyed by the input's award
//     bytes. NativeDrawer caches tables per strategy; a module cannot know
//     strategies, but consecutive draws on an instance are mostly for the
//     same hot strategy in a flash sale. Measured through wazero with the
//     host's encoding included: 4 awards about 70 ns a draw on a hit and
//     100 ns on a rebuild, 64 awards about 400 ns and 900 ns. The table is a
//     pure function of the key, so the cache changes costs, never answers;
//     TestCacheKey changes each byte of an award (first, middle and last
//     award, every award count) to show the key covers the whole input.
//   - One module per mode, each rejecting the other mode with
//     abi.CodeUnsupported: a strategy names its module, and a mismatch is a
//     configuration error worth surfacing, not something to paper over.
//   - Fixed resources: one 64 KiB page (min = max, never grown), no imports,
//     loops bounded by the 65 columns of the largest strategy.
package builtin
