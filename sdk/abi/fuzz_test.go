package abi

import (
	"bytes"
	"testing"
)

// FuzzDrawInput checks that decoding never panics, stays within the size
// bounds, and that whatever decodes re-encodes to the same bytes (the
// encoding is canonical).
func FuzzDrawInput(f *testing.F) {
	f.Add(validDraw())
	f.Add([]byte{1, 0, 1, 1, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x42, 0x0f, 0, 1})
	f.Add([]byte{})
	f.Add([]byte{2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var in DrawInput
		if err := in.UnmarshalBinary(b); err != nil {
			if c := CodeOf(err); c != CodeBadInput && c != CodeVersion {
				t.Fatalf("error %v has code %d", err, c)
			}
			return
		}
		if len(in.Awards) == 0 || len(in.Awards) > MaxAwards || len(b) > MaxDrawInputSize {
			t.Fatalf("decoded %d awards from %d bytes", len(in.Awards), len(b))
		}
		if err := in.Validate(); err != nil {
			t.Fatalf("decoded input does not validate: %v", err)
		}
		out, err := in.MarshalBinary()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("re-encoded % x, %v\nfrom      % x", out, err, b)
		}
	})
}

// FuzzRuleInput is FuzzDrawInput for rule inputs.
func FuzzRuleInput(f *testing.F) {
	in := RuleInput{TimeMs: 7, Attrs: []Attr{StrAttr(KeyUserGender, "woman"), IntAttr(KeyUserAge, 30), StrAttr(KeyUserTags, "a"), StrAttr(KeyUserTags, "b")}}
	b, _ := in.MarshalBinary()
	f.Add(b)
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200, 2, 1, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var in RuleInput
		if err := in.UnmarshalBinary(b); err != nil {
			if c := CodeOf(err); c != CodeBadInput && c != CodeVersion {
				t.Fatalf("error %v has code %d", err, c)
			}
			return
		}
		if len(in.Attrs) > MaxAttrs || len(b) > MaxInputSize {
			t.Fatalf("decoded %d attributes from %d bytes", len(in.Attrs), len(b))
		}
		if err := in.Validate(); err != nil {
			t.Fatalf("decoded input does not validate: %v", err)
		}
		out, err := in.MarshalBinary()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("re-encoded % x, %v\nfrom      % x", out, err, b)
		}
	})
}
