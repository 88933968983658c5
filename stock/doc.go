// Package stock holds the sliding-stock adapters that implement lottery.Stock
// and lottery.StockAdmin: Memory, the embedded default, and (later, in
// redis.go) the Redis adapter for a cluster of edges.
//
// Sliding stock is the seed's scheme: a counter per stock key holds a total
// and a used count; a reservation moves used up by one and is refused once
// used reaches total, so stock is never oversold. The used count after a
// reservation is its slot (1..total); the Redis adapter locks slots rather
// than the whole activity, so contention is per unit of stock, not per
// activity. A release moves used back down, so a draw that fails after it
// reserved gives the unit to the next user.
//
// Design decisions:
//
//   - One counter per lottery.StockKey. An activity's stock and the stock of
//     each of its awards are separate keys and never interfere.
//   - Memory reserves with a lock-free compare-and-swap loop on the used
//     count instead of a mutex. A flash sale is a million draws on a handful
//     of keys: a mutex parks goroutines and serialises them on the scheduler,
//     while a CAS retry costs nanoseconds and only the goroutines that raced
//     retry. The loop checks used < total before it writes, so the sold-out
//     path only reads and never dirties the counter's cache line (an
//     increment-then-decrement scheme would write twice on every refusal).
//   - Lookups go through a sync.Map: keys are provisioned once and read by
//     every draw, which is the access pattern sync.Map is built for. The hot
//     path takes no lock and allocates nothing, not even for its errors: the
//     sold-out error of a counter is built once, when it is provisioned.
//   - Each counter keeps a local sold-out flag, set when a reservation is
//     refused and cleared by a release. SoldOut reads it with one atomic load
//     and no I/O, so the edge can answer a sold-out activity before any round
//     trip; for Redis this is what makes a sold-out activity free. Setting the
//     flag is followed by a re-check of the counter, so a release that races
//     with a refusal can never leave the flag stuck on while a unit is free.
//   - Provision replaces a counter's state as a whole (total, used and flag in
//     one immutable-total generation swapped atomically). A reservation that
//     raced with the swap notices it and redoes itself on the new generation,
//     so a provision never lets a reservation slip past the new total.
//     Provision is a reset to the durable count (startup, reconciliation); a
//     release that races with it lands on the old generation and is dropped,
//     which is the reset the caller asked for.
//   - Settle is a no-op for Memory: there are no slot locks to drop. The
//     Redis adapter uses it to drop the slot lock early.
//
// Package stocktest holds the contract suite every adapter runs.
package stock
