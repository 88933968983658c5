//go:build wasip1

package main

import "github.com/flashlottery/lottery/sdk/guest"

//go:wasmexport draw
func draw(ptr, size int32) int32 { return guest.Draw(ptr, size, pick) }
