// Package lottery is the domain core of the flash-sale lottery edge: activities
// and their state machine, strategies and awards, the partake template (check,
// reserve, take), the draw process (partake, draw, order, invoice, event), the
// ports every adapter implements, the sentinel errors, and id generation.
//
// Design decisions:
//
//   - Standard library only. Every adapter (stock, orders, invoice, analytics,
//     wasm) imports this package and implements one of its ports; nothing here
//     imports them. That keeps the flow testable with the embedded adapters and
//     lets production backends be swapped in without touching the process.
//   - Ports are small and shaped by what their callers make: the draw process
//     (Stock with StockBatch, Orders, Catalog, Drawer, Events), the relay
//     (Outbox, Publisher), the invoice consumer (Granter, GrantBatch), the
//     administration and the jobs (StockAdmin, StockTrimmer, CatalogAdmin,
//     Ledger, SurplusWriter). Calls none of them makes live on the adapters'
//     concrete types.
//   - Stock is reserved before anything is written and given back when a later
//     step fails, so the stock port is the single authority on "never oversold".
//     A write whose commit went unanswered (ErrOutcomeUnknown) may have
//     happened: its units stay reserved, and the reconciliation gives back
//     those of a write that did not, once the stock port's count has stood
//     above the durable record for two draw timeouts.
//   - A draw of a new take is one store write: the take is recorded with
//     its outcome and the order (Orders.TakeDraw, one transaction, the take
//     stored already used), so a draw waits on one group commit, not two.
//     The activity unit is reserved before the write and given back, with
//     the award's, if the write or anything before it fails: a failed draw
//     of a new take leaves nothing behind, and no take of this process is
//     ever left unused. An unused take recorded otherwise (by an older edge
//     that recorded a take before its draw, the stores' Take) is reused (the
//     seed's "reuse the unused take") by a draw that goes through the store
//     read, which a user's draw does once the count is used up or the
//     activity's stock refused a new take (see the next point): Orders.Draw
//     records its outcome, and a failed draw of it leaves it unused again.
//   - The first draw of a user reads nothing: the new take's own write checks
//     the user's count (TakeDraw answers ErrLimitReached, writing nothing,
//     when the takes are used up). Only a user this Service knows to have
//     used them up (a bounded set, filled when a take uses the count up or
//     the store refuses one) goes through the store read (Orders.UserState)
//     first, which reuses an unused take or answers ErrLimitReached without
//     reserving stock. A user who used the takes up on another edge costs
//     that edge one refused take, whose units are given back, and then reads
//     too; so an unused take is reused once the count is used up, and a
//     user never draws more than takeCount times. This spares the store a
//     read per draw, which was a fifth of MariaDB's CPU per all-win draw.
//     While the orders store is down, a draw reserves its units and gives
//     them back when the write fails (the read used to fail first): the
//     answer is the same 503, at the cost of a stock round trip.
//   - The outbox confirms in bulk: the relay writes a failed publish's
//     mq_state 2 at once, but an acknowledgement's 1 waits up to
//     RelayConfig.ConfirmEvery with the others of that time; a grant moves
//     mq_state to 1 itself (Granter), so the confirmation usually finds
//     nothing left to write, and a delivered order costs one row update,
//     not two. The compensation scan confirms what it re-sends at once.
//   - A relay worker waits up to RelayConfig.Linger (the server sets 2ms)
//     to fill its batch: the draws have answered already, and sarama's
//     producer moves a message through four goroutines, each woken once per
//     batch rather than once per message, and the broker writes one record
//     batch instead of one per invoice.
//   - The draw of a new take runs the drawer first and reserves the
//     activity unit and the drawn award's unit together (StockBatch; the
//     Redis adapter sends both in one pipeline, one round trip instead of
//     two; a port without it gets a loop over Reserve). The outcome is the
//     one the sequential order gives: the activity refused is sold out (a
//     reserved award unit is given back at once), an award refused is a
//     miss in single mode with the activity unit kept, and in total mode the
//     draw renormalises over the awards left and reserves the next award
//     alone; no award drawn reserves the activity unit alone.
//   - A draw is reproducible: the random seed is chosen by the caller (the
//     Service uses math/rand/v2), passed to the Drawer and stored on the order.
//     The native alias-table drawer is exact to one part per million and O(1).
//   - Errors: a few documented sentinels (ErrSoldOut, ErrLimitReached, ...).
//     Adapters translate driver errors into them; the server maps them to HTTP
//     statuses in one place.
package lottery
