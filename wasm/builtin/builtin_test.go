package builtin_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/flashlottery/lottery/wasm/builtin"
	"github.com/flashlottery/lottery/wasm/builtin/internal/drawgen"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

var modes = []lottery.Mode{lottery.ModeSingle, lottery.ModeTotal}

// drawer runs one instance of a draw module the way the host does: the
// input buffer is looked up once, each call writes the encoded input there
// and calls draw with a reused stack, so a call allocates nothing.
type drawer struct {
	mod   api.Module
	draw  api.Function
	mem   api.Memory
	ptr   uint32
	buf   []byte
	stack []uint64
	in    abi.DrawInput
}

func newDrawer(tb testing.TB, mode lottery.Mode) *drawer {
	tb.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	tb.Cleanup(func() { r.Close(ctx) })
	mod, err := r.Instantiate(ctx, builtin.Module(mode))
	if err != nil {
		tb.Fatal(err)
	}
	res, err := mod.ExportedFunction(abi.ExportInputPtr).Call(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return &drawer{
		mod: mod, draw: mod.ExportedFunction(abi.ExportDraw), mem: mod.Memory(),
		ptr: uint32(res[0]), buf: make([]byte, 0, abi.MaxDrawInputSize), stack: make([]uint64, 2),
	}
}

// call runs draw on raw input bytes.
func (d *drawer) call(tb testing.TB, in []byte) int32 {
	if !d.mem.Write(d.ptr, in) {
		tb.Fatalf("input of %d bytes does not fit", len(in))
	}
	d.stack[0], d.stack[1] = uint64(d.ptr), uint64(len(in))
	if err := d.draw.CallWithStack(context.Background(), d.stack); err != nil {
		tb.Fatal(err)
	}
	return int32(uint32(d.stack[0]))
}

// pick encodes req as the host does and returns the drawn index.
func (d *drawer) pick(tb testing.TB, req lottery.DrawRequest) int {
	in := &d.in
	in.Mode, in.Seed, in.TimeMs = abi.Mode(req.Strategy.Mode), req.Seed, 1_700_000_000_000
	in.Awards = in.Awards[:0]
	for i, det := range req.Strategy.Details {
		in.Awards = append(in.Awards, abi.Award{Rate: uint32(det.Rate), InStock: req.InStock[i]})
	}
	b, err := in.AppendBinary(d.buf[:0])
	if err != nil {
		tb.Fatal(err)
	}
	idx, err := abi.DrawResult(d.call(tb, b), len(in.Awards))
	if err != nil {
		tb.Fatal(err)
	}
	return idx
}

func TestCommittedModulesMatchSource(t *testing.T) {
	for _, mode := range modes {
		want, err := drawgen.Module(abi.Mode(mode))
		if err != nil {
			t.Fatal(err)
		}
		if got := builtin.Module(mode); !bytes.Equal(got, want) {
			t.Errorf("%s.wasm (%d bytes) differs from its generator's output (%d bytes): run go generate ./wasm/builtin",
				drawgen.Name(abi.Mode(mode)), len(got), len(want))
		}
	}
}

func TestModuleInfo(t *testing.T) {
	for _, mode := range modes {
		b := builtin.Module(mode)
		if len(b) == 0 || len(b) >= 2048 {
			t.Errorf("mode %d: module is %d bytes, want 1..2047", mode, len(b))
		}
		if builtin.Name(mode) == "" || len(builtin.SHA256(mode)) != 64 {
			t.Errorf("mode %d: name %q, sha256 %q", mode, builtin.Name(mode), builtin.SHA256(mode))
		}
		b[0] = 'X' // a copy: the embedded module is unharmed
		if builtin.Module(mode)[0] != 0 {
			t.Error("Module returns the embedded slice")
		}
		t.Logf("%s: %d bytes, sha256 %s", builtin.Name(mode), len(b), builtin.SHA256(mode))
	}
	if builtin.Module(3) != nil || builtin.Name(3) != "" || builtin.SHA256(3) != "" {
		t.Error("mode 3 has a module")
	}
	if builtin.SHA256(lottery.ModeSingle) == builtin.SHA256(lottery.ModeTotal) {
		t.Error("both modes have the same module")
	}
}

func TestABIConstantsMatchLottery(t *testing.T) {
	if abi.RateScale != lottery.RateScale || abi.MaxAwards != lottery.MaxAwards ||
		abi.ModeSingle != abi.Mode(lottery.ModeSingle) || abi.ModeTotal != abi.Mode(lottery.ModeTotal) {
		t.Fatal("sdk/abi and lottery disagree on the rate scale, the award limit or the modes")
	}
}

func TestModuleShape(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	for _, mode := range modes {
		cm, err := r.CompileModule(ctx, builtin.Module(mode))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(cm.ImportedFunctions()) + len(cm.ImportedMemories()); n != 0 {
			t.Errorf("mode %d: %d imports", mode, n)
		}
		mem, ok := cm.ExportedMemories()[abi.ExportMemory]
		if max, hasMax := mem.Max(); !ok || !hasMax || max != 1 || mem.Min() != 1 {
			t.Errorf("mode %d: memory %v", mode, mem)
		}
		fns := cm.ExportedFunctions()
		for _, want := range abi.Exports(abi.KindDraw) {
			fn, ok := fns[want.Name]
			if !ok {
				t.Errorf("mode %d: no export %s", mode, want.Name)
				continue
			}
			if !sameTypes(fn.ParamTypes(), want.Params) || !sameTypes(fn.ResultTypes(), want.Results) {
				t.Errorf("mode %d: %s has signature %v -> %v", mode, want.Name, fn.ParamTypes(), fn.ResultTypes())
			}
		}
		mod, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
		if err != nil {
			t.Fatal(err)
		}
		get := func(name string) uint64 {
			res, err := mod.ExportedFunction(name).Call(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return res[0]
		}
		ptr, capacity := get(abi.ExportInputPtr), get(abi.ExportInputCap)
		if v := get(abi.ExportVersion); v != abi.Version {
			t.Errorf("mode %d: ABI version %d", mode, v)
		}
		if capacity < abi.MaxInputSize || ptr+capacity > uint64(mod.Memory().Size()) || ptr%8 != 0 {
			t.Errorf("mode %d: input buffer [%d, +%d) in %d bytes of memory", mode, ptr, capacity, mod.Memory().Size())
		}
		mod.Close(ctx)
	}
}

func sameTypes(got []api.ValueType, want []abi.ValueType) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != api.ValueType(want[i]) {
			return false
		}
	}
	return true
}

