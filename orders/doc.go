// Package orders stores takes, orders and their outbox state, sharded by user
// id, and the activity catalog. It implements the lottery ports Orders,
// Outbox, Granter, CatalogAdmin (with Catalog) and Ledger. SQLite is the
// embedded default; a MySQL adapter shares the Router, the table names and
// the contract suite in orders/orderstest.
//
// Design decisions:
//
//   - The seed's tables, with the seed's names. The base database holds the
//     catalog: activity, strategy, strategy_detail (award_rate as integer
//     parts per million) and award. Awards are keyed by (strategy_id,
//     award_id), not by award_id alone, because the domain defines each award
//     inside its strategy; strategy_detail.award_index keeps the order of
//     Strategy.Details, which draw results index into. Each shard database
//     holds TBCount tables of each sharded kind: user_take_activity_NNN (the
//     takes, uuid UNIQUE = user_activity_n), user_take_activity_count_NNN
//     (left_count per user and activity) and user_strategy_export_NNN (the
//     orders with mq_state and grant_state, uuid UNIQUE = the take id, so one
//     take never becomes two orders).
//   - Sharding by user over DBCount x TBCount (the seed's 2 x 4), with a
//     documented, backend-neutral hash (Router.Route). All of a user's rows
//     live in one table slot of one database, so a take (count decrement and
//     insert) and a draw (take update and order insert) are each one local
//     transaction: no distributed transaction, and a crash leaves each user
//     consistent. Cross-user reads (Pending, Usage, Audit) visit every shard.
//     The router's shape is recorded in the base database and a reopen with
//     another shape is refused.
//   - Group commit. SQLite does about 17k single-row transactions a second on
//     the target machine but far more rows inside larger transactions, and a
//     winning draw writes several rows. So writes to a shard database (Take,
//     Draw, SetMQState, Grant) go to that database's writer goroutine, which
//     takes every request waiting (up to 128), runs each inside its own
//     SAVEPOINT, and commits once. A request that fails on its own terms
//     (limit reached, take used, conflict) rolls back to its savepoint and
//     gets its error; the rest commit. A failure of the store itself fails
//     the whole batch, and every caller gets that error: nothing of the batch
//     was written. Callers never see a half-applied request.
//   - Goroutines: OpenSQLite starts one writer per shard database; Close stops
//     them (each finishes and answers the batch it holds; later writes get an
//     ErrUnavailable error) and waits for them before closing the files. A
//     caller whose context ends before its request was taken gets the
//     context's error and nothing is written; once taken, the caller waits for
//     the commit, so an answer is never ambiguous.
//   - Reads go to a separate pool of query_only connections per file: WAL lets
//     them run beside the single writer connection. Files use WAL,
//     synchronous=NORMAL (a power cut may lose the last commits, never
//     corrupt; an application crash loses nothing committed) and a busy
//     timeout, so a verifier may read the files from another process.
//   - Times are stored as INTEGER unix milliseconds (0 for the zero time) and
//     read back in UTC, so they round-trip to the millisecond on every
//     backend; the uint64 draw seed is stored as its int64 bit pattern.
//   - Audit reports an activity's consistency (takes, used and won takes,
//     orders per award, won takes without an order, orders without a used
//     take, count rows that disagree with the takes, orders by mq_state and
//     grant_state); a crash-drill verifier calls it after restarting the
//     store, and Audit.Err names every broken invariant.
//   - Errors wrap the lottery sentinels with context: UNIQUE violations become
//     ErrConflict, store failures ErrUnavailable, bad input ErrInvalid.
package orders
