package invoice

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"hash"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/flashlottery/lottery/lottery"
)

// Delivery is what the distributor hands out for one order. Every field is
// a function of the invoice (and the distributor's secret), so a repeated
// delivery produces the same Delivery.
type Delivery struct {
	Ref        lottery.OrderRef
	ActivityID int64
	Award      lottery.Award
	// Code is the redeem code (award type 2) or the coupon code (type 3);
	// empty for the others.
	Code string
	// AddressRequest is true for physical goods (type 4): the user is asked
	// for a shipping address.
	AddressRequest bool
}

// Sink receives each Delivery before the order is marked granted, for
// example to notify the user or to queue an address request. It is called
// again when an invoice is delivered again, so it must be idempotent (keyed
// by Delivery.Ref.OrderID). An error makes the consumer retry the invoice.
type Sink interface {
	Send(ctx context.Context, d Delivery) error
}

// Option configures a Distributor.
type Option func(*Distributor)

// WithSecret sets the key redeem and coupon codes are derived from. Set it
// in production: the default is a fixed development key, so codes from it
// are guessable.
func WithSecret(secret []byte) Option {
	return func(d *Distributor) { d.secret = append([]byte(nil), secret...) }
}

// WithLogger sets the logger of the per-type deliveries (debug level).
func WithLogger(l *slog.Logger) Option {
	return func(d *Distributor) {
		if l != nil {
			d.log = l
		}
	}
}

// WithSink sets where deliveries go (default: only the debug log).
func WithSink(s Sink) Option {
	return func(d *Distributor) { d.sink = s }
}

// DistributorStats are a Distributor's counters since it was created.
type DistributorStats struct {
	// Granted counts orders this distributor moved to granted.
	Granted uint64
	// Duplicates counts deliveries of orders that were already granted.
	Duplicates uint64
	// Rejected counts invoices with an unknown award type.
	Rejected uint64
}

// Distributor delivers prizes by award type and records each delivery with
// the Granter. It implements BatchHandler. Every step is idempotent, so any
// number of deliveries of one invoice grants its order once.
type Distributor struct {
	g      lottery.Granter
	secret []byte
	log    *slog.Logger
	sink   Sink
	byType [lottery.AwardGoods + 1]func(context.Context, lottery.Invoice) Delivery
	macs   sync.Pool // of hash.Hash: HMAC-SHA256 under secret, reset

	granted, duplicates, rejected atomic.Uint64
}

var _ BatchHandler = (*Distributor)(nil)

// devSecret is the default code key; see WithSecret.
const devSecret = "flashlottery-dev-secret"

// NewDistributor returns a distributor that grants through g.
func NewDistributor(g lottery.Granter, opts ...Option) *Distributor {
	d := &Distributor{g: g, secret: []byte(devSecret), log: slog.Default()}
	for _, o := range opts {
		o(d)
	}
	d.byType[lottery.AwardDescription] = d.description
	d.byType[lottery.AwardRedeemCode] = d.redeemCode
	d.byType[lottery.AwardCoupon] = d.coupon
	d.byType[lottery.AwardGoods] = d.goods
	return d
}

// Deliver runs the award type's distribution and then grants the order.
// An order that was already granted counts as a duplicate and is no error.
// An unknown award type is an error wrapping lottery.ErrInvalid, which the
// Consumer logs and skips instead of retrying.
func (d *Distributor) Deliver(ctx context.Context, inv lottery.Invoice) error {
	var errs [1]error
	d.DeliverEach(ctx, []lottery.Invoice{inv}, errs[:])
	return errs[0]
}

// DeliverEach delivers invs as Deliver would, errs[i] being the answer for
// invs[i], and grants the orders together when the Granter takes several
// at once (lottery.GrantBatch): one store write for a consumer's batch.
func (d *Distributor) DeliverEach(ctx context.Context, invs []lottery.Invoice, errs []error) {
	refs := make([]lottery.OrderRef, 0, len(invs))
	idx := make([]int, 0, len(invs)) // the invoice of each ref
	for i, inv := range invs {
		errs[i] = nil
		t := inv.Award.Type
		if t < 0 || int(t) >= len(d.byType) || d.byType[t] == nil {
			d.rejected.Add(1)
			errs[i] = fmt.Errorf("invoice: order %d: %w: unknown award type %d", inv.OrderID, lottery.ErrInvalid, int8(t))
			continue
		}
		dl := d.byType[t](ctx, inv)
		if d.sink != nil {
			if err := d.sink.Send(ctx, dl); err != nil {
				errs[i] = fmt.Errorf("invoice: send %s of order %d: %w", t, inv.OrderID, err)
				continue
			}
		}
		refs, idx = append(refs, dl.Ref), append(idx, i)
	}
	if len(refs) == 0 {
		return
	}
	moved, gerrs := make([]bool, len(refs)), make([]error, len(refs))
	if gb, ok := d.g.(lottery.GrantBatch); ok {
		gb.GrantEach(ctx, refs, moved, gerrs)
	} else {
		for j, ref := range refs {
			moved[j], gerrs[j] = d.g.Grant(ctx, ref)
		}
	}
	for j, i := range idx {
		inv := invs[i]
		switch {
		case gerrs[j] != nil:
			errs[i] = fmt.Errorf("invoice: grant order %d: %w", inv.OrderID, gerrs[j])
		case moved[j]:
			d.granted.Add(1)
		default:
			d.duplicates.Add(1)
			if d.debugging(ctx) {
				d.log.DebugContext(ctx, "invoice: order already granted", "order", inv.OrderID, "user", inv.UserID)
			}
		}
	}
}

