package wasmgen

import (
	"errors"
	"fmt"
	"slices"
)

// ValType is a Wasm value type, as encoded in the binary format (the same
// byte values as wazero's api.ValueType).
type ValType byte

// Value types.
const (
	I32 ValType = 0x7f
	I64 ValType = 0x7e
	F32 ValType = 0x7d
	F64 ValType = 0x7c
)

// String returns the type's name in the text format.
func (t ValType) String() string {
	switch t {
	case I32:
		return "i32"
	case I64:
		return "i64"
	case F32:
		return "f32"
	case F64:
		return "f64"
	}
	return fmt.Sprintf("valtype(%#x)", byte(t))
}

func (t ValType) valid() bool { return t == I32 || t == I64 || t == F32 || t == F64 }

// FuncType is a function signature.
type FuncType struct {
	Params, Results []ValType
}

func (ft FuncType) equal(o FuncType) bool {
	return slices.Equal(ft.Params, o.Params) && slices.Equal(ft.Results, o.Results)
}

// Limits are a memory's size bounds in 64 KiB pages. HasMax false leaves the
// maximum to the runtime (wazero's default is 65536 pages, 4 GiB): modules
// for an untrusted host should always set it.
type Limits struct {
	Min    uint32
	Max    uint32
	HasMax bool
}

// ExternKind is the kind of an export.
type ExternKind byte

// Export kinds.
const (
	ExternFunc   ExternKind = 0
	ExternMemory ExternKind = 2
	ExternGlobal ExternKind = 3
)

// PageSize is the size of a Wasm memory page.
const PageSize = 65536

// maxPages is the most pages a 32-bit memory can have.
const maxPages = 65536

type funcImport struct {
	module, name string
	typ          uint32
	ft           FuncType
}

type global struct {
	typ     ValType
	mutable bool
	init    int64
}

type export struct {
	name  string
	kind  ExternKind
	index uint32
}

type dataSegment struct {
	offset uint32
	bytes  []byte
}

// Module builds one Wasm module. The zero value is an empty module ready to
// use. Indices are assigned in declaration order: imported functions first
// (so ImportFunc must come before Func), then defined functions.
//
// Builder mistakes (an import after a function, a duplicate export, an
// index out of range, a branch to a closed label) do not panic: the first
// one is kept and Encode returns it, so generator code reads straight
// through without an error check after every instruction.
type Module struct {
	types   []FuncType
	imports []funcImport
	funcs   []*Func
	memory  *Limits
	globals []global
	exports []export
	data    []dataSegment
	start   *Func
	err     error
	// Names, when set, adds a "name" custom section with the function names
	// given to Func and ImportFunc, so runtime stack traces name them. It
	// costs a few bytes per function.
	Names bool
}

func (m *Module) fail(format string, args ...any) {
	if m.err == nil {
		m.err = fmt.Errorf("wasmgen: "+format, args...)
	}
}

// Type returns the index of ft in the type section, adding it if needed.
func (m *Module) Type(ft FuncType) uint32 {
	for i, t := range m.types {
		if t.equal(ft) {
			return uint32(i)
		}
	}
	for _, v := range slices.Concat(ft.Params, ft.Results) {
		if !v.valid() {
			m.fail("invalid value type %v", v)
		}
	}
	m.types = append(m.types, FuncType{Params: slices.Clone(ft.Params), Results: slices.Clone(ft.Results)})
	return uint32(len(m.types) - 1)
}

// ImportFunc declares an imported function and returns its function index.
// All imports must be declared before the first Func.
func (m *Module) ImportFunc(module, name string, ft FuncType) uint32 {
	if len(m.funcs) > 0 {
		m.fail("import %s.%s declared after a defined function", module, name)
	}
	m.imports = append(m.imports, funcImport{module: module, name: name, typ: m.Type(ft), ft: ft})
	return uint32(len(m.imports) - 1)
}

// Func defines a function with signature ft and returns it for its locals
// and code. name is used only by the name section (see Names); it is not an
// export.
func (m *Module) Func(name string, ft FuncType) *Func {
	f := &Func{
		m:     m,
		name:  name,
		typ:   m.Type(ft),
		ft:    ft,
		index: uint32(len(m.imports) + len(m.funcs)),
	}
	f.nlocals = uint32(len(ft.Params))
	f.Code.nlocals = &f.nlocals
	f.Code.init()
	m.funcs = append(m.funcs, f)
	return f
}

