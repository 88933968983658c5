// Command goguest is a draw module written in Go for TestGoGuest: it picks
// award (first byte of the seed) modulo (number of awards), after some
// allocation so the Go runtime does real work under fuel.
package main

import "unsafe"

var input [4096]byte

//go:wasmexport lottery_abi_version
func version() int32 { return 1 }

//go:wasmexport input_ptr
func inputPtr() int32 { return int32(uintptr(unsafe.Pointer(&input[0]))) }

//go:wasmexport input_cap
func inputCap() int32 { return int32(len(input)) }

//go:wasmexport draw
func draw(ptr, n int32) int32 {
	m := map[int]int{}
	for i := 0; i < 100; i++ {
		m[i] = i * 2
	}
	if input[3] == 0 || m[99] != 198 {
		return -2
	}
	return int32(int(input[8]) % int(input[3]))
}

func main() {}
