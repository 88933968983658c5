package wasm

import (
	"maps"
	"strings"

	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/tetratelabs/wabin/binary"
	wabin "github.com/tetratelabs/wabin/wasm"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// wasiModule is the one import module a guest may use.
const wasiModule = wasi_snapshot_preview1.ModuleName

// startFunction is the reactor initialiser (Go's -buildmode=c-shared and
// other WASI reactors) the host runs once per instance.
const startFunction = "_initialize"

// limits are the static checks of an upload.
type limits struct {
	maxBytes int
	maxPages uint32
	// wasi maps each function the WASI host module exports to its
	// signature.
	wasi map[string]api.FunctionDefinition
}

// decode checks bin against the ABI and the host's limits and returns the
// decoded module, ready for instrument. Every error is a *RejectError.
func (l *limits) decode(kind abi.Kind, bin []byte) (*wabin.Module, error) {
	if len(bin) > l.maxBytes {
		return nil, rejectf("module is %d bytes, above the cap of %d", len(bin), l.maxBytes)
	}
	if len(bin) == 0 {
		return nil, rejectf("module is empty")
	}
	if err := precheck(bin); err != nil {
		return nil, rejectf("malformed module: %v", err)
	}
	m, err := binary.DecodeModule(stripCustom(bin), wabin.CoreFeaturesV2)
	if err != nil {
		return nil, rejectf("malformed module: %v", err)
	}
	if err := l.checkImports(m); err != nil {
		return nil, err
	}
	if err := l.checkMemory(m); err != nil {
		return nil, err
	}
	if err := checkExports(kind, m); err != nil {
		return nil, err
	}
	return m, nil
}

// checkImports allows only functions of WASI preview 1 that the host
// implements, with their exact signatures.
func (l *limits) checkImports(m *wabin.Module) error {
	for _, im := range m.ImportSection {
		if im.Module != wasiModule || im.Type != wabin.ExternTypeFunc {
			return rejectf("forbidden import %s.%s (%s): modules may import only %s functions",
				im.Module, im.Name, wabin.ExternTypeName(im.Type), wasiModule)
		}
		def, ok := l.wasi[im.Name]
		if !ok {
			return rejectf("forbidden import %s.%s: not a WASI preview 1 function this host provides", im.Module, im.Name)
		}
		if int(im.DescFunc) >= len(m.TypeSection) {
			return rejectf("malformed module: import %s.%s has type %d of %d", im.Module, im.Name, im.DescFunc, len(m.TypeSection))
		}
		ft := m.TypeSection[im.DescFunc]
		if !ft.EqualsSignature(def.ParamTypes(), def.ResultTypes()) {
			return rejectf("import %s.%s has signature %s, want %s", im.Module, im.Name,
				signature(ft.Params, ft.Results), signature(def.ParamTypes(), def.ResultTypes()))
		}
	}
	return nil
}

// checkMemory requires a memory whose minimum fits the page cap. A larger or
// missing maximum is allowed: the runtime caps growth at the same limit, so
// memory.grow beyond it fails.
func (l *limits) checkMemory(m *wabin.Module) error {
	if m.MemorySection == nil {
		return rejectf("module defines no memory")
	}
	if m.MemorySection.Min > l.maxPages {
		return rejectf("memory starts at %d pages (%d KiB), above the cap of %d pages (%d KiB)",
			m.MemorySection.Min, m.MemorySection.Min*64, l.maxPages, l.maxPages*64)
	}
	return nil
}

// checkExports checks the exports abi.Exports lists, the memory export and
// the reserved fuel export name.
func checkExports(kind abi.Kind, m *wabin.Module) error {
	want := abi.Exports(kind)
	if want == nil {
		return rejectf("unknown module kind %v", kind)
	}
	byName := make(map[string]*wabin.Export, len(m.ExportSection))
	for _, e := range m.ExportSection {
		if strings.HasPrefix(e.Name, ReservedPrefix) {
			return rejectf("export name %s is reserved for the host (names starting with %s are)", e.Name, ReservedPrefix)
		}
		byName[e.Name] = e
	}
	if e := byName[abi.ExportMemory]; e == nil || e.Type != wabin.ExternTypeMemory {
		return rejectf("missing memory export %q", abi.ExportMemory)
	}
	nimp := m.ImportFuncCount()
	if byName[startFunction] != nil {
		// The host calls a reactor's initialiser with no arguments.
		want = append(want, abi.FuncExport{Name: startFunction})
	}
	for _, fe := range want {
		e := byName[fe.Name]
		if e == nil || e.Type != wabin.ExternTypeFunc {
			if fe.Name == startFunction {
				return rejectf("export %q is not a function", fe.Name)
			}
			return rejectf("missing function export %q, which a %v module must have", fe.Name, kind)
		}
		if e.Index < nimp {
			return rejectf("export %q re-exports an import", fe.Name)
		}
		i := e.Index - nimp
		if int(i) >= len(m.FunctionSection) || int(m.FunctionSection[i]) >= len(m.TypeSection) {
			return rejectf("malformed module: export %q names function %d, which does not exist", fe.Name, e.Index)
		}
		ft := m.TypeSection[m.FunctionSection[i]]
		params, results := valueTypes(fe.Params), valueTypes(fe.Results)
		if !ft.EqualsSignature(params, results) {
			return rejectf("export %q has signature %s; ABI v%d wants %s", fe.Name,
				signature(ft.Params, ft.Results), abi.Version, signature(params, results))
		}
	}
	return nil
}

func valueTypes(ts []abi.ValueType) []wabin.ValueType {
	out := make([]wabin.ValueType, len(ts))
	for i, t := range ts {
		out[i] = wabin.ValueType(t)
	}
	return out
}

// signature formats a function type as "(i32, i32) -> i64".
func signature(params, results []byte) string {
	names := func(ts []byte) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	out := "(" + names(params) + ")"
	switch len(results) {
	case 0:
		return out
	case 1:
		return out + " -> " + names(results)
	}
	return out + " -> (" + names(results) + ")"
}

// firstLine returns the first line of an error message: wazero appends a
// Wasm stack trace to trap messages.
func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// wasiFunctions lists the functions the instantiated WASI host module
// exports, in a map of the host's own.
func wasiFunctions(mod api.Module) map[string]api.FunctionDefinition {
	return maps.Clone(mod.ExportedFunctionDefinitions())
}
