// Package analytics streams one event per draw attempt to an analytics store
// and answers the named analytics queries over it.
//
// A Sink implements lottery.Events: it buffers events and a flusher goroutine
// delivers them in batches to a Store. Embedded is the in-process Store and
// Querier used by default; the ClickHouse store for production implements
// the same two interfaces.
//
// Design decisions:
//
//   - Never block a draw. Record takes a mutex for a few nanoseconds to append
//     to a slice and returns; it never waits for the store, for the flusher or
//     for memory. Analytics is worth less than a draw's latency.
//   - Bounded, with a documented drop policy. At most SinkConfig.Capacity
//     events are held: those buffered plus those taken by the flusher and not
//     yet stored (a batch being retried stays counted). When Capacity is
//     reached, the newest event (the one being recorded) is dropped and
//     counted in SinkStats.Dropped; what is already held is kept, so a store
//     outage loses the tail of the outage, not its start, and a recovered
//     store receives events in order. Events still held when the final flush
//     times out at shutdown are counted as dropped too, so that at rest
//     Recorded = Flushed + Dropped + Buffered.
//   - Mutex and double buffer, not a channel. Measured on 2 cores, one
//     goroutine producing and flushing batches of 4096 (so the scheduler
//     does not blur the result): a buffered channel costs about 40 ns per
//     event, because the consumer must receive events one at a time; a
//     mutex-guarded slice that the flusher swaps for an empty one costs about
//     11 ns per event, the swap being O(1) per batch. Neither allocates: the
//     two slices grow to their working size once and are reused, and are
//     cleared after a flush so they do not pin the events' strings. Under
//     b.RunParallel Record costs about 16 ns, and about 12 ns when it drops.
//   - One flusher goroutine, owned by the caller: Run is its body, and
//     cancelling Run's context stops it after a final flush bounded by
//     FlushTimeout. A failed insert keeps its batch and is retried with
//     exponential backoff and jitter (RetryMin to RetryMax) while Record keeps
//     buffering up to Capacity. Every Insert call carries a FlushTimeout
//     deadline, so a hung store cannot hold the flusher forever.
//   - The embedded store keeps aggregates, not events. Per activity it keeps
//     one row per second that saw events and one column per outcome, won
//     award and latency histogram bucket (log-linear, 12.5% resolution); a
//     summary adds up a range of rows: about 0.1 ms over a million events
//     spread over an hour, whatever the number of events. Per-user history is not kept: that is ClickHouse's job.
//   - Bounded memory in the embedded store. An activity keeps at most 65536
//     rows; beyond that its bucket width doubles (adjacent rows merge), so a
//     long activity costs at most rows x (8 + 8 x columns) bytes, about 13 MiB
//     for 25 columns, while totals stay exact and only the resolution of
//     from/to coarsens. Distinct outcome and award names are capped at 1024
//     per activity; more are counted under "_other".
//   - Optional persistence as a log of aggregates. OpenEmbedded(dir) appends
//     each batch's aggregate (a few hundred bytes for thousands of events in
//     a second) as a checksummed binary record and syncs it before Insert
//     returns; on open it replays the log, cuts off a torn last record, and
//     rewrites the log as a snapshot of the counts, as it also does when the
//     log has doubled, so disk use follows memory use (see embedded_log.go
//     for the format).
//   - Whole seconds. Windows are counted by the second an event happened in,
//     the resolution of ClickHouse's DateTime (its server 18.16 has no
//     DateTime64), so both stores answer the same.
package analytics
