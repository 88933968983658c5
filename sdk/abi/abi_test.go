package abi

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestExports(t *testing.T) {
	for _, tc := range []struct {
		kind  Kind
		entry string
		res   ValueType
	}{{KindRule, ExportDecide, I64}, {KindDraw, ExportDraw, I32}} {
		ex := Exports(tc.kind)
		if len(ex) != 4 {
			t.Fatalf("%v: %d exports", tc.kind, len(ex))
		}
		names := map[string]FuncExport{}
		for _, e := range ex {
			names[e.Name] = e
		}
		for _, n := range []string{ExportVersion, ExportInputPtr, ExportInputCap} {
			if e := names[n]; len(e.Params) != 0 || !reflect.DeepEqual(e.Results, []ValueType{I32}) {
				t.Errorf("%v: %s has signature %+v", tc.kind, n, e)
			}
		}
		e := names[tc.entry]
		if !reflect.DeepEqual(e.Params, []ValueType{I32, I32}) || !reflect.DeepEqual(e.Results, []ValueType{tc.res}) {
			t.Errorf("%v: %s has signature %+v", tc.kind, tc.entry, e)
		}
		ex[3].Params[0] = I64 // callers get their own copy
		if Exports(tc.kind)[3].Params[0] != I32 {
			t.Error("Exports shares its slices")
		}
	}
	if Exports(0) != nil {
		t.Error("Exports(0) is not nil")
	}
}

func TestKind(t *testing.T) {
	for _, k := range []Kind{KindRule, KindDraw} {
		got, err := ParseKind(k.String())
		if err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k.String(), got, err)
		}
	}
	if _, err := ParseKind("lua"); err == nil {
		t.Error("ParseKind accepted lua")
	}
	if s := Kind(9).String(); s != "kind(9)" {
		t.Errorf("Kind(9) = %q", s)
	}
}

func TestCodes(t *testing.T) {
	for _, c := range []Code{CodeFailed, CodeBadInput, CodeVersion, CodeUnsupported, CodeInternal, -100} {
		if !strings.HasPrefix(c.Error(), "abi: ") {
			t.Errorf("Code(%d).Error() = %q", c, c.Error())
		}
	}
	wrapped := fmt.Errorf("decoding: %w", fmt.Errorf("%w: detail", CodeVersion))
	if CodeOf(wrapped) != CodeVersion || !errors.Is(wrapped, CodeVersion) {
		t.Error("CodeOf or errors.Is lost the code")
	}
	if CodeOf(nil) != 0 || CodeOf(errors.New("x")) != CodeInternal {
		t.Error("CodeOf of nil or a plain error")
	}
}

func TestDrawResult(t *testing.T) {
	for _, tc := range []struct {
		r    int32
		n    int
		want int
		err  error
	}{
		{0, 1, 0, nil},
		{63, 64, 63, nil},
		{-1, 3, NoAward, nil},
		{3, 3, NoAward, ErrBadResult},
		{-2, 3, NoAward, CodeBadInput},
		{-77, 3, NoAward, Code(-77)},
	} {
		got, err := DrawResult(tc.r, tc.n)
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("DrawResult(%d, %d) = %d, %v; want %d, %v", tc.r, tc.n, got, err, tc.want, tc.err)
		}
	}
}

func TestDecideResult(t *testing.T) {
	for _, tc := range []struct {
		r    int64
		id   int64
		ok   bool
		code Code
	}{
		{100001, 100001, true, 0},
		{1, 1, true, 0},
		{0, 0, false, 0},
		{-1, 0, false, CodeFailed},
		{-3, 0, false, CodeVersion},
	} {
		id, ok, err := DecideResult(tc.r)
		if id != tc.id || ok != tc.ok || CodeOf(err) != tc.code {
			t.Errorf("DecideResult(%d) = %d, %v, %v", tc.r, id, ok, err)
		}
	}
}

func TestDrawInputLayout(t *testing.T) {
	in := DrawInput{Mode: ModeSingle, Seed: 0x0102030405060708, TimeMs: 1_700_000_000_000,
		Awards: []Award{{Rate: 100, InStock: true}, {Rate: 999_900, InStock: false}}}
	got, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		1, 0, // version
		1,          // mode
		2,          // awards
		0, 0, 0, 0, // reserved
		8, 7, 6, 5, 4, 3, 2, 1, // seed
		0x00, 0x68, 0xe5, 0xcf, 0x8b, 0x01, 0x00, 0x00, // time
		100, 0, 0, 0, 1, // award 0
		0xdc, 0x41, 0x0f, 0, 0, // award 1
	}
	if !bytes.Equal(got, want) || in.Size() != len(want) {
		t.Fatalf("encoded % x\nwant    % x", got, want)
	}
	var out DrawInput
	if err := out.UnmarshalBinary(got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("decoded %+v, want %+v", out, in)
	}
}

