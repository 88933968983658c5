package rules_test

import (
	"context"
	"fmt"
	"os"

	"github.com/flashlottery/lottery/rules"
	"github.com/flashlottery/lottery/sdk/abi"
	"github.com/tetratelabs/wazero"
)

// ExampleEvaluate decides for the seed's example tree (gender, then age)
// natively.
func ExampleEvaluate() {
	data, err := os.ReadFile("testdata/seed_tree.yaml")
	if err != nil {
		panic(err)
	}
	tree, err := rules.Decode(data)
	if err != nil {
		panic(err)
	}
	for _, attrs := range [][]abi.Attr{
		{abi.StrAttr(abi.KeyUserGender, "man"), abi.IntAttr(abi.KeyUserAge, 24)},
		{abi.StrAttr(abi.KeyUserGender, "woman"), abi.IntAttr(abi.KeyUserAge, 25)},
		{abi.StrAttr(abi.KeyUserGender, "woman")}, // no age: the default, "no match"
	} {
		id, matched, err := rules.Evaluate(tree, attrs)
		fmt.Println(id, matched, err)
	}
	// Output:
	// 100001 true <nil>
	// 100004 true <nil>
	// 0 false <nil>
}

// ExampleCompile compiles a tree to a rule module and calls it the way the
// host does: the encoded input written at input_ptr, then decide.
func ExampleCompile() {
	tree := &rules.Tree{
		ID:   "vip-or-adult",
		Root: "tags",
		Nodes: []rules.Node{
			{ID: "tags", Type: rules.Branch, RuleKey: "userTags", Default: "age"},
			{ID: "age", Type: rules.Branch, RuleKey: "userAge", Default: "none"},
			{ID: "vip", Type: rules.Leaf, Value: 100001},
			{ID: "adult", Type: rules.Leaf, Value: 100002},
			{ID: "none", Type: rules.Leaf, Value: 0},
		},
		Lines: []rules.Line{
			{From: "tags", To: "vip", LimitType: rules.LimitEnum, LimitValue: rules.Values{"vip", "svip"}},
			{From: "age", To: "adult", LimitType: rules.LimitGreaterEqual, LimitValue: rules.Values{"18"}},
		},
	}
	bin, err := rules.Compile(tree)
	if err != nil {
		panic(err)
	}

	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	mod, err := r.Instantiate(ctx, bin)
	if err != nil {
		panic(err)
	}
	res, _ := mod.ExportedFunction(abi.ExportInputPtr).Call(ctx)
	ptr := uint32(res[0])
	decide := mod.ExportedFunction(abi.ExportDecide)
	for _, attrs := range [][]abi.Attr{
		{abi.IntAttr(abi.KeyUserAge, 30), abi.StrAttr(abi.KeyUserTags, "new"), abi.StrAttr(abi.KeyUserTags, "svip")},
		{abi.IntAttr(abi.KeyUserAge, 30)},
		{abi.IntAttr(abi.KeyUserAge, 17)},
	} {
		in := abi.RuleInput{Attrs: attrs}
		b, err := in.MarshalBinary()
		if err != nil {
			panic(err)
		}
		mod.Memory().Write(ptr, b)
		res, err := decide.Call(ctx, uint64(ptr), uint64(len(b)))
		if err != nil {
			panic(err)
		}
		fmt.Println(abi.DecideResult(int64(res[0])))
	}
	fmt.Println("under 4 KiB:", len(bin) < 4096)
	// Output:
	// 100001 true <nil>
	// 100002 true <nil>
	// 0 false <nil>
	// under 4 KiB: true
}
