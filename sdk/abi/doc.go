// Package abi is version 1 of the binary interface between the lottery host
// and its WebAssembly modules: the exports a rule module and a draw module
// must have, the fixed-layout little-endian encodings of their inputs, and
// the result codes. It is standard library only, so Go guests (GOOS=wasip1)
// and the host share one definition. sdk/README.md is the guide for module
// authors; this comment records why the ABI looks the way it does.
//
// Design decisions:
//
//   - Binary and fixed-layout on the hot path. Elsewhere (Shopify
//     Functions, proxy-wasm) JSON parsing is what eats guests' budgets; here
//     a draw input is a 24-byte header and 5 bytes per award, readable with
//     plain loads at constant offsets by a module generated from Go, written
//     in AssemblyScript or in C.
//   - A fixed input buffer instead of an allocator. The module exports
//     input_ptr() and input_cap(); the host asks once per instance, checks
//     the buffer lies in memory, then per call writes the input there and
//     calls the entry point with (ptr, len). No alloc/free round trip, no
//     guest allocator on the hot path, and one less export an untrusted
//     module can misbehave in. The entry points still take ptr so a future
//     version can pass inputs elsewhere without changing their signature.
//   - The version marker is a function, lottery_abi_version() -> i32, not a
//     global: Go's //go:wasmexport exports only functions, and every guest
//     language can export a function.
//   - Results are plain integers: decide returns an activity id (>= 1), 0 for
//     no match, or a negative Code; draw returns an award index, -1 (NoAward)
//     or a Code below -1. No output buffer to read back.
//   - The host supplies randomness and time (the seed and TimeMs fields), so
//     a draw is reproducible and auditable from (module sha256, input, seed).
//     Modules must be deterministic functions of their input; they may cache
//     derived data (alias tables) in their memory between calls.
//   - Canonical encodings. Decoders reject anything the encoders would not
//     produce (reserved bytes, flag values, trailing bytes), so an input's
//     bytes identify it and fuzzing can check decode-then-encode equality.
//     Sizes are bounded: at most MaxAwards awards, MaxAttrs attributes and
//     MaxInputSize bytes.
//   - Rule attributes are keyed by small integers with typed values (int64
//     or string). Keys the ABI does not name pass through, and guests ignore
//     keys they do not know, so keys can be added within version 1.
//   - Wasm value types are spelled as their binary-format bytes
//     (ValueType), which equal wazero's api.ValueType values, so the host can
//     compare signatures without this package importing wazero.
package abi