func validDraw() []byte {
	in := DrawInput{Mode: ModeTotal, Seed: 42, Awards: []Award{{Rate: 10, InStock: true}, {Rate: 20}}}
	b, _ := in.MarshalBinary()
	return b
}

func TestDrawInputErrors(t *testing.T) {
	edit := func(f func(b []byte) []byte) []byte { return f(validDraw()) }
	cases := []struct {
		name string
		in   []byte
		code Code
	}{
		{"empty", nil, CodeBadInput},
		{"one byte", []byte{1}, CodeBadInput},
		{"version 2", edit(func(b []byte) []byte { b[0] = 2; return b }), CodeVersion},
		{"short header", validDraw()[:23], CodeBadInput},
		{"mode 0", edit(func(b []byte) []byte { b[2] = 0; return b }), CodeBadInput},
		{"mode 3", edit(func(b []byte) []byte { b[2] = 3; return b }), CodeBadInput},
		{"no awards", edit(func(b []byte) []byte { b[3] = 0; return b[:24] }), CodeBadInput},
		{"65 awards", edit(func(b []byte) []byte { b[3] = 65; return append(b[:24], make([]byte, 65*5)...) }), CodeBadInput},
		{"reserved", edit(func(b []byte) []byte { b[6] = 1; return b }), CodeBadInput},
		{"truncated", validDraw()[:33], CodeBadInput},
		{"trailing byte", append(validDraw(), 0), CodeBadInput},
		{"rate above scale", edit(func(b []byte) []byte { b[24], b[25], b[26] = 0x41, 0x42, 0x0f; return b }), CodeBadInput},
		{"flag 2", edit(func(b []byte) []byte { b[28] = 2; return b }), CodeBadInput},
		{"single sum above scale", edit(func(b []byte) []byte {
			b[2] = 1
			b[24], b[25], b[26] = 0x40, 0x42, 0x0f // 1_000_000 plus award 1's 20
			return b
		}), CodeBadInput},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var in DrawInput
			err := in.UnmarshalBinary(tc.in)
			if CodeOf(err) != tc.code {
				t.Fatalf("error %v, want code %d", err, tc.code)
			}
		})
	}
	for _, in := range []DrawInput{
		{Mode: 0, Awards: []Award{{}}},
		{Mode: ModeSingle},
		{Mode: ModeSingle, Awards: make([]Award, 65)},
		{Mode: ModeTotal, Awards: []Award{{Rate: RateScale + 1}}},
		{Mode: ModeSingle, Awards: []Award{{Rate: RateScale}, {Rate: 1}}},
	} {
		if b, err := in.MarshalBinary(); CodeOf(err) != CodeBadInput {
			t.Errorf("MarshalBinary(%+v) = % x, %v", in, b, err)
		}
	}
}

func TestDrawInputNoAllocs(t *testing.T) {
	in := DrawInput{Mode: ModeTotal, Awards: make([]Award, MaxAwards)}
	buf := make([]byte, 0, MaxDrawInputSize)
	var out DrawInput
	b, _ := in.AppendBinary(buf)
	_ = out.UnmarshalBinary(b) // sizes out.Awards
	allocs := testing.AllocsPerRun(100, func() {
		in.Seed++
		b, _ := in.AppendBinary(buf[:0])
		if err := out.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per encode and decode", allocs)
	}
}

func TestRuleInputLayout(t *testing.T) {
	in := RuleInput{TimeMs: 1, Attrs: []Attr{
		StrAttr(KeyUserGender, "man"),
		IntAttr(KeyUserAge, 25),
		StrAttr(KeyUserTags, "vip"),
		StrAttr(KeyUserTags, ""),
		IntAttr(200, -1),
		IntAttr(200, 2),
	}}
	got, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		1, 0, 0, 6, 0, 0, 0, 0, // version, reserved, count, reserved
		1, 0, 0, 0, 0, 0, 0, 0, // time
		2, 2, 3, 'm', 'a', 'n',
		1, 1, 25, 0, 0, 0, 0, 0, 0, 0,
		3, 2, 3, 'v', 'i', 'p',
		3, 2, 0,
		200, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		200, 1, 2, 0, 0, 0, 0, 0, 0, 0,
	}
	if !bytes.Equal(got, want) || in.Size() != len(want) {
		t.Fatalf("encoded % x\nwant    % x", got, want)
	}
	var out RuleInput
	if err := out.UnmarshalBinary(got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("decoded %+v, want %+v", out, in)
	}
	if a, ok := out.Lookup(KeyUserAge); !ok || a.Int != 25 {
		t.Fatalf("Lookup(userAge) = %+v, %v", a, ok)
	}
	if _, ok := out.Lookup(KeyUserCity); ok {
		t.Fatal("Lookup(userCity) found one")
	}
	empty := RuleInput{}
	b, err := empty.MarshalBinary()
	if err != nil || len(b) != RuleHeaderSize || empty.UnmarshalBinary(b) != nil {
		t.Fatalf("empty input: % x, %v", b, err)
	}
}