func TestInputErrors(t *testing.T) {
	valid := func(mode abi.Mode) []byte {
		in := abi.DrawInput{Mode: mode, Seed: 1, Awards: []abi.Award{{Rate: 300_000, InStock: true}, {Rate: 200_000, InStock: true}}}
		b, _ := in.MarshalBinary()
		return b
	}
	edit := func(b []byte, f func([]byte) []byte) []byte { return f(b) }
	for _, mode := range modes {
		am := abi.Mode(mode)
		other := abi.ModeTotal
		if am == abi.ModeTotal {
			other = abi.ModeSingle
		}
		d := newDrawer(t, mode)
		cases := []struct {
			name string
			in   []byte
			want abi.Code
		}{
			{"empty", nil, abi.CodeBadInput},
			{"one byte", []byte{1}, abi.CodeBadInput},
			{"version 2", edit(valid(am), func(b []byte) []byte { b[0] = 2; return b }), abi.CodeVersion},
			{"short header", valid(am)[:20], abi.CodeBadInput},
			{"other mode", valid(other), abi.CodeUnsupported},
			{"mode 0", edit(valid(am), func(b []byte) []byte { b[2] = 0; return b }), abi.CodeBadInput},
			{"mode 9", edit(valid(am), func(b []byte) []byte { b[2] = 9; return b }), abi.CodeBadInput},
			{"no awards", edit(valid(am), func(b []byte) []byte { b[3] = 0; return b[:24] }), abi.CodeBadInput},
			{"65 awards", edit(valid(am), func(b []byte) []byte { b[3] = 65; return append(b[:24], make([]byte, 65*5)...) }), abi.CodeBadInput},
			{"reserved", edit(valid(am), func(b []byte) []byte { b[7] = 1; return b }), abi.CodeBadInput},
			{"truncated", valid(am)[:30], abi.CodeBadInput},
			{"trailing byte", append(valid(am), 0), abi.CodeBadInput},
			{"rate above scale", edit(valid(am), func(b []byte) []byte {
				binary.LittleEndian.PutUint32(b[29:], abi.RateScale+1)
				return b
			}), abi.CodeBadInput},
			{"flag 2", edit(valid(am), func(b []byte) []byte { b[28] = 2; return b }), abi.CodeBadInput},
		}
		if am == abi.ModeSingle {
			cases = append(cases, struct {
				name string
				in   []byte
				want abi.Code
			}{"sum above scale", edit(valid(am), func(b []byte) []byte {
				binary.LittleEndian.PutUint32(b[24:], 800_001)
				return b
			}), abi.CodeBadInput})
		}
		for _, tc := range cases {
			t.Run(builtin.Name(mode)+"/"+tc.name, func(t *testing.T) {
				// The Go decoder and the module agree on every error.
				var in abi.DrawInput
				goErr := in.UnmarshalBinary(tc.in)
				if got := abi.Code(d.call(t, tc.in)); got != tc.want {
					t.Fatalf("draw returned %d, want %d", got, tc.want)
				}
				if tc.want != abi.CodeUnsupported && abi.CodeOf(goErr) != tc.want {
					t.Fatalf("UnmarshalBinary: %v, want code %d", goErr, tc.want)
				}
			})
		}
		if got := d.call(t, valid(am)); got < 0 && got != abi.NoAward {
			t.Fatalf("valid input: %d", got)
		}
	}
}

