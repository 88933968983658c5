package abi

import (
	"encoding/binary"
	"fmt"
)

// Rule input layout: a 16-byte header, then the attributes.
//
//	offset size field
//	0      2    ABI version (u16, 1)
//	2      1    reserved, zero
//	3      1    number of attributes n (u8, 0..64)
//	4      4    reserved, zero
//	8      8    time (i64, unix milliseconds), supplied by the host
//	16     ...  n attributes, each:
//	              key  (u8, 1..255; see Key)
//	              type (u8: 1 int, 2 string)
//	              int:    value (i64), 8 bytes
//	              string: length (u8, 0..255), then that many bytes (UTF-8)
//
// The whole input is at most MaxInputSize bytes. Attributes keep the order
// the host gave them. A known key has a fixed type and appears at most
// once, except KeyUserTags, which appears once per tag. Keys the ABI does
// not name (7..255) are passed through unchecked; guests ignore keys they do
// not know, so new keys can be added without a new ABI version. 7..127 are
// reserved for future standard keys, 128..255 are for applications.
const (
	RuleHeaderSize = 16
	MaxAttrs       = 64
	MaxStringLen   = 255
)

// Key identifies a rule attribute.
type Key uint8

// The rule keys of the seed's rule trees.
const (
	KeyUserAge               Key = 1 // int, years
	KeyUserGender            Key = 2 // string, for example "man" or "woman"
	KeyUserTags              Key = 3 // string, repeated once per tag
	KeyUserLevel             Key = 4 // int
	KeyUserCity              Key = 5 // string
	KeyDaysSinceRegistration Key = 6 // int
)

var keyNames = [...]string{"", "userAge", "userGender", "userTags", "userLevel", "userCity", "daysSinceRegistration"}

// String returns the key's name in rule trees and the HTTP API, such as
// "userAge", or "key(N)" for a key the ABI does not name.
func (k Key) String() string {
	if k >= 1 && int(k) < len(keyNames) {
		return keyNames[k]
	}
	return fmt.Sprintf("key(%d)", uint8(k))
}

// ParseKey returns the key named name ("userAge", ...).
func ParseKey(name string) (Key, bool) {
	for i := 1; i < len(keyNames); i++ {
		if keyNames[i] == name {
			return Key(i), true
		}
	}
	return 0, false
}

// Type returns the value type of a known key, or 0 for a key the ABI does
// not name.
func (k Key) Type() AttrType {
	switch k {
	case KeyUserAge, KeyUserLevel, KeyDaysSinceRegistration:
		return AttrInt
	case KeyUserGender, KeyUserTags, KeyUserCity:
		return AttrString
	}
	return 0
}

// Repeatable reports whether the key may appear more than once in an input:
// true for KeyUserTags and for keys the ABI does not name.
func (k Key) Repeatable() bool { return k == KeyUserTags || k.Type() == 0 }

// AttrType is an attribute value's type.
type AttrType uint8

// Attribute value types.
const (
	AttrInt    AttrType = 1
	AttrString AttrType = 2
)

// Attr is one rule attribute. Int holds an AttrInt value and Str an
// AttrString value; the other field is ignored by the encoder and zero after
// decoding.
type Attr struct {
	Key  Key
	Type AttrType
	Int  int64
	Str  string
}

// IntAttr returns an integer attribute.
func IntAttr(k Key, v int64) Attr { return Attr{Key: k, Type: AttrInt, Int: v} }

// StrAttr returns a string attribute.
func StrAttr(k Key, v string) Attr { return Attr{Key: k, Type: AttrString, Str: v} }

// RuleInput is the input of a rule module's decide export.
type RuleInput struct {
	TimeMs int64
	Attrs  []Attr
}

// Lookup returns the first attribute with key k.
func (in *RuleInput) Lookup(k Key) (Attr, bool) {
	for _, a := range in.Attrs {
		if a.Key == k {
			return a, true
		}
	}
	return Attr{}, false
}

// Size returns the encoded size in bytes.
func (in *RuleInput) Size() int {
	n := RuleHeaderSize
	for _, a := range in.Attrs {
		if a.Type == AttrInt {
			n += 2 + 8
		} else {
			n += 2 + 1 + len(a.Str)
		}
	}
	return n
}

