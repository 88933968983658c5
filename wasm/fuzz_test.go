package wasm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/flashlottery/lottery/wasm/builtin"
	"github.com/tetratelabs/wabin/binary"
	wabin "github.com/tetratelabs/wabin/wasm"
	"github.com/tetratelabs/wazero"
)

// FuzzInstrument feeds arbitrary bytes to the upload checks and the
// instrumentation. Neither may panic, and any module wazero accepts as it
// is must still be accepted once metered: the instrumentation never turns
// a valid module into an invalid one.
func FuzzInstrument(f *testing.F) {
	f.Add(builtin.Module(lottery.ModeSingle))
	f.Add(builtin.Module(lottery.ModeTotal))
	f.Add(everyKindModule(f))
	f.Add(loopModule(f))
	if files, err := filepath.Glob(filepath.Join("testdata", "*.wasm")); err == nil {
		for _, name := range files {
			if b, err := os.ReadFile(name); err == nil && len(b) < 64<<10 {
				f.Add(b)
			}
		}
	}
	c := context.Background()
	r := wazero.NewRuntimeWithConfig(c, wazero.NewRuntimeConfigCompiler().WithMemoryLimitPages(16))
	f.Cleanup(func() { r.Close(c) })
	lim := limits{maxBytes: 1 << 20, maxPages: 16, wasi: nil}
	f.Fuzz(func(t *testing.T, bin []byte) {
		for _, kind := range []abi.Kind{abi.KindDraw, abi.KindRule} {
			_, _ = lim.decode(kind, bin)
		}
		if precheck(bin) != nil {
			return // refused before any decoder runs
		}
		raw, err := r.CompileModule(c, bin)
		if err != nil {
			return
		}
		raw.Close(c)
		m, err := binary.DecodeModule(bin, wabin.CoreFeaturesV2)
		if err != nil {
			return // wabin is stricter than wazero in places; such uploads are refused
		}
		for _, e := range m.ExportSection {
			if strings.HasPrefix(e.Name, ReservedPrefix) {
				return // refused at upload
			}
		}
		if err := instrument(m, 1000); err != nil {
			t.Fatalf("wazero accepts the module but instrumenting it fails: %v", err)
		}
		out, err := encode(m)
		if err != nil {
			t.Fatal(err)
		}
		metered, err := r.CompileModule(c, out)
		if err != nil {
			t.Fatalf("the metered module does not compile: %v", err)
		}
		metered.Close(c)
	})
}