func TestEdgeCases(t *testing.T) {
	seeds := []uint64{0, 1, 2, math.MaxUint64, math.MaxUint64 - 1, 1 << 63, 0x9e3779b97f4a7c15, 0x61c8864680b583eb}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 200 {
		seeds = append(seeds, rng.Uint64())
	}
	all := func(n int, v bool) []bool {
		s := make([]bool, n)
		for i := range s {
			s[i] = v
		}
		return s
	}
	rates := func(n int, r int64) []int64 {
		s := make([]int64, n)
		for i := range s {
			s[i] = r
		}
		return s
	}
	cases := []struct {
		name    string
		mode    lottery.Mode
		rates   []int64
		inStock []bool
	}{
		{"single certain", lottery.ModeSingle, []int64{lottery.RateScale}, all(1, true)},
		{"single certain sold out", lottery.ModeSingle, []int64{lottery.RateScale}, all(1, false)},
		{"single all zero", lottery.ModeSingle, rates(5, 0), all(5, true)},
		{"single one ppm", lottery.ModeSingle, []int64{1}, all(1, true)},
		{"single sums to scale", lottery.ModeSingle, rates(64, lottery.RateScale/64+0), all(64, true)},
		{"single 64 x 15625", lottery.ModeSingle, rates(64, 15625), all(64, true)},
		{"single 64 mixed stock", lottery.ModeSingle, rates(64, 10000), append(all(32, true), all(32, false)...)},
		{"total one", lottery.ModeTotal, []int64{1}, all(1, true)},
		{"total all out of stock", lottery.ModeTotal, rates(8, 1000), all(8, false)},
		{"total all zero rates", lottery.ModeTotal, rates(8, 0), all(8, true)},
		{"total 64 full rates", lottery.ModeTotal, rates(64, lottery.RateScale), all(64, true)},
		{"total one left", lottery.ModeTotal, rates(64, 5), append(all(63, false), true)},
		{"total zero and full", lottery.ModeTotal, []int64{0, lottery.RateScale, 0, 1}, all(4, true)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDrawer(t, tc.mode)
			var native lottery.NativeDrawer
			s := strategy(1, tc.mode, tc.rates)
			for _, seed := range seeds {
				req := lottery.DrawRequest{Strategy: s, InStock: tc.inStock, Seed: seed}
				want, _ := native.Draw(context.Background(), req)
				if got := d.pick(t, req); got != want.Index {
					t.Fatalf("seed %#x: module drew %d, native %d", seed, got, want.Index)
				}
			}
		})
	}
}