// Validate checks the attribute count, keys, types, string lengths,
// repetitions and the total size. Errors wrap CodeBadInput.
func (in *RuleInput) Validate() error {
	if len(in.Attrs) > MaxAttrs {
		return fmt.Errorf("%w: %d attributes (at most %d)", CodeBadInput, len(in.Attrs), MaxAttrs)
	}
	var seen [4]uint64 // one bit per key
	for i, a := range in.Attrs {
		if err := checkAttr(i, a.Key, a.Type, &seen); err != nil {
			return err
		}
		if a.Type == AttrString && len(a.Str) > MaxStringLen {
			return fmt.Errorf("%w: attribute %d (%v) is %d bytes long (at most %d)", CodeBadInput, i, a.Key, len(a.Str), MaxStringLen)
		}
	}
	if n := in.Size(); n > MaxInputSize {
		return fmt.Errorf("%w: %d bytes encoded (at most %d)", CodeBadInput, n, MaxInputSize)
	}
	return nil
}

func checkAttr(i int, k Key, t AttrType, seen *[4]uint64) error {
	switch {
	case k == 0:
		return fmt.Errorf("%w: attribute %d has key 0", CodeBadInput, i)
	case t != AttrInt && t != AttrString:
		return fmt.Errorf("%w: attribute %d (%v) has type %d", CodeBadInput, i, k, t)
	case k.Type() != 0 && k.Type() != t:
		return fmt.Errorf("%w: attribute %d (%v) has type %d, want %d", CodeBadInput, i, k, t, k.Type())
	}
	bit := uint64(1) << (k % 64)
	if !k.Repeatable() && seen[k/64]&bit != 0 {
		return fmt.Errorf("%w: attribute %d repeats %v", CodeBadInput, i, k)
	}
	seen[k/64] |= bit
	return nil
}

// AppendBinary appends the encoding to b (encoding.BinaryAppender).
func (in *RuleInput) AppendBinary(b []byte) ([]byte, error) {
	if err := in.Validate(); err != nil {
		return b, err
	}
	b = binary.LittleEndian.AppendUint16(b, Version)
	b = append(b, 0, byte(len(in.Attrs)), 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(in.TimeMs))
	for _, a := range in.Attrs {
		b = append(b, byte(a.Key), byte(a.Type))
		if a.Type == AttrInt {
			b = binary.LittleEndian.AppendUint64(b, uint64(a.Int))
		} else {
			b = append(b, byte(len(a.Str)))
			b = append(b, a.Str...)
		}
	}
	return b, nil
}

// MarshalBinary returns the encoding (encoding.BinaryMarshaler).
func (in *RuleInput) MarshalBinary() ([]byte, error) {
	return in.AppendBinary(make([]byte, 0, in.Size()))
}

// UnmarshalBinary decodes b into in, reusing in.Attrs' storage
// (encoding.BinaryUnmarshaler). It never reads beyond b, accepts at most
// MaxInputSize bytes and MaxAttrs attributes, and rejects non-canonical
// encodings. Errors wrap CodeVersion or CodeBadInput; on error in is left in
// an unspecified state.
func (in *RuleInput) UnmarshalBinary(b []byte) error {
	if err := checkVersion(b); err != nil {
		return err
	}
	if len(b) < RuleHeaderSize || len(b) > MaxInputSize {
		return fmt.Errorf("%w: %d bytes (want %d..%d)", CodeBadInput, len(b), RuleHeaderSize, MaxInputSize)
	}
	if b[2] != 0 || binary.LittleEndian.Uint32(b[4:]) != 0 {
		return fmt.Errorf("%w: reserved header bytes are not zero", CodeBadInput)
	}
	n := int(b[3])
	if n > MaxAttrs {
		return fmt.Errorf("%w: %d attributes (at most %d)", CodeBadInput, n, MaxAttrs)
	}
	in.TimeMs = int64(binary.LittleEndian.Uint64(b[8:]))
	in.Attrs = in.Attrs[:0]
	var seen [4]uint64
	p := b[RuleHeaderSize:]
	for i := range n {
		if len(p) < 2 {
			return fmt.Errorf("%w: attribute %d is cut off", CodeBadInput, i)
		}
		a := Attr{Key: Key(p[0]), Type: AttrType(p[1])}
		if err := checkAttr(i, a.Key, a.Type, &seen); err != nil {
			return err
		}
		p = p[2:]
		if a.Type == AttrInt {
			if len(p) < 8 {
				return fmt.Errorf("%w: attribute %d (%v) is cut off", CodeBadInput, i, a.Key)
			}
			a.Int = int64(binary.LittleEndian.Uint64(p))
			p = p[8:]
		} else {
			if len(p) < 1 || len(p) < 1+int(p[0]) {
				return fmt.Errorf("%w: attribute %d (%v) is cut off", CodeBadInput, i, a.Key)
			}
			a.Str = string(p[1 : 1+int(p[0])])
			p = p[1+int(p[0]):]
		}
		in.Attrs = append(in.Attrs, a)
	}
	if len(p) != 0 {
		return fmt.Errorf("%w: %d bytes after the last attribute", CodeBadInput, len(p))
	}
	return nil
}
