package invoice_test

import (
	"context"
	"errors"
	"regexp"
	"testing"

	"github.com/flashlottery/lottery/invoice"
	"github.com/flashlottery/lottery/invoice/invoicetest"
	"github.com/flashlottery/lottery/lottery"
)

func TestDistributorByType(t *testing.T) {
	tests := []struct {
		name    string
		typ     lottery.AwardType
		code    bool
		address bool
		err     error
	}{
		{"description", lottery.AwardDescription, false, false, nil},
		{"redeem code", lottery.AwardRedeemCode, true, false, nil},
		{"coupon", lottery.AwardCoupon, true, false, nil},
		{"goods", lottery.AwardGoods, false, true, nil},
		{"unknown", 9, false, false, lottery.ErrInvalid},
		{"zero", 0, false, false, lottery.ErrInvalid},
		{"negative", -1, false, false, lottery.ErrInvalid},
	}
	codeRE := regexp.MustCompile(`^[A-Z2-7]{4}(-[A-Z2-7]{4}){3}$`)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := invoicetest.NewGranter()
			sink := &lastSink{}
			d := invoice.NewDistributor(g, invoice.WithSink(sink), invoice.WithSecret([]byte("k")))
			inv := lottery.Invoice{OrderID: int64(100 + i), UserID: "u1", Award: lottery.Award{ID: "a", Type: tt.typ}}
			for range 3 {
				err := d.Deliver(context.Background(), inv)
				if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
					t.Fatalf("Deliver: %v, want %v", err, tt.err)
				}
			}
			st := d.Stats()
			if tt.err != nil {
				if st != (invoice.DistributorStats{Rejected: 3}) || sink.n != 0 {
					t.Fatalf("stats %+v, sink calls %d; want 3 rejected, no delivery", st, sink.n)
				}
				return
			}
			if st != (invoice.DistributorStats{Granted: 1, Duplicates: 2}) {
				t.Fatalf("stats %+v, want 1 granted and 2 duplicates", st)
			}
			if sink.n != 3 {
				t.Fatalf("sink called %d times, want 3", sink.n)
			}
			if got := sink.last.Code != ""; got != tt.code {
				t.Errorf("code %q, want one: %v", sink.last.Code, tt.code)
			}
			if tt.code && !codeRE.MatchString(sink.last.Code) {
				t.Errorf("code %q is not XXXX-XXXX-XXXX-XXXX base32", sink.last.Code)
			}
			if sink.last.AddressRequest != tt.address {
				t.Errorf("address request %v, want %v", sink.last.AddressRequest, tt.address)
			}
			if sink.last.Ref != (lottery.OrderRef{UserID: "u1", OrderID: inv.OrderID}) {
				t.Errorf("ref %+v", sink.last.Ref)
			}
		})
	}
}

func TestDistributorCodes(t *testing.T) {
	a := invoice.NewDistributor(nil, invoice.WithSecret([]byte("one")))
	b := invoice.NewDistributor(nil, invoice.WithSecret([]byte("one")))
	c := invoice.NewDistributor(nil, invoice.WithSecret([]byte("two")))
	if a.RedeemCode(7) != b.RedeemCode(7) {
		t.Error("same secret and order, different redeem codes")
	}
	if a.RedeemCode(7) == a.RedeemCode(8) {
		t.Error("different orders, same redeem code")
	}
	if a.RedeemCode(7) == c.RedeemCode(7) {
		t.Error("different secrets, same redeem code")
	}
	if a.RedeemCode(7) == a.CouponCode(7) {
		t.Error("redeem and coupon codes of one order coincide")
	}
}

func TestDistributorErrors(t *testing.T) {
	inv := lottery.Invoice{OrderID: 1, UserID: "u", Award: lottery.Award{Type: lottery.AwardCoupon}}

	boom := errors.New("store down")
	d := invoice.NewDistributor(granterFunc(func(context.Context, lottery.OrderRef) (bool, error) {
		return false, boom
	}))
	if err := d.Deliver(context.Background(), inv); !errors.Is(err, boom) {
		t.Errorf("Deliver with a failing granter: %v, want %v", err, boom)
	}
	if st := d.Stats(); st != (invoice.DistributorStats{}) {
		t.Errorf("a failed grant was counted: %+v", st)
	}

	granted := false
	d = invoice.NewDistributor(granterFunc(func(context.Context, lottery.OrderRef) (bool, error) {
		granted = true
		return true, nil
	}), invoice.WithSink(sinkFunc(func(context.Context, invoice.Delivery) error { return boom })))
	if err := d.Deliver(context.Background(), inv); !errors.Is(err, boom) {
		t.Errorf("Deliver with a failing sink: %v, want %v", err, boom)
	}
	if granted {
		t.Error("the order was granted although its delivery failed")
	}
}

type lastSink struct {
	n    int
	last invoice.Delivery
}

func (s *lastSink) Send(_ context.Context, d invoice.Delivery) error {
	s.n++
	s.last = d
	return nil
}

type granterFunc func(context.Context, lottery.OrderRef) (bool, error)

func (f granterFunc) Grant(ctx context.Context, r lottery.OrderRef) (bool, error) { return f(ctx, r) }

type sinkFunc func(context.Context, invoice.Delivery) error

func (f sinkFunc) Send(ctx context.Context, d invoice.Delivery) error { return f(ctx, d) }
