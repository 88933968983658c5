package wasm

import (
	"errors"
	"fmt"
)

// maxLocals bounds the locals of one function. Decoders expand local
// declarations (a count and a type) into one entry per local, so without
// a bound a few bytes could ask for billions.
const maxLocals = 50_000

// precheck walks the binary's structure before any decoder sees it and
// rejects every count or length larger than the bytes left to back it.
// wabin and wazero both size allocations by such counts (a vector of
// 0xffffffff exports makes a map of that many entries), so a 30-byte upload
// could otherwise take the edge down. It checks shapes, not meaning.
func precheck(bin []byte) error {
	r := &reader{b: bin}
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" {
		return errors.New("not a WebAssembly module (bad magic number)")
	}
	if string(bin[4:8]) != "\x01\x00\x00\x00" {
		return errors.New("unsupported WebAssembly binary version")
	}
	r.p = 8
	for r.p < len(bin) {
		id := r.byte()
		sec := r.sized()
		if r.err != nil {
			return fmt.Errorf("section header: %w", r.err)
		}
		sec.section(id)
		if sec.err == nil && sec.p != len(sec.b) {
			sec.err = fmt.Errorf("%d bytes left over", len(sec.b)-sec.p)
		}
		if sec.err != nil {
			return fmt.Errorf("section %d: %w", id, sec.err)
		}
	}
	return nil
}

// stripCustom returns bin without its custom sections, except "name"
// (which names functions in trap messages). Execution never reads them,
// and wabin fails on some valid ones (an empty payload). bin must have
// passed precheck.
func stripCustom(bin []byte) []byte {
	out := append([]byte(nil), bin[:8]...)
	r := &reader{b: bin, p: 8}
	for r.p < len(bin) {
		start := r.p
		id := r.byte()
		sec := r.sized()
		if r.err != nil {
			return bin
		}
		if id == 0 && !sec.isNameSection() {
			continue
		}
		out = append(out, bin[start:r.p]...)
	}
	return out
}

// reader walks bytes with a sticky error.
type reader struct {
	b   []byte
	p   int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *reader) left() int { return len(r.b) - r.p }

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.p >= len(r.b) {
		r.fail("unexpected end")
		return 0
	}
	r.p++
	return r.b[r.p-1]
}

func (r *reader) u32() uint64 {
	if r.err != nil {
		return 0
	}
	v, n, err := uleb(r.b, r.p)
	if err != nil || v > 1<<32-1 {
		r.fail("bad number")
		return 0
	}
	r.p += n
	return v
}

// count reads a count or length that at most limit bytes (or items) can
// back.
func (r *reader) count(limit int) int {
	v := r.u32()
	if r.err == nil && v > uint64(max(limit, 0)) {
		r.fail("count %d exceeds the %d bytes that follow", v, limit)
		return 0
	}
	return int(v)
}

// sized reads a length and returns a reader over that many bytes, which it
// skips.
func (r *reader) sized() *reader {
	v := r.u32()
	if r.err == nil && v > uint64(r.left()) {
		r.fail("length %d exceeds the %d bytes that follow", v, r.left())
	}
	if r.err != nil {
		return &reader{err: r.err}
	}
	sub := &reader{b: r.b[r.p : r.p+int(v)]}
	r.p += int(v)
	return sub
}

func (r *reader) skip(n int) {
	if r.err == nil && n > r.left() {
		r.fail("unexpected end")
		return
	}
	r.p += n
}

func (r *reader) name() { r.skip(r.count(r.left())) }

// isNameSection reads the name of the custom section r holds (r is the
// section's own reader) and reports whether it is "name".
func (r *reader) isNameSection() bool {
	r.name()
	return r.err == nil && r.p == 5 && string(r.b[1:5]) == "name"
}

func (r *reader) limits() {
	flags := r.byte()
	r.u32()
	if flags&1 != 0 {
		r.u32()
	}
}

// expr skips a constant expression up to its end.
func (r *reader) expr() {
	for r.err == nil {
		if r.p >= len(r.b) {
			r.fail("unterminated expression")
			return
		}
		op := r.b[r.p]
		n, err := instrLen(r.b, r.p)
		if err != nil {
			r.err = err
			return
		}
		r.p += n
		if op == opEnd {
			return
		}
	}
}

// vector reads a count backed by the bytes left and calls item that often.
func (r *reader) vector(item func()) {
	n := r.count(r.left())
	for i := 0; i < n && r.err == nil; i++ {
		item()
	}
}

func (r *reader) section(id byte) {
	switch id {
	case 0: // custom
		if r.isNameSection() {
			r.nameSection()
		}
		r.p = len(r.b)
	case 1: // type
		r.vector(func() {
			if r.byte() != 0x60 {
				r.fail("not a function type")
			}
			r.skip(r.count(r.left()))
			r.skip(r.count(r.left()))
		})
	case 2: // import
		r.vector(func() {
			r.name()
			r.name()
			switch r.byte() {
			case 0:
				r.u32()
			case 1:
				r.byte()
				r.limits()
			case 2:
				r.limits()
			case 3:
				r.skip(2)
			default:
				r.fail("bad import kind")
			}
		})
	case 3: // function
		r.vector(func() { r.u32() })
	case 4: // table
		r.vector(func() { r.byte(); r.limits() })
	case 5: // memory
		r.vector(r.limits)
	case 6: // global
		r.vector(func() { r.skip(2); r.expr() })
	case 7: // export
		r.vector(func() { r.name(); r.byte(); r.u32() })
	case 8: // start
		r.u32()
	case 9: // element
		r.vector(r.element)
	case 10: // code
		r.vector(func() {
			body := r.sized()
			total := 0
			body.vector(func() {
				total += body.count(maxLocals)
				body.byte()
				if total > maxLocals {
					body.fail("more than %d locals", maxLocals)
				}
			})
			if body.err != nil {
				r.err = body.err
			}
		})
	case 11: // data
		r.vector(func() {
			switch r.u32() {
			case 0:
				r.expr()
			case 1:
			case 2:
				r.u32()
				r.expr()
			default:
				r.fail("bad data segment kind")
			}
			r.skip(r.count(r.left()))
		})
	case 12: // data count
		r.u32()
	default:
		r.fail("unknown section")
	}
}

func (r *reader) element() {
	flags := r.u32()
	if flags > 7 {
		r.fail("bad element segment kind")
		return
	}
	if flags&1 == 0 { // active
		if flags&2 != 0 {
			r.u32() // table index
		}
		r.expr()
	}
	if flags&3 != 0 { // an element kind or reference type follows
		r.byte()
	}
	if flags&4 != 0 {
		r.vector(r.expr)
	} else {
		r.vector(func() { r.u32() })
	}
}

// nameSection checks the subsections decoders expand: function names and
// local names.
func (r *reader) nameSection() {
	for r.err == nil && r.left() > 0 {
		id := r.byte()
		sub := r.sized()
		switch id {
		case 1:
			sub.vector(func() { sub.u32(); sub.name() })
		case 2:
			sub.vector(func() {
				sub.u32()
				sub.vector(func() { sub.u32(); sub.name() })
			})
		}
		if sub.err != nil {
			r.err = sub.err
		}
	}
}