func TestKeys(t *testing.T) {
	for k := KeyUserAge; k <= KeyDaysSinceRegistration; k++ {
		if got, ok := ParseKey(k.String()); !ok || got != k {
			t.Errorf("ParseKey(%q) = %v, %v", k.String(), got, ok)
		}
		if k.Type() == 0 {
			t.Errorf("%v has no type", k)
		}
	}
	if _, ok := ParseKey("userShoeSize"); ok {
		t.Error("ParseKey accepted an unknown name")
	}
	if Key(7).String() != "key(7)" || Key(7).Type() != 0 || !Key(7).Repeatable() || KeyUserAge.Repeatable() {
		t.Error("unknown keys")
	}
}

func TestRuleInputErrors(t *testing.T) {
	hdr := []byte{1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	with := func(count byte, attrs ...byte) []byte {
		b := append([]byte(nil), hdr...)
		b[3] = count
		return append(b, attrs...)
	}
	cases := []struct {
		name string
		in   []byte
		code Code
	}{
		{"empty", nil, CodeBadInput},
		{"version 0", []byte{0, 0}, CodeVersion},
		{"short header", hdr[:15], CodeBadInput},
		{"reserved byte 2", func() []byte { b := with(0); b[2] = 1; return b }(), CodeBadInput},
		{"reserved byte 5", func() []byte { b := with(0); b[5] = 1; return b }(), CodeBadInput},
		{"too many attributes", with(65), CodeBadInput},
		{"too large", append(with(0), make([]byte, MaxInputSize)...), CodeBadInput},
		{"missing attribute", with(1), CodeBadInput},
		{"key 0", with(1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0), CodeBadInput},
		{"type 3", with(1, 9, 3), CodeBadInput},
		{"wrong type for userAge", with(1, 1, 2, 0), CodeBadInput},
		{"int cut off", with(1, 1, 1, 0, 0), CodeBadInput},
		{"string length missing", with(1, 2, 2), CodeBadInput},
		{"string cut off", with(1, 2, 2, 5, 'a'), CodeBadInput},
		{"repeated userAge", with(2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), CodeBadInput},
		{"trailing bytes", with(0, 1), CodeBadInput},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var in RuleInput
			if err := in.UnmarshalBinary(tc.in); CodeOf(err) != tc.code {
				t.Fatalf("error %v, want code %d", err, tc.code)
			}
		})
	}
	long := strings.Repeat("x", 256)
	many := make([]Attr, 65)
	for i := range many {
		many[i] = StrAttr(KeyUserTags, "t")
	}
	big := make([]Attr, 17)
	for i := range big {
		big[i] = StrAttr(KeyUserTags, long[:255])
	}
	for _, in := range []RuleInput{
		{Attrs: many},
		{Attrs: big},
		{Attrs: []Attr{StrAttr(KeyUserCity, long)}},
		{Attrs: []Attr{IntAttr(KeyUserCity, 1)}},
		{Attrs: []Attr{{Key: 9, Type: 0}}},
		{Attrs: []Attr{IntAttr(0, 1)}},
		{Attrs: []Attr{StrAttr(KeyUserGender, "a"), StrAttr(KeyUserGender, "b")}},
	} {
		if _, err := in.MarshalBinary(); CodeOf(err) != CodeBadInput {
			t.Errorf("MarshalBinary(%d attrs) = %v", len(in.Attrs), err)
		}
	}
}