// Stats returns the distributor's counters.
func (d *Distributor) Stats() DistributorStats {
	return DistributorStats{Granted: d.granted.Load(), Duplicates: d.duplicates.Load(), Rejected: d.rejected.Load()}
}

// RedeemCode returns the redeem code of an order: an HMAC of the order id
// under the secret, so every delivery of the order shows the same code and
// nobody without the secret can forge one.
func (d *Distributor) RedeemCode(orderID int64) string { return d.code("redeem", orderID) }

// CouponCode returns the coupon code of an order, derived like RedeemCode.
func (d *Distributor) CouponCode(orderID int64) string { return d.code("coupon", orderID) }

var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// code is 80 bits of HMAC-SHA256(secret, kind || order id) in base32,
// grouped by four: XXXX-XXXX-XXXX-XXXX.
func (d *Distributor) code(kind string, orderID int64) string {
	m, _ := d.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, d.secret)
	}
	var buf [sha256.Size]byte
	m.Write([]byte(kind))
	m.Write(binary.BigEndian.AppendUint64(buf[:0], uint64(orderID)))
	sum := m.Sum(buf[:0])
	m.Reset()
	d.macs.Put(m)
	var enc [16]byte // 10 bytes in base32
	codeEncoding.Encode(enc[:], sum[:10])
	b := make([]byte, 0, len(enc)+len(enc)/4-1)
	for i := 0; i < len(enc); i += 4 {
		if i > 0 {
			b = append(b, '-')
		}
		b = append(b, enc[i:i+4]...)
	}
	return string(b)
}

func deliveryOf(inv lottery.Invoice) Delivery {
	return Delivery{Ref: lottery.OrderRef{UserID: inv.UserID, OrderID: inv.OrderID}, ActivityID: inv.ActivityID, Award: inv.Award}
}

// description delivers award type 1: the prize is its description, there
// is nothing to send.
func (d *Distributor) description(ctx context.Context, inv lottery.Invoice) Delivery {
	if d.debugging(ctx) {
		d.log.DebugContext(ctx, "invoice: description award, nothing to send", "order", inv.OrderID, "user", inv.UserID, "award", inv.Award.ID)
	}
	return deliveryOf(inv)
}

// redeemCode delivers award type 2: a code derived from the order id.
func (d *Distributor) redeemCode(ctx context.Context, inv lottery.Invoice) Delivery {
	dl := deliveryOf(inv)
	dl.Code = d.RedeemCode(inv.OrderID)
	if d.debugging(ctx) {
		d.log.DebugContext(ctx, "invoice: redeem code issued", "order", inv.OrderID, "user", inv.UserID, "award", inv.Award.ID)
	}
	return dl
}

// coupon delivers award type 3: a coupon of the template named by the
// award content, with a code derived from the order id.
func (d *Distributor) coupon(ctx context.Context, inv lottery.Invoice) Delivery {
	dl := deliveryOf(inv)
	dl.Code = d.CouponCode(inv.OrderID)
	if d.debugging(ctx) {
		d.log.DebugContext(ctx, "invoice: coupon issued", "order", inv.OrderID, "user", inv.UserID, "award", inv.Award.ID, "coupon", inv.Award.Content)
	}
	return dl
}

// goods delivers award type 4: physical goods need a shipping address, so
// the delivery is an address request to the user.
func (d *Distributor) goods(ctx context.Context, inv lottery.Invoice) Delivery {
	dl := deliveryOf(inv)
	dl.AddressRequest = true
	if d.debugging(ctx) {
		d.log.DebugContext(ctx, "invoice: address requested for goods", "order", inv.OrderID, "user", inv.UserID, "award", inv.Award.ID)
	}
	return dl
}

// debugging reports whether debug records are kept: the per-delivery debug
// lines are built only then (their arguments would be boxed for nothing).
func (d *Distributor) debugging(ctx context.Context) bool {
	return d.log.Enabled(ctx, slog.LevelDebug)
}
