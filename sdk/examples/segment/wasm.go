//go:build wasip1

package main

import "github.com/flashlottery/lottery/sdk/guest"

//go:wasmexport decide
func decide(ptr, size int32) int64 { return guest.Decide(ptr, size, segment) }
