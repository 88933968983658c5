package configs

import (
	"time"

	"github.com/flashlottery/lottery/lottery"
)

// DemoActivityID is the id of the demo activity the embedded mode seeds.
const DemoActivityID = 100001

// Demo returns the demo activity, running from a minute before now for 30
// days, with 5,000 units of stock, ten draws per user, and a single-item
// strategy with an award of every type (35.5% win in all).
func Demo(now time.Time) (*lottery.Activity, *lottery.Strategy) {
	a := &lottery.Activity{
		ID: DemoActivityID, Name: "Flash sale demo", Desc: "seeded by lottery serve on embedded defaults",
		BeginAt: now.Add(-time.Minute).Truncate(time.Second), EndAt: now.Add(30 * 24 * time.Hour).Truncate(time.Second),
		StockCount: 5000, TakeCount: 10, StrategyID: 10001, State: lottery.StateDoing,
	}
	s := &lottery.Strategy{
		ID: 10001, Desc: "demo: single-item rates", Mode: lottery.ModeSingle, GrantType: lottery.GrantImmediate,
		Details: []lottery.StrategyDetail{
			{Award: lottery.Award{ID: "101", Type: lottery.AwardDescription, Name: "Thank-you card", Content: "Thanks for joining the flash sale"}, AwardCount: 2000, Rate: lottery.RateFromFloat(0.20)},
			{Award: lottery.Award{ID: "102", Type: lottery.AwardRedeemCode, Name: "Gift card code", Content: "10 USD gift card"}, AwardCount: 1000, Rate: lottery.RateFromFloat(0.10)},
			{Award: lottery.Award{ID: "103", Type: lottery.AwardCoupon, Name: "20% coupon", Content: "20% off the next order"}, AwardCount: 500, Rate: lottery.RateFromFloat(0.05)},
			{Award: lottery.Award{ID: "104", Type: lottery.AwardGoods, Name: "Headphones", Content: "Wireless headphones, shipped"}, AwardCount: 20, Rate: lottery.RateFromFloat(0.005)},
		},
	}
	return a, s
}
