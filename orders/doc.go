// Package orders stores takes, orders and their outbox state, sharded by user
// id, and the activity catalog. It implements the lottery ports Orders,
// Outbox, Granter (with GrantBatch), CatalogAdmin (with Catalog), Ledger and
// SurplusWriter, twice: SQLite is the embedded default (OpenSQLite), MySQL
// or MariaDB the production store (OpenMySQL). Both share the Router, the
// table names, one SQL core and the contract suite in orders/orderstest.
//
// Design decisions:
//
//   - The seed's tables, with the seed's names. The base database holds the
//     catalog: activity, strategy, strategy_detail (award_rate as integer
//     parts per million) and award. Awards are keyed by (strategy_id,
//     award_id), not by award_id alone, because the domain defines each award
//     inside its strategy; strategy_detail.award_index keeps the order of
//     Strategy.Details, which draw results index into. Each shard database
//     holds, as the seed's, one user_take_activity (the takes, uuid UNIQUE =
//     user_activity_n), one user_take_activity_count (left_count per user
//     and activity) and TBCount order tables user_strategy_export_NNN (the
//     orders with mq_state and grant_state, uuid UNIQUE = the take id, so one
//     take never becomes two orders). The seed splits only the orders over
//     tables (its take and count DAOs route by database alone); splitting
//     the takes and counts too, as an earlier version of this package did,
//     gave a group commit of the 2 x 4 layout up to four INSERTs for each of
//     them instead of one (1.46 statements per all-win draw on MariaDB
//     against 0.99), and MariaDB's cost is mostly per statement: the seed's
//     layout takes 17% more all-win draws a second on one server. Meta
//     records the layout with the router's shape, and a store written by
//     the earlier one is refused rather than read as empty.
//   - Sharding by user over DBCount x TBCount (the seed's 2 x 4). The hash
//     (Router.Route) is backend-neutral and part of the on-disk format:
//     h = FNV-1a 32-bit over the bytes of the user id, h ^= h >> 16 (so the
//     high bits reach the low ones), idx = h mod (DBCount * TBCount), then
//     database idx / TBCount and table idx % TBCount. Changing the hash or
//     the counts moves users away from their data, so there is no resharding
//     in place. All of a user's rows live in one database (its orders in
//     one table slot there), so a take (count decrement and insert) and a
//     draw (take update and order insert) are each one local transaction: no
//     distributed transaction, and a crash leaves each user consistent.
//     Cross-user reads (Pending, Usage, Audit) visit every shard.
//   - A meta table in the base database and in each shard database records
//     the table layout and the router's shape ("2x4/orders-split": a binary
//     of the earlier layout, which recorded "2x4", refuses it too), and each
//     shard database its index; a reopen with another shape or layout, or
//     with shard databases swapped or repeated, is refused (ErrInvalid)
//     before any table is created, instead of routing users away from their
//     data.
//   - One SQL core (store), two dialects. The ports' methods are written once
//     and both adapters embed them; a dialect value carries what differs:
//     the schema, the count decrement, the savepoint statements, the pending
//     query's shape, the error mapping, and whether a batch may be retried.
//   - Grant moves grant_state 0 -> 1 and sets mq_state 1 in the same
//     statement: a delivered invoice was published. SetMQState leaves an
//     order already in the asked state alone (no row write), so the relay's
//     confirmation of an order granted first costs a key lookup, not an
//     update of the row and of its (mq_state, order_time) index.
//   - Group commit. A winning draw writes several rows; SQLite does about
//     17k single-row transactions a second on the target machine but far
//     more rows inside larger transactions, and on MySQL every statement is
//     a round trip and every commit a redo-log write. So writes to a shard
//     database (Take, Draw, TakeDraw, SetMQState, Grant) go to that
//     database's writer, whose goroutine owns one connection, takes every
//     request waiting (up to 128), runs them in one transaction and commits
//     once. On MySQL a writer runs two such goroutines, each on its own
//     connection and sharing the queue, so one batch is gathered and sent
//     while the server runs the other (on the 2-core target machine, 10%
//     more all-win draws per second; batches of different users touch
//     different rows, and two that meet are serialised by row locks or
//     rolled back by a deadlock and run again, as batches of two edges are).
//     SQLite has one writer per file. A batch first
//     runs without savepoints; only if a request failed on its own terms
//     (limit reached, take used, conflict, bad input) after writing does it
//     run again with a SAVEPOINT per request, rolling that request back and
//     committing the rest. A failure of the store itself fails the whole
//     batch, and every caller gets that error: nothing of the batch was
//     written. Callers never see a half-applied request.
//   - TakeDraw is Take and Draw of a new take as one request: the count
//     decrement, the take inserted already used (with its award) and the
//     order of a win, in one transaction and one group commit, so the draw
//     process waits on one batch per draw instead of two. In a multi-row
//     batch it is a take whose order joins the batch's order insert; one
//     request at a time it is the take's two statements and the order's.
//     Limits, duplicates (take or order id: ErrConflict, nothing written)
//     and the all-or-nothing answer are those of Take and Draw.
//   - Multi-row batches (MySQL). One statement per request per row would
//     leave the server parsing, optimising and answering about 70
//     statements per batch, so a batch of takes, draws, grants and outbox
//     updates (even of one request: a consumer's batch of grants is one;
//     two round trips where its statements alone took one each) runs as:
//     one locking read of every row the requests depend on
//     (the count rows, the takes drawn, the orders granted: SELECT ... FOR
//     UPDATE, the tables' SELECTs joined by UNION ALL), each request
//     decided in Go in the batch's order as its statements alone would
//     decide it (limit reached, take used, not found, a repeated grant),
//     then one statement per table and kind (insert new count rows, update
//     changed ones, insert takes, mark takes used with UPDATE ... CASE,
//     insert orders, grant, set mq_state), sent as one text of several
//     statements: with START TRANSACTION riding on the read and COMMIT on
//     the writes, two round trips per batch. Duplicate detection stays
//     exact: a request that fails inside a multi-row statement (a take or
//     order id that exists, a value a column refuses, a count row another
//     process inserted since the read, which cannot lock a missing row)
//     fails the statement, the transaction is rolled back and the batch
//     runs again one request at a time, which gives the error to exactly
//     the requests that cause it (WriteStats counts these fallbacks).
//     SQLite keeps one prepared statement per row: in process, that beats
//     parsing multi-row texts.
//   - Blind first takes (MySQL). A batch of new takes (with their draws and
//     outbox updates, no draw of an existing take, no grant) is first
//     written without its read, as if no user had a count row, which is
//     what the read finds for a user's first draw: START TRANSACTION, the
//     inserts, COMMIT, one round trip. A user who has a count row fails
//     the count insert with a duplicate key before the COMMIT; the batch is
//     rolled back, read and written as above, and the next 64 batches read
//     first (repeat users would make every blind write a wasted round
//     trip). No outcome changes: the read cannot lock a missing row either,
//     so a row inserted after it already failed the same insert. It saves
//     the read's round trip and a tenth of MariaDB's CPU per all-win draw
//     (WriteStats.Blind and BlindMisses).
//   - Batched reads (MySQL). Concurrent UserState calls of one shard
//     database are answered together: one goroutine per shard database
//     takes every call waiting and reads them all with one query (the
//     UserState query per activity, joined by UNION ALL); at low
//     load a call is read alone.
//   - Goroutines: the Open functions start one writer per shard database,
//     and OpenMySQL one UserState reader per shard database; Close stops
//     them (each finishes and answers the batch it holds; later calls get
//     an ErrUnavailable error) and waits for them before closing the
//     databases. A caller whose context ends before its request was taken
//     gets the context's error and nothing is written; once taken, the
//     caller waits for the commit, so an answer is never ambiguous (but see
//     a failed COMMIT on MySQL below).
//   - SQLite: reads go to a separate pool of query_only connections per
//     file: WAL lets them run beside the single writer connection. Files use
//     WAL, synchronous=NORMAL (a power cut may lose the last commits, never
//     corrupt; an application crash loses nothing committed) and a busy
//     timeout, so a verifier may read the files from another process.
//   - MySQL: each database has its own DSN, so shard databases may live on
//     one server or several. Migrate creates a database only when the server
//     says it does not exist (an existing one needs no CREATE privilege),
//     then the tables (InnoDB, utf8mb4, BIGINT ids and millisecond times,
//     the same indexes as SQLite). Identifiers are VARBINARY so they compare
//     byte for byte as in SQLite and Go: a case- or pad-insensitive collation
//     would merge "bob", "Bob" and "bob " into one user's count row.
//   - MySQL writes. The writer's connections run READ COMMITTED (no gap
//     locks) with a short innodb_lock_wait_timeout; reads use a pool. The
//     count decrement is one race-free statement, INSERT ... ON DUPLICATE
//     KEY UPDATE left_count = IF(left_count > 0, left_count - 1, left_count):
//     its row lock serialises concurrent takes of a user from any process.
//     MariaDB has no RETURNING on UPDATE, so the statement answers through
//     what the server reports anyway: rows affected 1 (inserted: the first
//     take), 2 (decremented) or 0 (nothing left, nothing written), and on a
//     decrement LAST_INSERT_ID(total - left + 1), which the reply carries as
//     the last insert id, is the take's number. One round trip, no SELECT
//     ... FOR UPDATE. That statement serves a batch run one request at a
//     time; a multi-row batch reads the count rows FOR UPDATE instead,
//     decides in Go and inserts or updates them. Per-request writes use
//     server-side prepared statements; other statements, and the
//     multi-row texts, are interpolated by the driver (one round trip
//     each; the writer's connection allows several statements per text,
//     whose arguments only the driver ever puts in).
//   - MySQL with several processes. Every edge has its own writer per shard
//     database, so two edges may lock the same rows in opposite orders: a
//     deadlock (1213) or a lock wait timeout (1205) rolls the batch back and
//     it runs again, up to three attempts (WriteStats.Retries counts them).
//     A COMMIT whose reply is lost is never retried: its callers get
//     ErrUnavailable with lottery.ErrOutcomeUnknown, for the batch may have
//     committed. The draw process survives that: it keeps the stock it
//     reserved (so a committed take is never sold again), an order with
//     mq_state init is sent by the compensation scan, and the stock
//     reconciliation gives back the units of a batch that did not commit.
//   - MySQL timeouts (MySQLTimeouts) bound every wait: dialing, each network
//     read and write, each batch and each lock wait, so a server that is
//     down fails a call at once and a hung one within seconds, always as
//     ErrUnavailable; the driver reconnects on the next call.
//   - Times are stored as integer unix milliseconds (0 for the zero time) and
//     read back in UTC, so they round-trip to the millisecond on every
//     backend; the uint64 draw seed is stored as its int64 bit pattern.
//   - Pending (the outbox compensation scan) reads each table as two walks
//     of its (mq_state, order_time) index, mq_state failed at any age and
//     mq_state init with order_time before staleBefore, each stopped at the
//     limit, so a large backlog costs no sort of it all.
//   - Audit reports an activity's consistency (takes, used and won takes,
//     orders per award, won takes without an order, orders without a used
//     take, count rows that disagree with the takes, orders by mq_state and
//     grant_state) from one snapshot per shard database; a crash-drill
//     verifier calls it after restarting the store, and Audit.Err names
//     every broken invariant.
//   - The catalog is small and written by operators: plain transactions on
//     the base database, no group commit, no cache (callers cache).
//     SetSurplus writes the stock port's view into stock_surplus_count and
//     award_surplus_count for the reconciliation job.
//   - Modules (MySQL only): the module store of a cluster of edges, in the
//     base database (wasm_generation, wasm_module, wasm_module_version,
//     wasm_module_blob), reached through MySQL.Modules on the base pool.
//     Every change runs in one transaction that first increments the single
//     generation row, so changes are serialised cluster-wide on its lock
//     (which also makes deleting bytes no version keeps race-free) and an
//     edge polls one primary-key read. Its records are orders' own types,
//     because orders does not import wasm (wazero); the server adapts them
//     to wasm.ModuleStore. SQLite keeps one edge, so modules stay in the
//     wasm file store there.
//   - Errors wrap the lottery sentinels with context: unique violations
//     (SQLite's UNIQUE, MySQL's 1062) become ErrConflict, values a column
//     refuses ErrInvalid, store failures (connections, timeouts, the server's
//     other errors) ErrUnavailable; context errors stay as they are.
package orders