// Memory declares the module's one memory.
func (m *Module) Memory(l Limits) {
	if m.memory != nil {
		m.fail("a second memory")
		return
	}
	if l.Min > maxPages || (l.HasMax && (l.Max > maxPages || l.Max < l.Min)) {
		m.fail("invalid memory limits %+v", l)
	}
	m.memory = &l
}

// Global declares a global of type t (I32 or I64) with a constant initial
// value and returns its index.
func (m *Module) Global(t ValType, mutable bool, init int64) uint32 {
	if t != I32 && t != I64 {
		m.fail("global of type %v: only i32 and i64 are supported", t)
	}
	if t == I32 && (init < -1<<31 || init > 1<<32-1) {
		m.fail("i32 global initialised with %d", init)
	}
	m.globals = append(m.globals, global{typ: t, mutable: mutable, init: init})
	return uint32(len(m.globals) - 1)
}

// Export exports the function, memory or global with the given index.
// Names must be unique.
func (m *Module) Export(name string, kind ExternKind, index uint32) {
	for _, e := range m.exports {
		if e.name == name {
			m.fail("duplicate export %q", name)
			return
		}
	}
	if kind != ExternFunc && kind != ExternMemory && kind != ExternGlobal {
		m.fail("export %q of unsupported kind %d", name, kind)
	}
	m.exports = append(m.exports, export{name: name, kind: kind, index: index})
}

// ExportFunc exports f under name.
func (m *Module) ExportFunc(name string, f *Func) { m.Export(name, ExternFunc, f.index) }

// Data adds an active data segment that copies b into memory at offset when
// the module is instantiated. The bytes are copied.
func (m *Module) Data(offset uint32, b []byte) {
	m.data = append(m.data, dataSegment{offset: offset, bytes: append([]byte(nil), b...)})
}

// Start makes f the start function, run at instantiation. f must take and
// return nothing.
func (m *Module) Start(f *Func) { m.start = f }

// Encode validates the module's structure and returns its binary encoding.
// It checks indices, labels, limits and segment bounds, not operand types:
// compile the result (for example with wazero) to validate it fully.
func (m *Module) Encode() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	out := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	var sec []byte

	if len(m.types) > 0 {
		sec = appendU32(sec[:0], uint32(len(m.types)))
		for _, t := range m.types {
			sec = append(sec, 0x60)
			sec = appendValTypes(sec, t.Params)
			sec = appendValTypes(sec, t.Results)
		}
		out = appendSection(out, 1, sec)
	}
	if len(m.imports) > 0 {
		sec = appendU32(sec[:0], uint32(len(m.imports)))
		for _, im := range m.imports {
			sec = appendName(sec, im.module)
			sec = appendName(sec, im.name)
			sec = append(sec, byte(ExternFunc))
			sec = appendU32(sec, im.typ)
		}
		out = appendSection(out, 2, sec)
	}
	if len(m.funcs) > 0 {
		sec = appendU32(sec[:0], uint32(len(m.funcs)))
		for _, f := range m.funcs {
			sec = appendU32(sec, f.typ)
		}
		out = appendSection(out, 3, sec)
	}
	if m.memory != nil {
		sec = appendU32(sec[:0], 1)
		sec = appendLimits(sec, *m.memory)
		out = appendSection(out, 5, sec)
	}
	if len(m.globals) > 0 {
		sec = appendU32(sec[:0], uint32(len(m.globals)))
		for _, g := range m.globals {
			sec = append(sec, byte(g.typ))
			if g.mutable {
				sec = append(sec, 1)
			} else {
				sec = append(sec, 0)
			}
			sec = appendConst(sec, g.typ, g.init)
			sec = append(sec, byte(opEnd))
		}
		out = appendSection(out, 6, sec)
	}
	if len(m.exports) > 0 {
		sec = appendU32(sec[:0], uint32(len(m.exports)))
		for _, e := range m.exports {
			sec = appendName(sec, e.name)
			sec = append(sec, byte(e.kind))
			sec = appendU32(sec, e.index)
		}
		out = appendSection(out, 7, sec)
	}
	if m.start != nil {
		out = appendSection(out, 8, appendU32(sec[:0], m.start.index))
	}
	if len(m.funcs) > 0 {
		sec = appendU32(sec[:0], uint32(len(m.funcs)))
		var body []byte
		for _, f := range m.funcs {
			body = f.appendBody(body[:0])
			sec = appendU32(sec, uint32(len(body)))
			sec = append(sec, body...)
		}
		out = appendSection(out, 10, sec)
	}
	if len(m.data) > 0 {
		sec = appendU32(sec[:0], uint32(len(m.data)))
		for _, d := range m.data {
			sec = append(sec, 0x00) // active, memory 0
			sec = appendConst(sec, I32, int64(int32(d.offset)))
			sec = append(sec, byte(opEnd))
			sec = appendU32(sec, uint32(len(d.bytes)))
			sec = append(sec, d.bytes...)
		}
		out = appendSection(out, 11, sec)
	}
	if m.Names {
		out = m.appendNames(out)
	}
	return out, nil
}

