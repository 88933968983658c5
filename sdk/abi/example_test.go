package abi_test

import (
	"fmt"

	"github.com/flashlottery/lottery/sdk/abi"
)

// Example encodes a draw input as the host does before calling draw, and
// decodes it as a Go guest would.
func Example() {
	in := abi.DrawInput{
		Mode:   abi.ModeTotal,
		Seed:   0x5eed,
		TimeMs: 1_700_000_000_000,
		Awards: []abi.Award{{Rate: 500_000, InStock: true}, {Rate: 500_000, InStock: false}},
	}
	buf := make([]byte, 0, abi.MaxDrawInputSize) // reused across calls
	b, err := in.AppendBinary(buf)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(b), "bytes")

	var got abi.DrawInput
	if err := got.UnmarshalBinary(b); err != nil {
		panic(err)
	}
	fmt.Println(got.Mode, got.Seed, got.Awards)

	idx, err := abi.DrawResult(0, len(got.Awards)) // what draw returned
	fmt.Println(idx, err)
	// Output:
	// 34 bytes
	// 2 24301 [{500000 true} {500000 false}]
	// 0 <nil>
}

// ExampleRuleInput encodes the attributes a rule tree decides on.
func ExampleRuleInput() {
	in := abi.RuleInput{TimeMs: 1_700_000_000_000, Attrs: []abi.Attr{
		abi.StrAttr(abi.KeyUserGender, "man"),
		abi.IntAttr(abi.KeyUserAge, 25),
		abi.StrAttr(abi.KeyUserTags, "vip"),
		abi.StrAttr(abi.KeyUserTags, "new"),
	}}
	b, err := in.MarshalBinary()
	if err != nil {
		panic(err)
	}
	var got abi.RuleInput
	if err := got.UnmarshalBinary(b); err != nil {
		panic(err)
	}
	for _, a := range got.Attrs {
		if a.Type == abi.AttrInt {
			fmt.Println(a.Key, a.Int)
		} else {
			fmt.Println(a.Key, a.Str)
		}
	}
	id, ok, err := abi.DecideResult(100001) // what decide returned
	fmt.Println(len(b), id, ok, err)
	// Output:
	// userGender man
	// userAge 25
	// userTags vip
	// userTags new
	// 44 100001 true <nil>
}