func strategy(id int64, mode lottery.Mode, rates []int64) *lottery.Strategy {
	s := &lottery.Strategy{ID: id, Mode: mode, GrantType: lottery.GrantImmediate}
	for i, r := range rates {
		s.Details = append(s.Details, lottery.StrategyDetail{
			Award:      lottery.Award{ID: "a" + strconv.Itoa(i), Type: lottery.AwardDescription, Name: "award"},
			AwardCount: 10,
			Rate:       r,
		})
	}
	return s
}

// randomRates draws n rates in one of several shapes: a random split of a
// random budget (sometimes exactly RateScale), tiny rates, a few nonzero
// rates among zeros, or (total mode) independent rates up to RateScale.
func randomRates(rng *rand.Rand, mode lottery.Mode, n int) []int64 {
	rates := make([]int64, n)
	shape := rng.IntN(5)
	if mode == lottery.ModeTotal && shape == 4 {
		for i := range rates {
			rates[i] = rng.Int64N(lottery.RateScale + 1)
		}
		return rates
	}
	budget := rng.Int64N(lottery.RateScale + 1)
	if rng.IntN(4) == 0 {
		budget = lottery.RateScale
	}
	switch shape {
	case 0, 4: // a random split of the budget
		cuts := make([]float64, n)
		var sum float64
		for i := range cuts {
			cuts[i] = rng.ExpFloat64()
			sum += cuts[i]
		}
		var used int64
		for i := range rates {
			rates[i] = int64(float64(budget) * cuts[i] / sum)
			used += rates[i]
		}
		if budget == lottery.RateScale { // hand the rounding to one award: no miss at all
			rates[rng.IntN(n)] += budget - used
		}
	case 1: // tiny rates
		for i := range rates {
			rates[i] = rng.Int64N(20)
		}
	case 2: // a few awards, the rest zero
		for range 1 + rng.IntN(3) {
			rates[rng.IntN(n)] = budget / 4
		}
	case 3: // equal rates
		for i := range rates {
			rates[i] = budget / int64(n)
		}
	}
	return rates
}

func randomStock(rng *rand.Rand, n int) []bool {
	p := []float64{0, 0.1, 0.5, 0.9, 1, 1}[rng.IntN(6)]
	s := make([]bool, n)
	for i := range s {
		s[i] = rng.Float64() < p
	}
	return s
}

