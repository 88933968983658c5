package orders

// The SQLite schema. Column names follow the seed; times are INTEGER unix
// milliseconds in UTC (0 for a zero time.Time); ids are INTEGER (snowflake
// ids are positive int64, so take_id and order_id are SQLite rowid aliases).

// metaSchema creates the meta table, in the base database and in each shard
// database: it records the table layout and the router shape the store was
// created with, and in a shard database its index, so a reopen with another
// shape or layout, or with shard databases swapped, fails instead of losing
// users' data.
const metaSchema = `CREATE TABLE IF NOT EXISTS meta (
		meta_key   TEXT PRIMARY KEY,
		meta_value TEXT NOT NULL
	)`

// baseSchema creates the catalog tables of the base database.
//
// Awards are scoped by strategy: award is keyed by (strategy_id, award_id)
// because the domain defines each award inside its strategy (a
// lottery.StrategyDetail embeds lottery.Award), so two strategies may both
// use "A1" for different prizes. strategy_detail.award_index keeps the order
// of Strategy.Details, which a draw result indexes into.
var baseSchema = []string{
	`CREATE TABLE IF NOT EXISTS activity (
		activity_id         INTEGER PRIMARY KEY,
		activity_name       TEXT    NOT NULL,
		activity_desc       TEXT    NOT NULL DEFAULT '',
		begin_date_time     INTEGER NOT NULL,
		end_date_time       INTEGER NOT NULL,
		stock_count         INTEGER NOT NULL,
		stock_surplus_count INTEGER NOT NULL,
		take_count          INTEGER NOT NULL,
		strategy_id         INTEGER NOT NULL,
		state               INTEGER NOT NULL,
		create_time         INTEGER NOT NULL,
		update_time         INTEGER NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS activity_state ON activity (state)`,
	`CREATE TABLE IF NOT EXISTS strategy (
		strategy_id   INTEGER PRIMARY KEY,
		strategy_desc TEXT    NOT NULL DEFAULT '',
		strategy_mode INTEGER NOT NULL,
		grant_type    INTEGER NOT NULL,
		grant_date    INTEGER NOT NULL DEFAULT 0,
		draw_module   TEXT    NOT NULL DEFAULT '',
		create_time   INTEGER NOT NULL,
		update_time   INTEGER NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS strategy_detail (
		strategy_id         INTEGER NOT NULL,
		award_id            TEXT    NOT NULL,
		award_index         INTEGER NOT NULL,
		award_count         INTEGER NOT NULL,
		award_surplus_count INTEGER NOT NULL,
		award_rate          INTEGER NOT NULL, -- parts per million (lottery.RateScale)
		create_time         INTEGER NOT NULL,
		update_time         INTEGER NOT NULL,
		PRIMARY KEY (strategy_id, award_id)
	)`,
	`CREATE TABLE IF NOT EXISTS award (
		strategy_id   INTEGER NOT NULL,
		award_id      TEXT    NOT NULL,
		award_type    INTEGER NOT NULL,
		award_name    TEXT    NOT NULL,
		award_content TEXT    NOT NULL DEFAULT '',
		create_time   INTEGER NOT NULL,
		update_time   INTEGER NOT NULL,
		PRIMARY KEY (strategy_id, award_id)
	)`,
}

// shardSchema creates the tables of a shard database with tbCount order
// tables: the seed splits only the orders over tables (its take and count
// DAOs route by database alone), so a database has one take table and one
// count table.
//
// Indexes are few on purpose, since every one costs each insert:
//   - take (activity_id, user_id, state) serves UserState (the lowest unused
//     take_id is a seek, the rowid being the index's last column) and, by its
//     prefix, the per-activity counts of Usage and Audit.
//   - count: its primary key (user_id, activity_id) only.
//   - export (mq_state, order_time) for the compensation scan,
//     (user_id, order_time) for UserOrders, (activity_id, award_id) for Usage
//     and Audit; uuid UNIQUE is the take id, so a take becomes one order at most.
func shardSchema(tbCount int) []string {
	take, count := TableTake, TableTakeCount
	out := []string{
		`CREATE TABLE IF NOT EXISTS ` + take + ` (
			take_id     INTEGER PRIMARY KEY,
			user_id     TEXT    NOT NULL,
			activity_id INTEGER NOT NULL,
			strategy_id INTEGER NOT NULL,
			take_count  INTEGER NOT NULL,
			state       INTEGER NOT NULL DEFAULT 0, -- 0 unused, 1 used
			award_id    TEXT    NOT NULL DEFAULT '', -- empty while unused and for a lost draw
			uuid        TEXT    NOT NULL UNIQUE, -- user_id _ activity_id _ take_count
			take_date   INTEGER NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS ` + take + `_user ON ` + take + ` (activity_id, user_id, state)`,
		`CREATE TABLE IF NOT EXISTS ` + count + ` (
			user_id     TEXT    NOT NULL,
			activity_id INTEGER NOT NULL,
			total_count INTEGER NOT NULL,
			left_count  INTEGER NOT NULL,
			PRIMARY KEY (user_id, activity_id)
		) WITHOUT ROWID`,
	}
	for tb := range tbCount {
		export := ShardTable(TableExport, tb)
		out = append(out,
			`CREATE TABLE IF NOT EXISTS `+export+` (
			order_id      INTEGER PRIMARY KEY,
			user_id       TEXT    NOT NULL,
			activity_id   INTEGER NOT NULL,
			strategy_id   INTEGER NOT NULL,
			strategy_mode INTEGER NOT NULL,
			grant_type    INTEGER NOT NULL,
			grant_date    INTEGER NOT NULL DEFAULT 0,
			grant_state   INTEGER NOT NULL DEFAULT 0, -- 0 pending, 1 delivered
			award_id      TEXT    NOT NULL,
			award_type    INTEGER NOT NULL,
			award_name    TEXT    NOT NULL,
			award_content TEXT    NOT NULL DEFAULT '',
			uuid          INTEGER NOT NULL UNIQUE, -- the take id
			mq_state      INTEGER NOT NULL DEFAULT 0, -- 0 init, 1 sent, 2 failed
			module        TEXT    NOT NULL DEFAULT '',
			seed          INTEGER NOT NULL DEFAULT 0, -- the uint64 seed's bit pattern as int64
			order_time    INTEGER NOT NULL,
			update_time   INTEGER NOT NULL
		)`,
			`CREATE INDEX IF NOT EXISTS `+export+`_mq ON `+export+` (mq_state, order_time)`,
			`CREATE INDEX IF NOT EXISTS `+export+`_user ON `+export+` (user_id, order_time)`,
			`CREATE INDEX IF NOT EXISTS `+export+`_award ON `+export+` (activity_id, award_id)`,
		)
	}
	return out
}
