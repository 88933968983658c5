// Package invoice delivers prizes asynchronously and exactly once in effect.
// After a draw's order is committed, a Producer publishes its invoice to the
// topic lottery_invoice; a Consumer in the group lottery_invoice_distributor
// hands each invoice to a Distributor, which runs the award type's delivery
// and moves the order's grant_state 0 -> 1 through a lottery.Granter. With
// no Kafka configured, StartBroker runs an embedded Kafka-protocol broker in
// the process, so the same code path runs in the default mode.
//
// Design decisions:
//
//   - One driver: sarama speaks to the broker, whether it is a real Kafka
//     cluster or the embedded one. The embedded Broker is kfake (from
//     franz-go), a Kafka-protocol broker in Go that sarama drives like a
//     real cluster; it is a product default, not a mock.
//   - The embedded broker persists when BrokerConfig.DataDir is set: kfake
//     writes the log segments, committed group offsets and idempotent
//     producer ids there and reloads them on start, so a restart keeps
//     unconsumed invoices and the group resumes where it committed. Without
//     a data dir everything lives in memory. A data dir is locked (flock on
//     unix) so two brokers cannot share it. Restart on the same Addr:
//     clients remember the advertised address.
//   - The embedded broker keeps a message for BrokerConfig.Retention (7
//     days, Kafka's default): kfake knows log.retention.ms but enforces it
//     only when asked, so a goroutine owned by the Broker calls
//     ApplyRetention every quarter of the retention (at most every 5
//     minutes). Without it the log on disk and kfake's in-memory index of
//     its batches grew with every invoice for as long as the broker ran.
//   - Producer: an idempotent sarama AsyncProducer (acks from all in-sync
//     replicas, one request in flight per connection, as sarama requires
//     for idempotence), keyed by user id so one user's invoices stay in
//     order on one partition, values are the JSON of lottery.Invoice
//     (encoded with segmentio/encoding's json; decoded with it too, at a
//     fifth of encoding/json's cost, decoding having been 7% of an all-win
//     edge's CPU, but encoding/json stays the reference: it reads what the
//     faster decoder refuses and any message with a 20-digit run, which
//     segmentio may wrap instead of refusing; a fuzz target holds the two
//     to the same answers). Each
//     message carries a buffered reply channel in ProducerMessage.Metadata;
//     one goroutine owned by the Producer reads Successes and Errors and
//     answers on it, so no map of waiters and no lock is needed, and a late
//     answer after Publish gave up is simply dropped. Publish is bounded by
//     ProducerConfig.Timeout: a stopped or silent broker yields errors
//     wrapping lottery.ErrUnavailable, never a hang. The order's outbox
//     state (mq_state) and the compensation scan re-send what failed; an
//     invoice that timed out may still arrive, and the distributor absorbs
//     the repeat.
//   - Consumer: a sarama consumer group with auto-commit off. A fetch is
//     answered once FetchMin bytes are ready (128 KiB, about 400
//     invoices) or after FetchWait (100ms), so under load invoices arrive
//     in hundreds and an idle one waits at most 100ms. The messages
//     of a claim that are already waiting (up to 256) are decoded on the
//     claim's goroutine and delivered together: a BatchHandler (the
//     Distributor, whose store grants them in one write per shard database,
//     lottery.GrantBatch) gets them in one call, a plain Handler
//     concurrently, so the store's group commit still grants them together;
//     a transient failure retries the failed ones together; they
//     are marked in offset order, stopping at the first one not delivered,
//     so a mark never passes an undelivered message. An offset is
//     marked only after the handler succeeded and committed when the claim
//     runs idle, every 100 messages, and when the session ends (sarama does
//     not flush marks on its own with auto-commit off). A transient handler
//     error is retried with a doubling backoff for as long as the session
//     lasts; the message is never skipped, so its partition waits. A
//     malformed message, or a handler error wrapping lottery.ErrInvalid or
//     lottery.ErrNotFound, can never succeed: it is logged and skipped so it
//     cannot block its partition forever. New groups start at the oldest
//     offset so nothing published before the first join is lost. Run loops
//     over Consume because sarama ends a session at every rebalance.
//   - Delivery is at least once; the Distributor makes it exactly once in
//     effect. Every per-type step is a pure function of the invoice (redeem
//     and coupon codes are HMAC-SHA256 of the order id under a secret), the
//     optional Sink must be idempotent, and Granter.Grant is a
//     compare-and-set, so a repeat delivery changes nothing and counts as a
//     duplicate, not an error.
//   - Counters (Consumer.Stats, Distributor.Stats) are atomics read by the
//     metrics exporter; the package keeps no global state and never touches
//     sarama's package-level Logger.
//
// Goroutines: the Producer owns its dispatch goroutine (stopped by Close,
// after sarama has flushed what was in flight). Consumer.Run runs on the
// caller's goroutine; sarama runs one goroutine per claimed partition and
// joins them before Consume returns. A plain Handler (not a BatchHandler)
// gets one goroutine per invoice of a batch, which the claim waits for
// before marking. The Broker's goroutines are kfake's and end with Close.
package invoice
