// Command segment is an example rule module written in Go: it sends a user
// to one of three activities by who they are, the kind of filter a rule
// tree expresses (sdk/README.md, rules), written as code instead.
//
// Build it as a WASI reactor and upload it as a rule module:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o segment.wasm ./sdk/examples/segment
//
// The first match wins, in this order:
//
//  1. a user tagged "vip" at level 3 or above: the VIP pre-sale, VIPPresale;
//  2. a user registered less than 7 days ago: the newcomers' draw,
//     Newcomers;
//  3. a user aged 18 to 25 in one of Campuses' cities: the campus draw,
//     Campus;
//
// and otherwise no activity. An absent attribute matches nothing; keys the
// module does not know are ignored, as the ABI asks. A negative age is
// refused as abi.CodeBadInput: the input decodes, but it is not a user.
package main

import (
	"fmt"
	"slices"

	"github.com/flashlottery/lottery/sdk/abi"
)

// The activities the module picks from.
const (
	VIPPresale = 100101
	Newcomers  = 100102
	Campus     = 100103
)

// Campuses are the cities of the campus draw.
var Campuses = []string{"beijing", "shanghai", "hangzhou", "wuhan"}

// segment is the decision.
func segment(in *abi.RuleInput) (int64, bool, error) {
	var (
		age, level, days          int64
		hasAge, hasLevel, hasDays bool
		vip                       bool
		city                      string
	)
	for _, a := range in.Attrs {
		switch a.Key {
		case abi.KeyUserAge:
			age, hasAge = a.Int, true
		case abi.KeyUserLevel:
			level, hasLevel = a.Int, true
		case abi.KeyDaysSinceRegistration:
			days, hasDays = a.Int, true
		case abi.KeyUserTags:
			vip = vip || a.Str == "vip"
		case abi.KeyUserCity:
			city = a.Str
		}
	}
	switch {
	case hasAge && age < 0:
		return 0, false, fmt.Errorf("%w: age %d", abi.CodeBadInput, age)
	case vip && hasLevel && level >= 3:
		return VIPPresale, true, nil
	case hasDays && days < 7:
		return Newcomers, true, nil
	case hasAge && age >= 18 && age <= 25 && slices.Contains(Campuses, city):
		return Campus, true, nil
	}
	return 0, false, nil
}

// main does not run: a reactor (-buildmode=c-shared) only initialises its
// packages, and the host calls the exports.
func main() {}
