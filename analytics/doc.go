// Package analytics streams one event per draw attempt to an analytics store
// and answers the named analytics queries over it.
//
// A Sink implements lottery.Events: it buffers events and a flusher goroutine
// delivers them in batches to a Store. Embedded is the in-process Store and
// Querier used by default; ClickHouse, for production, implements the same
// two interfaces with the same answers, and one contract test holds both to
// them.
//
// The named queries (Querier) are Summary (draws, wins, win rate, outcomes,
// awards, p50 and p99 latency), Awards (won draws per award; CompareRates
// sets them against the configured rates, RatesOf reads those from a
// strategy), Timeline (draws and wins per step), Latency (p50, p90, p99)
// and Modules (outcomes per draw module version).
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
//     award, latency histogram bucket (log-linear, 12.5% resolution) and
//     (module version, outcome); a query adds up a range of rows: about
//     0.1 ms for a summary over a million events spread over an hour, under
//     1 ms for any named query over ten million over three hours
//     (BenchmarkEmbedded10M), whatever the number of events. Per-user
//     history is not kept: that is ClickHouse's job. A timeline step counts
//     a row by the second it starts at, so it is exact while rows are one
//     second wide (see below).
//   - Bounded memory in the embedded store. An activity keeps at most 65536
//     rows; beyond that its bucket width doubles (adjacent rows merge), so a
//     long activity costs at most rows x (8 + 8 x columns) bytes, about 13
//     MiB per 25 columns (outcomes, awards, latency buckets seen, module
//     version and outcome pairs), while totals stay exact and only the
//     resolution of from/to coarsens. Distinct names of each kind
//     (outcomes, awards, module version and outcome pairs) are capped at
//     1024 per activity, "_other" included; more are counted under
//     "_other".
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
//   - Bounded queries. Every query but Summary (kept as it was: a zero bound
//     means unbounded) needs an activity id above zero and a non-empty
//     window of at most MaxWindow (31 days) between 1970 and 2106, and a
//     timeline at most MaxPoints (10,000) steps, of whole seconds under a
//     minute (over at most MaxFineWindow, six hours) and of whole minutes
//     above; bad parameters get an error wrapping lottery.ErrInvalid before
//     any store is touched, naming the activity id's problem and the
//     window's first (a timeline's step is checked once those are valid,
//     and its first problem reported). Timelines are dense (a point per step, zeros
//     included) so both stores answer alike and a chart needs no gap
//     filling, and their steps are aligned to the epoch (UTC), not to from,
//     so a dashboard polling a sliding window sees stable steps and every
//     ClickHouse rollup row falls in one step. Awards and Modules answer at
//     most MaxGroups (1024) names, folding the rest under OtherName; which
//     names are kept differs past that bound (the embedded store keeps the
//     first seen, ClickHouse the most frequent), the totals do not.
//   - Latency precision. Both stores estimate a percentile as the midpoint
//     of the histogram bucket holding the ceil(q x n)-th smallest latency:
//     the embedded store's buckets are within 12.5%, ClickHouse's within
//     1/64 (exact below 64 us). Latencies are clamped to 0..2^32-1 us in
//     both, the range of the ClickHouse column.
//   - Module versions. An event's module ("name@sha256prefix", or
//     lottery.NativeModule's "native/alias-v1") is split by SplitModule,
//     the same way in both stores; Modules reports name and version.
//
// ClickHouse, measured against Debian's server 18.16 on 2 cores:
//
//   - Schema (see migrations in clickhouse.go). draw_events keeps every
//     event with its user, seed and node for audits: MergeTree, partitioned
//     by day, ordered by (activity_id, at), in the PARTITION BY / ORDER BY
//     syntax that 18.16 and current servers both accept; no DateTime64, no
//     LowCardinality (a setting on 18.16). Migrate applies numbered,
//     idempotent migrations and records them in schema_migrations.
//   - Queries read aggregates, not events. Over ten million events in one
//     activity, the raw table answered in 80 ms (GROUP BY outcome),
//     230-270 ms (per module version) and 180 ms (quantilesExact): too close
//     to or over the 200 ms goal, and growing with the events. Materialized
//     views keep SummingMergeTree aggregates instead: draw_counts per
//     (outcome, award, module version), and draw_latency, a histogram with
//     32 buckets per power of two computed in SQL with roundToExp2 (no
//     floating point) and mirrored by latencyLow, both per second and
//     rolled up per hour, the counts also per minute. Per second alone was
//     not enough: ten million events over a month are ten million seconds
//     of rows, and the queries took 150-500 ms. A query reads each part of
//     its window at the coarsest resolution that fits (window.source):
//     whole hours per hour, the minutes around them per minute, the
//     seconds at the edges per second; a timeline uses only the
//     resolutions its step is a multiple of, which is why steps from a
//     minute up are whole minutes and finer ones cover at most six hours.
//     BenchmarkClickHouse10M loads ten million events as a three-hour flash
//     sale, a day and a month, and every named query answers in 3-25 ms
//     over all of them, the finest timelines in 10-50 ms (the worst: a
//     six-hour window in 3 s steps of a day's load, read per second).
//   - Insert through an external table. clickhouse-go's batch insert sends
//     INSERT ... FORMAT Native, which 18.16 refuses, and Exec of INSERT ...
//     VALUES hangs; so the batch travels as a native block with the query
//     and INSERT INTO draw_events SELECT ... FROM batch stores it, one
//     statement per batch (the views fill the aggregates in the same
//     statement). Column buffers are pooled, so the Go side costs about
//     80 ns and 17 bytes per event. Each insert writes a part to each of
//     the six tables, so it costs the server about 20 ms whatever its size,
//     plus about 1 us per event: 190k events/s in batches of 4096, 770k/s
//     in batches of 65536, 320k-690k/s loading ten million in batches of
//     100,000 (less where the views aggregate less). On a busy machine the
//     fixed cost grows several times. Give the Sink in front of ClickHouse
//     a BatchSize of 65536 (and a Capacity a few times that) so a busy edge
//     makes about one insert a second, as ClickHouse prefers.
//   - Failures. OpenClickHouse pings, so a wrong address fails at start;
//     afterwards a down server fails each insert and query fast
//     (DialTimeout, a refused connection at once) with an error wrapping
//     lottery.ErrUnavailable, the Sink buffers and drops as above, and the
//     driver's pool re-dials by itself once the server is back.
//   - At most once. An insert whose answer is lost (the server stopped
//     or the connection dropped after it stored the batch) is retried by
//     the Sink; each batch carries a random id in draw_events.batch, and
//     the retry first counts the rows stored under it, so a batch is never
//     stored twice. What 18.16 cannot give is atomicity across a table and
//     its materialized views: a server killed (kill -9, a power cut) in
//     the middle of an insert can keep the batch in draw_events but not in
//     every rollup, and the queries, which read the rollups, then count
//     fewer draws than the audit table holds. A server stopped normally
//     (SIGTERM) finishes its inserts first; the outage drill stops it so.
package analytics
