// Package examples holds example lottery modules, each its own main
// package built for GOOS=wasip1 (see sdk/guest): happyhour, a draw module
// whose rates rise in a daily time window read from the host's time, and
// segment, a rule module that picks an activity from user attributes. The
// AssemblyScript template (sdk/assemblyscript) implements the same happy
// hour draw.
//
// This package itself is empty; its tests build the examples with the Go
// toolchain (skipped under -short), load them and the committed
// AssemblyScript build into a wasm.Host, and compare every answer with one
// computed here in Go. `make wasm` builds the examples into bin/wasm.
package examples
