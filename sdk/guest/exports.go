//go:build wasip1

package guest

import "github.com/flashlottery/lottery/sdk/abi"

// The exports every module has; the entry point (draw or decide) is the
// module's own, see Draw and Decide. Go's linker exports the memory.

//go:wasmexport lottery_abi_version
func abiVersion() int32 { return abi.Version }

//go:wasmexport input_ptr
func exportInputPtr() int32 { return int32(inputPtr()) }

//go:wasmexport input_cap
func exportInputCap() int32 { return abi.MaxInputSize }
