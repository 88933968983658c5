package wasmgen

import (
	"bytes"
	"math"
	"testing"
)

func TestLEB128(t *testing.T) {
	unsigned := []struct {
		v    uint32
		want []byte
	}{
		{0, []byte{0x00}},
		{127, []byte{0x7f}},
		{128, []byte{0x80, 0x01}},
		{624485, []byte{0xe5, 0x8e, 0x26}},
		{math.MaxUint32, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}},
	}
	for _, tc := range unsigned {
		if got := appendU32(nil, tc.v); !bytes.Equal(got, tc.want) {
			t.Errorf("appendU32(%d) = % x, want % x", tc.v, got, tc.want)
		}
	}
	signed := []struct {
		v    int64
		want []byte
	}{
		{0, []byte{0x00}},
		{63, []byte{0x3f}},
		{64, []byte{0xc0, 0x00}},
		{-1, []byte{0x7f}},
		{-64, []byte{0x40}},
		{-65, []byte{0xbf, 0x7f}},
		{-123456, []byte{0xc0, 0xbb, 0x78}},
		{math.MaxInt64, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}},
		{math.MinInt64, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f}},
	}
	for _, tc := range signed {
		if got := appendS64(nil, tc.v); !bytes.Equal(got, tc.want) {
			t.Errorf("appendS64(%d) = % x, want % x", tc.v, got, tc.want)
		}
	}
}

// readS64 decodes signed LEB128, as a Wasm decoder does.
func readS64(b []byte) (v int64, n int) {
	var shift uint
	for {
		c := b[n]
		n++
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v, n
		}
	}
}

func readU32(b []byte) (v uint32, n int) {
	var shift uint
	for {
		c := b[n]
		n++
		v |= uint32(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			return v, n
		}
	}
}

func FuzzLEB128(f *testing.F) {
	for _, v := range []int64{0, 1, -1, 63, 64, -64, -65, math.MaxInt64, math.MinInt64, math.MaxInt32, math.MinInt32} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v int64) {
		b := appendS64(nil, v)
		if got, n := readS64(b); got != v || n != len(b) || len(b) > 10 {
			t.Fatalf("signed %d: encoded % x, decoded %d from %d bytes", v, b, got, n)
		}
		if int64(int32(v)) == v && len(b) > 5 {
			t.Fatalf("signed 32-bit %d takes %d bytes", v, len(b))
		}
		u := uint32(v)
		b = appendU32(nil, u)
		if got, n := readU32(b); got != u || n != len(b) || len(b) > 5 {
			t.Fatalf("unsigned %d: encoded % x, decoded %d from %d bytes", u, b, got, n)
		}
	})
}