func (m *Module) check() error {
	if m.err != nil {
		return m.err
	}
	nfuncs := uint32(len(m.imports) + len(m.funcs))
	var errs []error
	for _, f := range m.funcs {
		if err := f.check(nfuncs); err != nil {
			errs = append(errs, err)
		}
	}
	for _, e := range m.exports {
		switch {
		case e.kind == ExternFunc && e.index >= nfuncs:
			errs = append(errs, fmt.Errorf("wasmgen: export %q: function %d does not exist", e.name, e.index))
		case e.kind == ExternMemory && (m.memory == nil || e.index != 0):
			errs = append(errs, fmt.Errorf("wasmgen: export %q: memory %d does not exist", e.name, e.index))
		case e.kind == ExternGlobal && e.index >= uint32(len(m.globals)):
			errs = append(errs, fmt.Errorf("wasmgen: export %q: global %d does not exist", e.name, e.index))
		}
	}
	for i, d := range m.data {
		switch {
		case m.memory == nil:
			errs = append(errs, fmt.Errorf("wasmgen: data segment %d without a memory", i))
		case uint64(d.offset)+uint64(len(d.bytes)) > uint64(m.memory.Min)*PageSize:
			errs = append(errs, fmt.Errorf("wasmgen: data segment %d (%d bytes at %d) is outside the initial memory", i, len(d.bytes), d.offset))
		}
	}
	if m.start != nil && (m.start.m != m || len(m.start.ft.Params) > 0 || len(m.start.ft.Results) > 0) {
		errs = append(errs, errors.New("wasmgen: the start function must be a func() of this module"))
	}
	return errors.Join(errs...)
}

func (m *Module) appendNames(out []byte) []byte {
	var names []byte
	var n uint32
	for i, im := range m.imports {
		names = appendU32(names, uint32(i))
		names = appendName(names, im.name)
		n++
	}
	for _, f := range m.funcs {
		if f.name != "" {
			names = appendU32(names, f.index)
			names = appendName(names, f.name)
			n++
		}
	}
	if n == 0 {
		return out
	}
	sub := appendU32(nil, n)
	sub = append(sub, names...)
	sec := appendName(nil, "name")
	sec = append(sec, 1) // function names subsection
	sec = appendU32(sec, uint32(len(sub)))
	sec = append(sec, sub...)
	return appendSection(out, 0, sec)
}

func appendSection(out []byte, id byte, content []byte) []byte {
	out = append(out, id)
	out = appendU32(out, uint32(len(content)))
	return append(out, content...)
}

func appendValTypes(b []byte, ts []ValType) []byte {
	b = appendU32(b, uint32(len(ts)))
	for _, t := range ts {
		b = append(b, byte(t))
	}
	return b
}

func appendLimits(b []byte, l Limits) []byte {
	if l.HasMax {
		b = append(b, 0x01)
		b = appendU32(b, l.Min)
		return appendU32(b, l.Max)
	}
	b = append(b, 0x00)
	return appendU32(b, l.Min)
}

func appendConst(b []byte, t ValType, v int64) []byte {
	if t == I32 {
		return appendS64(append(b, byte(opI32Const)), int64(int32(v)))
	}
	return appendS64(append(b, byte(opI64Const)), v)
}
