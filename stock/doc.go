// Package stock holds the sliding-stock adapters that implement lottery.Stock
// and lottery.StockAdmin (with lottery.StockBatch and lottery.StockTrimmer):
// Memory, the embedded default, and Redis, for a cluster of edges that share
// one Redis primary.
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
// Redis (redis.go) decisions:
//
//   - A counter is a hash with fields t (total) and u (used); a key without
//     t does not exist. Keys are "{prefix}{activity[:award]}" with the id in
//     a hash tag (awards escaped, so no award spells another key), shard i
//     "{prefix}{id#i}", the meta hash "{prefix}{id}:meta" and the seed's slot
//     locks "{prefix}{id}_{slot}".
//   - Two modes. ModeLua (default) reserves with one script that checks and
//     increments in one round trip, so a cluster sells exactly the total.
//     ModeLock is the seed's scheme without scripts on its normal path:
//     HINCRBY the used count (with HGET of the total in the same pipeline),
//     above the total step back, then SET NX PX the slot lock; Settle drops
//     the lock after the take commits, Release drops it with the unit. Two of
//     the seed's losses are fixed, so the contract's exact-total hammer holds
//     for ModeLock too: a reservation that stepped back while another
//     released retries instead of answering sold out with a unit free, and a
//     reservation whose slot is still locked (a release below slots in flight
//     moved the count back under it) claims a free slot with a small script
//     instead of failing and leaking the unit. The lock then guards what the
//     count cannot see: a slot locked by a holder the count forgot (a Reset
//     under load) is refused until its lock expires (LockTTL).
//   - Batching. Reserve (and Settle in ModeLock) hand a call to one goroutine
//     that NewRedis starts and Close stops. It takes what is waiting, up to
//     Batch calls, sends the next step of each in one pipeline of EVALSHAs
//     and hands every caller its own answer; calls that need another step
//     (a fall-through to the next shard, the lock mode's second command) ride
//     in the next pipeline. Batches form by themselves: while one pipeline is
//     on the wire the next calls queue up, and the goroutine yields once
//     before gathering so the callers the last answers woke can queue too. One pipeline at a time carries a
//     busy edge's reservations in a few percent of a round trip each. The
//     queue holds 4 x Batch calls and drops nothing: a caller waits for room
//     until its context ends. A caller that stops waiting abandons its call;
//     a unit reserved for it is given back in a later pipeline.
//   - ReserveEach (lottery.StockBatch) hands the batcher several
//     reservations as one group, which it always takes into the same
//     pipeline: the draw process reserves an activity unit and an award's
//     in one round trip. Each is still its own reservation, answered as
//     Reserve would. Memory implements it as a loop.
//   - Scripts go by digest (EVALSHA); on NOSCRIPT (Redis restarted and lost
//     its script cache) the call is sent again with the source (EVAL), which
//     loads it for the EVALSHAs that follow.
//   - Failing fast. Dial, read and write timeouts default to 50ms, one dial
//     attempt, no command retries (a retried script or release would count
//     twice), a pool wait bounded like a read. After a pipeline fails for
//     want of Redis, the batcher fails the next calls at once for one read
//     timeout before it probes again, so callers do not queue behind
//     timeouts: a draw learns that Redis is down within about 50ms, and
//     within 100ms at worst. Connection failures, timeouts, an exhausted
//     pool and Redis answering LOADING, BUSY, READONLY... wrap
//     lottery.ErrUnavailable. A reservation whose answer was lost (a timeout
//     after Redis ran it) stays counted: stock can be undersold, never
//     oversold; the reconciliation's Trim (below), or Reset after the sale,
//     takes such units back.
//   - Provision is safe for a cluster whose edges each provision at start.
//     Redis is the authority for used while it holds the key: its count
//     includes reservations in flight that the database does not know yet,
//     so Provision never lowers it. It raises it to the durable count when
//     Redis holds less (lost writes) and creates the key from the durable
//     count when Redis lost it: then the database is the authority. An edge
//     that read the database earlier and provisions later changes nothing.
//     The exception is a redefinition, a new total with a durable count
//     below the highest one provisioned (kept in the meta hash): the
//     database was reset, and its count wins, as the contract's
//     ProvisionReplaces expects. Reset replaces the count unconditionally,
//     for a quiet key. Provision refuses a key provisioned with another
//     shard count (ErrConflict): such edges would count separate stocks.
//   - The sold-out flag is local, as in Memory, and costs no I/O; with
//     several edges it can be stale, so it expires after SoldOutTTL (200ms)
//     and the next Reserve asks Redis again. A Release or Provision through
//     the adapter clears it at once; an epoch moved by every release keeps a
//     refusal that raced with a release from setting it. Reserve itself
//     always asks Redis, so its answer is exact; callers check SoldOut first
//     to spare the round trip.
//   - Shards split a hot counter over N keys. The Stock port passes no user,
//     so there is nothing to hash: a reservation starts at the next shard
//     round robin (skipping shards believed empty for SoldOutTTL), which
//     drains the shards evenly, and falls through to the others, one round
//     trip each, when its shard is empty; sold out means every shard said
//     so. Per-shard counts are not the aggregate used count, so sharded
//     reservations carry Slot 0. Provision sets each shard's total to its
//     used count plus an even share of what is left (used above the total
//     sits on the first shards as excess), and Release gives the unit to the
//     fullest shard, so the sum over shards of what is left is always the
//     total minus used. Reserve touches one shard key; Provision, Release and
//     Left run one script over all of a counter's shard keys, which needs
//     them on one primary, as this adapter has. On one primary shards spread
//     no load, since Redis runs scripts one at a time (the benchmark shows
//     them within noise of one shard); they are the layout for the seed's
//     scale-out, where each shard's hash tag can land on its own primary.
//   - Left and Used cost one round trip each (one script over the shards).
//     The reconciliation reads Left (lottery.StockAdmin) and compares total
//     minus left with the durable record; Used reads the raw used count.
//   - Trim (lottery.StockTrimmer) lowers a counter's used count to the
//     durable one only if it is still what the caller read: a
//     compare-and-set (one script over the shards for Redis, a CAS on the
//     used count for Memory), so edges reconciling at once give units that
//     crashed edges reserved back once.
//   - go-redis is imported here and nowhere else.
//
// Package stocktest holds the contract suite every adapter runs.
package stock