// TestDifferential draws a million times per module over random strategies
// (1..64 awards, random rates and stock) with random seeds, and requires the
// module to pick exactly what lottery.NativeDrawer picks. The strategies are
// interleaved on one instance (a pool of four, the same one again 70% of the
// time, a new one every 50 draws) so the module's table cache both hits and
// misses.
func TestDifferential(t *testing.T) {
	draws := 1_000_000
	if testing.Short() {
		draws = 50_000
	}
	for _, mode := range modes {
		t.Run(builtin.Name(mode), func(t *testing.T) {
			t.Parallel()
			d := newDrawer(t, mode)
			var native lottery.NativeDrawer
			rng := rand.New(rand.NewPCG(uint64(mode), 2026))
			type live struct {
				s       *lottery.Strategy
				inStock []bool
			}
			var ids int64
			fresh := func() live {
				ids++
				n := 1 + rng.IntN(lottery.MaxAwards)
				s := strategy(ids, mode, randomRates(rng, mode, n))
				// Total-mode strategies whose rates are all zero are invalid
				// but still drawn: the module must answer none, as native does.
				if err := s.Validate(); err != nil && !(mode == lottery.ModeTotal && strings.Contains(err.Error(), "positive rate sum")) {
					t.Fatalf("generated an invalid strategy: %v", err)
				}
				return live{s, randomStock(rng, n)}
			}
			pool := []live{fresh(), fresh(), fresh(), fresh()}
			cur := 0
			var awards, none, switches int
			for k := range draws {
				if k%50 == 49 {
					pool[rng.IntN(len(pool))] = fresh()
				}
				if rng.IntN(10) >= 7 {
					cur = rng.IntN(len(pool))
					switches++
				}
				p := pool[cur]
				req := lottery.DrawRequest{Strategy: p.s, InStock: p.inStock, Seed: rng.Uint64()}
				want, err := native.Draw(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				got := d.pick(t, req)
				if got != want.Index {
					t.Fatalf("draw %d: strategy %v stock %v seed %#x: module drew %d, native %d", k, rates(p.s), p.inStock, req.Seed, got, want.Index)
				}
				if got < 0 {
					none++
				} else {
					awards++
				}
			}
			t.Logf("%d draws agree (%d awards, %d none) over %d strategies, %d strategy switches", draws, awards, none, ids, switches)
		})
	}
}

func rates(s *lottery.Strategy) []int64 {
	r := make([]int64, len(s.Details))
	for i, d := range s.Details {
		r[i] = d.Rate
	}
	return r
}

// TestCacheKey checks that the module's table cache tells apart inputs that
// differ in any one byte of any award, for every number of awards (the key
// is compared in 8-byte chunks with an overlapping tail, so every length
// modulo 8 matters): it alternates two inputs A and B on one instance, where
// B differs from A in one byte and draws very differently, and compares
// every draw with the native drawer.
func TestCacheKey(t *testing.T) {
	seeds := 12
	if testing.Short() {
		seeds = 4
	}
	for _, mode := range modes {
		d := newDrawer(t, mode)
		var native lottery.NativeDrawer
		check := func(s *lottery.Strategy, inStock []bool, seed uint64) {
			req := lottery.DrawRequest{Strategy: s, InStock: inStock, Seed: seed}
			want, _ := native.Draw(context.Background(), req)
			if got := d.pick(t, req); got != want.Index {
				t.Fatalf("mode %d, %d awards %v stock %v seed %d: module drew %d, native %d (a stale table?)",
					mode, len(s.Details), rates(s), inStock, seed, got, want.Index)
			}
		}
		var id int64
		for n := 2; n <= lottery.MaxAwards; n++ {
			for _, j := range []int{0, n / 2, n - 1} {
				k := (j + 1) % n
				// B's award j differs from A's in rate byte 0, 1 or 2, or in
				// its stock flag; award k (rate 1) is A's only chance.
				for _, change := range []struct {
					rateA, rateB       int64
					inStockA, inStockB bool
				}{
					{0, 0xff, true, true},
					{0, 0xff00, true, true},
					{0, 0x0f0000, true, true},
					{0x0f0000, 0x0f0000, false, true},
				} {
					build := func(rate int64, inStock bool) (*lottery.Strategy, []bool) {
						id++
						r := make([]int64, n)
						r[k], r[j] = 1, rate
						st := make([]bool, n)
						for i := range st {
							st[i] = true
						}
						st[j] = inStock
						return strategy(id, mode, r), st
					}
					sa, ia := build(change.rateA, change.inStockA)
					sb, ib := build(change.rateB, change.inStockB)
					for seed := range uint64(seeds) {
						check(sa, ia, seed)
						check(sb, ib, seed)
					}
				}
			}
		}
		// A cached table must not make an invalid input valid: byte 3 of a
		// rate (always zero for a valid rate) set after the same input was
		// cached without it.
		in := abi.DrawInput{Mode: abi.Mode(mode), Awards: []abi.Award{{Rate: 10, InStock: true}, {Rate: 20, InStock: true}, {Rate: 30, InStock: true}}}
		b, _ := in.MarshalBinary()
		d.call(t, b)
		b[24+5+3] = 1
		if got := abi.Code(d.call(t, b)); got != abi.CodeBadInput {
			t.Fatalf("mode %d: invalid rate after a cached table: %d", mode, got)
		}
		// Nor may a shorter input whose bytes prefix the cached one hit it.
		b[24+5+3] = 0
		prefix := strategy(99, mode, []int64{10, 20})
		for seed := range uint64(50) {
			d.call(t, b)
			check(prefix, []bool{true, true}, seed)
		}
	}
}
