// Command happyhour is an example draw module written in Go: a weighted
// draw whose single-mode rates double during a daily happy hour, 20:00 to
// 22:00 in UTC+8 (the flash sales' time zone, which has no daylight saving
// time), read from the time the host puts in every input.
//
// Build it as a WASI reactor and upload it as a draw module:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o happyhour.wasm ./sdk/examples/happyhour
//	lottery modules push team/happyhour draw happyhour.wasm   # needs raised host limits, see sdk/README.md
//
// Why time and not history: the answer must be a function of the input
// alone (sdk/abi), and ABI v1 carries no per-user history, so a "streak" or
// "pity" rule cannot be computed fairly inside a module. The host's time
// and seed are in the input, so a happy-hour draw is as reproducible and
// auditable as any other: (module, input, seed) gives the award.
//
// The algorithm, which the tests check over many seeds and times, and
// which the AssemblyScript template (sdk/assemblyscript) implements bit for
// bit:
//
//   - Single mode: weights are the rates, times 2 in happy hour; the miss
//     weight is 1,000,000 minus their sum, or 0 when the doubled rates sum
//     above 1,000,000 (they are then renormalised: nobody misses). An award
//     drawn without stock is no award, as in the built-in draw.
//   - Total mode: weights are the rates of awards in stock; none left is no
//     award. Happy hour changes nothing here: doubling every weight keeps
//     every chance the same.
//   - r = hi64(SplitMix64(seed) * total weight), and the award is the first
//     whose running sum of weights exceeds r.
//
// This is a linear scan, not the built-in alias table, so for the same seed
// it may pick a different award than the built-in module with the same
// rates would; the chances are the same outside happy hour.
package main

import (
	"math/bits"

	"github.com/flashlottery/lottery/sdk/abi"
)

// The happy hour: [HappyStart, HappyEnd) in milliseconds after midnight
// in the UTC offset Zone, and the factor single-mode rates are multiplied
// by inside it.
const (
	Zone       = 8 * 3600 * 1000
	HappyStart = 20 * 3600 * 1000
	HappyEnd   = 22 * 3600 * 1000
	Boost      = 2
)

const dayMs = 24 * 3600 * 1000

// happy reports whether the unix time ms falls in the happy hour.
func happy(ms int64) bool {
	t := (ms + Zone) % dayMs
	if t < 0 {
		t += dayMs
	}
	return t >= HappyStart && t < HappyEnd
}

// pick is the draw.
func pick(in *abi.DrawInput) (int, error) {
	boost := uint64(1)
	if in.Mode == abi.ModeSingle && happy(in.TimeMs) {
		boost = Boost
	}
	var sum uint64
	for _, a := range in.Awards {
		sum += weight(in.Mode, a, boost)
	}
	total := sum
	if in.Mode == abi.ModeSingle {
		total = max(sum, abi.RateScale)
	}
	if total == 0 {
		return abi.NoAward, nil
	}
	r, _ := bits.Mul64(splitMix64(in.Seed), total)
	var acc uint64
	for i, a := range in.Awards {
		acc += weight(in.Mode, a, boost)
		if r < acc {
			if !a.InStock {
				return abi.NoAward, nil
			}
			return i, nil
		}
	}
	return abi.NoAward, nil // the miss
}

func weight(mode abi.Mode, a abi.Award, boost uint64) uint64 {
	if mode == abi.ModeTotal && !a.InStock {
		return 0
	}
	return uint64(a.Rate) * boost
}

// splitMix64 is the SplitMix64 finaliser, as lottery.SplitMix64: it spreads
// the host's seed over 64 bits.
func splitMix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// main does not run: a reactor (-buildmode=c-shared) only initialises its
// packages, and the host calls the exports.
func main() {}
