package lottery

import (
	"fmt"
	"math"
	"time"
)

// Mode is a strategy's draw mode (the seed's strategy_mode).
type Mode int8

const (
	// ModeSingle is the single-item rate: each award has its own probability,
	// what is left over is a miss, and a drawn award without stock is a miss.
	ModeSingle Mode = 1
	// ModeTotal is the total rate: awards without stock are removed and the
	// rates of the rest are renormalised, so a draw misses only when nothing is left.
	ModeTotal Mode = 2
)

// GrantType says when a prize is delivered (the seed's grant_type).
type GrantType int8

// Grant types.
const (
	GrantImmediate GrantType = 1
	GrantScheduled GrantType = 2
	GrantManual    GrantType = 3
)

// AwardType is the kind of prize (the seed's award_type).
type AwardType int8

// Award types.
const (
	AwardDescription AwardType = 1
	AwardRedeemCode  AwardType = 2
	AwardCoupon      AwardType = 3
	AwardGoods       AwardType = 4
)

var awardTypeNames = [...]string{"", "description", "redeem_code", "coupon", "goods"}

// String returns the award type's name as the HTTP API shows it.
func (t AwardType) String() string {
	if t >= 1 && int(t) < len(awardTypeNames) {
		return awardTypeNames[t]
	}
	return fmt.Sprintf("award_type(%d)", int8(t))
}

// Award is a prize (the seed's `award` table).
type Award struct {
	ID      string    `json:"awardId"`
	Type    AwardType `json:"awardType"`
	Name    string    `json:"awardName"`
	Content string    `json:"awardContent"`
}

// RateScale is the fixed-point scale of award rates: one part per million,
// finer than the 0.01% the product promises.
const RateScale = 1_000_000

// StrategyDetail is one award of a strategy with its stock and rate (the
// seed's strategy_detail joined with award).
type StrategyDetail struct {
	Award
	AwardCount   int64 `json:"awardCount"`
	AwardSurplus int64 `json:"awardSurplusCount"`
	// Rate is the probability in parts per million (RateScale).
	Rate int64 `json:"awardRatePpm"`
}

// RateFromFloat converts a probability in [0,1] to parts per million,
// rounding to the nearest part.
func RateFromFloat(p float64) int64 { return int64(math.Round(p * RateScale)) }

// Strategy is how an activity draws (the seed's `strategy` table plus its details).
type Strategy struct {
	ID        int64     `json:"strategyId"`
	Desc      string    `json:"strategyDesc,omitempty"`
	Mode      Mode      `json:"strategyMode"`
	GrantType GrantType `json:"grantType"`
	GrantDate time.Time `json:"grantDate,omitzero"`
	// Module names the draw module; empty means the built-in native drawer.
	Module  string           `json:"drawModule,omitempty"`
	Details []StrategyDetail `json:"awards"`
}

// Validate checks a strategy definition before it is stored.
func (s *Strategy) Validate() error {
	var errs []string
	if s.ID <= 0 {
		errs = append(errs, "strategyId must be positive")
	}
	if s.Mode != ModeSingle && s.Mode != ModeTotal {
		errs = append(errs, "strategyMode must be 1 (single) or 2 (total)")
	}
	if s.GrantType < GrantImmediate || s.GrantType > GrantManual {
		errs = append(errs, "grantType must be 1, 2 or 3")
	}
	if len(s.Details) == 0 || len(s.Details) > MaxAwards {
		errs = append(errs, fmt.Sprintf("a strategy needs 1..%d awards", MaxAwards))
	}
	var sum int64
	seen := make(map[string]bool, len(s.Details))
	for i, d := range s.Details {
		if d.ID == "" || len(d.ID) > 64 {
			errs = append(errs, fmt.Sprintf("awards[%d].awardId must be 1 to 64 bytes", i))
		} else if seen[d.ID] {
			errs = append(errs, fmt.Sprintf("awards[%d].awardId %q is repeated", i, d.ID))
		}
		seen[d.ID] = true
		if d.Type < AwardDescription || d.Type > AwardGoods {
			errs = append(errs, fmt.Sprintf("awards[%d].awardType must be 1..4", i))
		}
		if d.Name == "" || len(d.Name) > 128 || len(d.Content) > 1024 {
			errs = append(errs, fmt.Sprintf("awards[%d]: awardName must be 1 to 128 bytes and awardContent at most 1024", i))
		}
		if d.AwardCount < 0 || d.AwardCount > MaxStock {
			errs = append(errs, fmt.Sprintf("awards[%d].awardCount must be in 0..%d", i, MaxStock))
		}
		if d.Rate < 0 || d.Rate > RateScale {
			errs = append(errs, fmt.Sprintf("awards[%d].awardRate must be in [0,1]", i))
		}
		sum += d.Rate
	}
	if s.Mode == ModeSingle && sum > RateScale {
		errs = append(errs, "single-item rates must sum to at most 1")
	}
	if s.Mode == ModeTotal && sum == 0 {
		errs = append(errs, "total-rate strategies need a positive rate sum")
	}
	return joinInvalid(errs)
}

// Detail returns the detail for awardID and its index, or -1.
func (s *Strategy) Detail(awardID string) (*StrategyDetail, int) {
	for i := range s.Details {
		if s.Details[i].ID == awardID {
			return &s.Details[i], i
		}
	}
	return nil, -1
}
