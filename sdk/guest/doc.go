// Package guest is for writing lottery modules (ABI v1, sdk/abi) in Go. A
// module is a main package built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o draw.wasm .
//
// Importing guest gives the module the exports every module has
// (lottery_abi_version, input_ptr and input_cap; Go's linker exports the
// memory). The module exports its entry point itself, a one-line function
// handing the ABI's arguments and a plain Go function to Draw or Decide,
// which decode the input with sdk/abi and encode the answer:
//
//	//go:build wasip1
//
//	//go:wasmexport draw
//	func draw(ptr, size int32) int32 { return guest.Draw(ptr, size, pick) }
//
//	func pick(in *abi.DrawInput) (award int, err error) { ... }
//
// sdk/examples has a draw module and a rule module; sdk/README.md is the
// guide.
//
// # Design decisions
//
// The module exports its own entry point; nothing is registered. The host
// tells a module's kind from its exports (abi.Exports) and refuses, at
// upload, a module without the entry point of the kind it is uploaded as.
// If this package exported both draw and decide, every Go module would
// pass as both kinds, and a draw module uploaded as a rule module would be
// accepted and then fail every decision. A reactor also never runs main, so
// registration would have to happen in an init function: state a reader
// has to go looking for. The one-line export is checked twice: the
// compiler holds it to Draw's and Decide's types, and the host checks the
// export's Wasm signature at upload.
//
// The input buffer is a package variable: abi.MaxInputSize bytes of Go
// memory, declared as uint64s so it is 8-byte aligned. ABI v1 wants a fixed
// buffer rather than an allocator round trip, and a Go module's linear
// memory is Go's heap, so the buffer must be memory the Go runtime owns.
// Draw and Decide accept only (input_ptr, size <= input_cap), which is all
// an ABI v1 host passes, and answer anything else with abi.CodeBadInput
// instead of reading memory the module did not offer.
//
// Decoding reuses one abi.DrawInput and one abi.RuleInput, so a draw
// allocates nothing (a rule decision allocates its string attributes). The
// function must not keep its input after it returns: the next call
// overwrites it. The host never calls an instance concurrently.
//
// Errors become codes through abi.CodeOf: an input that does not decode is
// answered with abi.CodeBadInput or abi.CodeVersion without calling the
// function; an error carrying an abi.Code is that code; any other error is
// abi.CodeInternal. So is an answer the ABI cannot carry or the host would
// misread: an award index outside the input, a matched activity id below 1,
// or a code that reads as a result (abi.CodeFailed, -1, is NoAward to a
// draw).
//
// Panics are not recovered. Go's runtime reports the panic and exits; the
// host fails the call and replaces the instance. Recovering would keep
// serving from an instance in an unknown state.
//
// Only the //go:wasmexport file carries a wasip1 build constraint. The
// rest is plain Go, built, vetted and unit-tested on any platform.
//
// Limits: a Go module is about 2.7 MB and its runtime needs about 3 MiB
// (48 pages) of memory to start, more as it allocates. The host's defaults
// (1 MiB modules, 16 pages) are sized for small modules, so an edge that
// runs Go modules needs wasm.HostConfig.MaxModuleBytes and MaxMemoryPages
// raised (the tests use 8 MiB and 64 pages). Instantiating one costs
// milliseconds; calls cost microseconds and run under the same fuel as any
// module, the Go runtime's work (a garbage collection included) counted.
package guest
