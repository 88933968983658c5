package wasm

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/flashlottery/lottery/wasm/builtin"
	"github.com/tetratelabs/wabin/binary"
	wabin "github.com/tetratelabs/wabin/wasm"
	"github.com/tetratelabs/wazero/api"
)

var modeNames = map[lottery.Mode]string{lottery.ModeSingle: "single", lottery.ModeTotal: "total"}

// BenchmarkDraw is one draw through the pool: module lookup, an instance
// from the pool, the input encoded into its memory, the call under fuel and
// the deadline, the result mapped. The native drawer is the baseline.
func BenchmarkDraw(b *testing.B) {
	h := newHost(b, HostConfig{})
	for _, mode := range []lottery.Mode{lottery.ModeSingle, lottery.ModeTotal} {
		for _, module := range []string{builtin.Name(mode), ""} {
			name := modeNames[mode] + "/wasm"
			if module == "" {
				name = modeNames[mode] + "/native"
			}
			s := strategy(mode, module, 8)
			b.Run(name, func(b *testing.B) {
				req := drawReq(s, 0)
				b.ReportAllocs()
				for b.Loop() {
					req.Seed++
					if _, err := h.Draw(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					req := drawReq(s, 0)
					for pb.Next() {
						req.Seed++
						if _, err := h.Draw(ctx, req); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkDecide is one rule decision through the pool over the kind of
// input the seed's example tree reads (gender and age) plus two tags.
func BenchmarkDecide(b *testing.B) {
	h := newHost(b, HostConfig{})
	if _, err := h.Upload(ctx, "bench/rule", abi.KindRule, corpus(b, "rule.wasm")); err != nil {
		b.Fatal(err)
	}
	in := abi.RuleInput{TimeMs: 1, Attrs: []abi.Attr{
		abi.StrAttr(abi.KeyUserGender, "man"), abi.IntAttr(abi.KeyUserAge, 25),
		abi.StrAttr(abi.KeyUserTags, "vip"), abi.StrAttr(abi.KeyUserTags, "new"),
	}}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := h.Decide(ctx, "bench/rule", in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := h.Decide(ctx, "bench/rule", in); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkFuelOverhead runs the built-in draw modules as uploaded (raw) and
// as instrumented (metered) in a bare wazero runtime, outside the host, so
// the difference is the metering code alone (the host's per-call cost of
// setting the budget shows in BenchmarkDraw). Each iteration times a block
// of 256 raw calls and a block of 256 metered calls; the fastest block of
// each is reported (raw-ns/call, metered-ns/call, overhead-%), which keeps
// a noisy machine from deciding the comparison.
func BenchmarkFuelOverhead(b *testing.B) {
	for _, mode := range []lottery.Mode{lottery.ModeSingle, lottery.ModeTotal} {
		raw := builtin.Module(mode)
		metered := meteredBytes(b, raw)
		for _, awards := range []int{2, 16, 64} {
			b.Run(modeNames[mode]+"/"+strconv.Itoa(awards), func(b *testing.B) {
				dr, dm := newBareDrawer(b, raw), newBareDrawer(b, metered)
				in := abi.DrawInput{Mode: abi.Mode(mode)}
				for i := range awards {
					in.Awards = append(in.Awards, abi.Award{Rate: uint32(lottery.RateScale / (awards + 1) * (1 + i%3) / 2), InStock: i%5 != 4})
				}
				const block = 256
				best := [2]time.Duration{time.Hour, time.Hour}
				var seed uint64
				for b.Loop() {
					for k, d := range []*bareDrawer{dr, dm} {
						if d.fuel != nil {
							d.fuel.Set(DefaultFuel)
						}
						start := time.Now()
						for range block {
							seed++
							in.Seed = seed
							d.draw(b, &in)
						}
						best[k] = min(best[k], time.Since(start))
					}
				}
				r, m := float64(best[0])/block, float64(best[1])/block
				b.ReportMetric(r, "raw-ns/call")
				b.ReportMetric(m, "metered-ns/call")
				b.ReportMetric(100*(m-r)/r, "overhead-%")
			})
		}
	}
}

func meteredBytes(tb testing.TB, raw []byte) []byte {
	tb.Helper()
	m, err := binary.DecodeModule(raw, wabin.CoreFeaturesV2)
	if err != nil {
		tb.Fatal(err)
	}
	if err := instrument(m, DefaultInitFuel); err != nil {
		tb.Fatal(err)
	}
	out, err := encode(m)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// bareDrawer calls a draw module the way the host does, without the host.
type bareDrawer struct {
	draw_ api.Function
	mem   api.Memory
	fuel  api.MutableGlobal
	ptr   uint32
	stack []uint64
}

func newBareDrawer(tb testing.TB, bin []byte) *bareDrawer {
	tb.Helper()
	mod := instantiateRaw(tb, bin)
	res, err := mod.ExportedFunction(abi.ExportInputPtr).Call(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	d := &bareDrawer{draw_: mod.ExportedFunction(abi.ExportDraw), mem: mod.Memory(), ptr: uint32(res[0]), stack: make([]uint64, 2)}
	d.fuel, _ = mod.ExportedGlobal(FuelExport).(api.MutableGlobal)
	return d
}

func (d *bareDrawer) draw(tb testing.TB, in *abi.DrawInput) int32 {
	buf, _ := d.mem.Read(d.ptr, abi.MaxDrawInputSize)
	b, err := in.AppendBinary(buf[:0])
	if err != nil {
		tb.Fatal(err)
	}
	d.stack[0], d.stack[1] = uint64(d.ptr), uint64(len(b))
	if err := d.draw_.CallWithStack(context.Background(), d.stack); err != nil {
		tb.Fatal(err)
	}
	return int32(uint32(d.stack[0]))
}
