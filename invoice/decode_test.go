package invoice

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
)

// unmarshalInvoice answers as encoding/json does: the same invoice for a
// valid message, an error for an integer out of int64's range (which the
// faster decoder alone would wrap).
func TestUnmarshalInvoice(t *testing.T) {
	valid := lottery.Invoice{OrderID: 7263817263817263817, TakeID: 42, UserID: "u-1234567890123456789012345", ActivityID: 3,
		Award: lottery.Award{ID: "A", Type: lottery.AwardCoupon, Name: "coupon", Content: "10 off"}, At: time.UnixMilli(1764000000123).UTC()}
	b, err := json.Marshal(valid)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range [][]byte{
		b,
		[]byte(`{"orderId":5,"userId":"u","award":{"awardId":"x"},"extra":[1,2,{"a":null}]}`),
		[]byte(`{"orderId":21000000000000000000,"userId":"u"}`),
		[]byte(`{"orderId":9223372036854775808,"userId":"u"}`),
		[]byte(`{"orderId":-9223372036854775809,"userId":"u"}`),
		[]byte(`{"orderId":27000000000000000000,"takeId":1,"userId":"u"}`),
		[]byte(`{"orderId":1.5,"userId":"u"}`),
		[]byte(`{"orderId":"1","userId":"u"}`),
		[]byte(`{"orderId":1,"userId":"u"} x`),
	} {
		var got, want lottery.Invoice
		gerr := unmarshalInvoice(in, &got)
		werr := json.Unmarshal(in, &want)
		if (gerr == nil) != (werr == nil) {
			t.Errorf("%s: error %v, encoding/json says %v", in, gerr, werr)
			continue
		}
		if gerr == nil && got != want {
			t.Errorf("%s: %+v, encoding/json reads %+v", in, got, want)
		}
	}
}

func TestDigitRun(t *testing.T) {
	for in, want := range map[string]bool{"": false, "1234567890123456789": false, "x12345678901234567890y": true, "1234567890123456789 1": false} {
		if got := digitRun([]byte(in), 20); got != want {
			t.Errorf("digitRun(%q) = %v, want %v", in, got, want)
		}
	}
}

// FuzzUnmarshalInvoice holds unmarshalInvoice to encoding/json's answers
// on any message: both refuse it, or both read the same invoice.
func FuzzUnmarshalInvoice(f *testing.F) {
	for _, s := range []string{
		`{"orderId":7263817263817263817,"takeId":42,"userId":"u-1","activityId":3,"award":{"awardId":"A","awardType":2,"awardName":"coupon","awardContent":"10 off"},"orderTime":"2025-11-24T16:00:00.123Z"}`,
		`{"orderId":21000000000000000000,"userId":"u"}`,
		`{"orderId":1,"userId":"\u00e9\ud800"}`,
		`{"ORDERID":1,"userid":"u","award":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got, want lottery.Invoice
		gerr := unmarshalInvoice(b, &got)
		werr := json.Unmarshal(b, &want)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("%q: error %v, encoding/json says %v", b, gerr, werr)
		}
		if gerr == nil && got != want {
			t.Fatalf("%q: %+v, encoding/json reads %+v", b, got, want)
		}
	})
}
