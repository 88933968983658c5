// Package wasmgen emits WebAssembly binary modules from Go: types, imported
// and defined functions with locals, one memory with min/max pages, i32 and
// i64 globals, exports, active data segments, a start function, an optional
// name section, and a code builder for the integer subset of the instruction
// set (arithmetic, comparisons, conversions, loads and stores, locals and
// globals, block/loop/if/br/br_if/br_table, call, return, unreachable, plus
// memory.size/grow/copy/fill). AppendCustomSection adds a custom section to
// an encoded module. It is standard library only.
//
// It exists so that the repository can build its own modules with nothing
// but Go: the built-in draw modules (wasm/builtin) and the rule-tree compiler
// (rules) generate code with it at build or registration time, without
// wat2wasm, a C toolchain or an AssemblyScript compiler.
//
// Design decisions:
//
//   - Structured labels instead of depths. Block, Loop and If return a Label;
//     Br, BrIf and BrTable compute Wasm's relative branch depth from it and
//     report a branch to a label that is no longer open. Hand-counted depths
//     are the most common bug in hand-written Wasm, and a compiler emitting
//     nested trees would have to track them anyway.
//   - Sticky errors. Builder methods do not return errors or panic; the
//     first mistake in the module's declarations, else the first mistake of
//     each function (joined), is what Module.Encode returns. Generator code
//     then reads like the assembly it produces.
//   - Structure is checked, types are not. Encode checks indices, label
//     nesting, mutability, memory presence, limits and data bounds. It does
//     not type-check the operand stack: that would duplicate a validator,
//     and every consumer compiles the result with wazero (which validates
//     fully) before it serves anything. Tests here do exactly that.
//   - Deterministic output. The same calls produce the same bytes (types are
//     deduplicated in first-use order; locals are declared in runs in
//     declaration order), so generated artifacts can be committed and
//     compared byte for byte.
//   - Natural alignment. Load and Store always use the access size as the
//     alignment hint; Wasm allows unaligned addresses regardless, so a
//     separate hint parameter would only be a way to get it wrong.
//   - No tables, call_indirect, float arithmetic, SIMD or multi-value
//     blocks: nothing here needs them yet, and a smaller surface is easier
//     to test exhaustively. F32 and F64 exist as value types for signatures.
package wasmgen
