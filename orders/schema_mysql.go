package orders

// The MySQL (MariaDB) schema: the SQLite schema's tables, columns and
// indexes, in InnoDB with utf8mb4. The choices that differ:
//   - Ids and times are BIGINT (times unix milliseconds in UTC, 0 for a zero
//     time.Time, as in SQLite, so rows read back equal on both backends).
//   - Identifiers (user_id, award_id, the take uuid, meta_key) are
//     VARBINARY: compared byte for byte, as SQLite and Go compare them. A
//     utf8mb4 collation would make "Bob" and "bob", or "bob" and "bob ",
//     one user's count row. Text meant for people (names, descriptions,
//     contents, module names) is VARCHAR utf8mb4 with a binary collation.
//   - Sizes follow the domain's limits (user ids up to 64 bytes, award ids
//     64, names 128, contents 1024) with room to spare; a longer value is
//     refused by the server in strict mode and answered as ErrInvalid.
//   - Index names are per table in MySQL, so they are short (idx_mq).
//   - No column has a default the code relies on: every insert names its
//     values.

const mysqlTableOptions = ` ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`

// mysqlMetaSchema is the meta table (see metaSchema).
const mysqlMetaSchema = `CREATE TABLE IF NOT EXISTS meta (
		meta_key   VARBINARY(64) NOT NULL,
		meta_value VARCHAR(255)  NOT NULL,
		PRIMARY KEY (meta_key)
	)` + mysqlTableOptions

// mysqlBaseSchema creates the catalog tables (see baseSchema).
var mysqlBaseSchema = []string{
	`CREATE TABLE IF NOT EXISTS activity (
		activity_id         BIGINT        NOT NULL,
		activity_name       VARCHAR(255)  NOT NULL,
		activity_desc       VARCHAR(2048) NOT NULL DEFAULT '',
		begin_date_time     BIGINT        NOT NULL,
		end_date_time       BIGINT        NOT NULL,
		stock_count         BIGINT        NOT NULL,
		stock_surplus_count BIGINT        NOT NULL,
		take_count          INT           NOT NULL,
		strategy_id         BIGINT        NOT NULL,
		state               TINYINT       NOT NULL,
		create_time         BIGINT        NOT NULL,
		update_time         BIGINT        NOT NULL,
		PRIMARY KEY (activity_id),
		KEY idx_state (state)
	)` + mysqlTableOptions,
	`CREATE TABLE IF NOT EXISTS strategy (
		strategy_id   BIGINT       NOT NULL,
		strategy_desc TEXT         NOT NULL,
		strategy_mode TINYINT      NOT NULL,
		grant_type    TINYINT      NOT NULL,
		grant_date    BIGINT       NOT NULL DEFAULT 0,
		draw_module   VARCHAR(255) NOT NULL DEFAULT '',
		create_time   BIGINT       NOT NULL,
		update_time   BIGINT       NOT NULL,
		PRIMARY KEY (strategy_id)
	)` + mysqlTableOptions,
	`CREATE TABLE IF NOT EXISTS strategy_detail (
		strategy_id         BIGINT        NOT NULL,
		award_id            VARBINARY(64) NOT NULL,
		award_index         INT           NOT NULL,
		award_count         BIGINT        NOT NULL,
		award_surplus_count BIGINT        NOT NULL,
		award_rate          BIGINT        NOT NULL COMMENT 'parts per million (lottery.RateScale)',
		create_time         BIGINT        NOT NULL,
		update_time         BIGINT        NOT NULL,
		PRIMARY KEY (strategy_id, award_id)
	)` + mysqlTableOptions,
	`CREATE TABLE IF NOT EXISTS award (
		strategy_id   BIGINT        NOT NULL,
		award_id      VARBINARY(64) NOT NULL,
		award_type    TINYINT       NOT NULL,
		award_name    VARCHAR(255)  NOT NULL,
		award_content VARCHAR(2048) NOT NULL DEFAULT '',
		create_time   BIGINT        NOT NULL,
		update_time   BIGINT        NOT NULL,
		PRIMARY KEY (strategy_id, award_id)
	)` + mysqlTableOptions,
	// The module store (Modules): rule and draw modules shared by every
	// edge of a cluster. wasm_generation has one row (id 1), the cluster's
	// module generation: every change increments it first, in its
	// transaction, so changes are serialised on that row's lock and an edge
	// polls one primary-key read. wasm_module is a module's kind and active
	// version; wasm_module_version its kept versions (position 0 is the
	// newest upload); wasm_module_blob the bytes by sha256, shared by every
	// version that uploaded them.
	`CREATE TABLE IF NOT EXISTS wasm_generation (
		id         TINYINT NOT NULL,
		generation BIGINT  NOT NULL,
		PRIMARY KEY (id)
	)` + mysqlTableOptions,
	`CREATE TABLE IF NOT EXISTS wasm_module (
		module_name   VARBINARY(255) NOT NULL,
		kind          VARCHAR(16)    NOT NULL COMMENT 'draw or rule',
		active_sha256 VARBINARY(64)  NOT NULL COMMENT 'hex; empty for none',
		generation    BIGINT         NOT NULL COMMENT 'wasm_generation of the last change',
		update_time   BIGINT         NOT NULL,
		PRIMARY KEY (module_name)
	)` + mysqlTableOptions,
	`CREATE TABLE IF NOT EXISTS wasm_module_version (
		module_name VARBINARY(255) NOT NULL,
		sha256      VARBINARY(64)  NOT NULL COMMENT 'hex',
		position    INT            NOT NULL COMMENT '0 is the newest upload',
		size        INT            NOT NULL,
		uploaded    BIGINT         NOT NULL,
		PRIMARY KEY (module_name, sha256),
		KEY idx_sha (sha256)
	)` + mysqlTableOptions,
	`CREATE TABLE IF NOT EXISTS wasm_module_blob (
		sha256      VARBINARY(64) NOT NULL COMMENT 'hex',
		bytes       LONGBLOB      NOT NULL,
		create_time BIGINT        NOT NULL,
		PRIMARY KEY (sha256)
	)` + mysqlTableOptions,
}

// mysqlShardSchema creates the tables of a shard database with tbCount
// order tables, with the indexes of shardSchema (InnoDB appends the primary
// key to every secondary index, so (activity_id, user_id, state) finds a
// user's lowest unused take_id by a seek, and (mq_state, order_time) walks
// pending orders in (order_time, order_id) order with no sort).
func mysqlShardSchema(tbCount int) []string {
	out := []string{
		`CREATE TABLE IF NOT EXISTS ` + TableTake + ` (
			take_id     BIGINT         NOT NULL,
			user_id     VARBINARY(128) NOT NULL,
			activity_id BIGINT         NOT NULL,
			strategy_id BIGINT         NOT NULL,
			take_count  INT            NOT NULL,
			state       TINYINT        NOT NULL DEFAULT 0 COMMENT '0 unused, 1 used',
			award_id    VARBINARY(64)  NOT NULL DEFAULT '' COMMENT 'empty while unused and for a lost draw',
			uuid        VARBINARY(192) NOT NULL COMMENT 'user_id _ activity_id _ take_count',
			take_date   BIGINT         NOT NULL,
			PRIMARY KEY (take_id),
			UNIQUE KEY uk_uuid (uuid),
			KEY idx_user (activity_id, user_id, state)
		)` + mysqlTableOptions,
		`CREATE TABLE IF NOT EXISTS ` + TableTakeCount + ` (
			user_id     VARBINARY(128) NOT NULL,
			activity_id BIGINT         NOT NULL,
			total_count INT            NOT NULL,
			left_count  INT            NOT NULL,
			PRIMARY KEY (user_id, activity_id)
		)` + mysqlTableOptions,
	}
	for tb := range tbCount {
		export := ShardTable(TableExport, tb)
		out = append(out, `CREATE TABLE IF NOT EXISTS `+export+` (
			order_id      BIGINT         NOT NULL,
			user_id       VARBINARY(128) NOT NULL,
			activity_id   BIGINT         NOT NULL,
			strategy_id   BIGINT         NOT NULL,
			strategy_mode TINYINT        NOT NULL,
			grant_type    TINYINT        NOT NULL,
			grant_date    BIGINT         NOT NULL DEFAULT 0,
			grant_state   TINYINT        NOT NULL DEFAULT 0 COMMENT '0 pending, 1 delivered',
			award_id      VARBINARY(64)  NOT NULL,
			award_type    TINYINT        NOT NULL,
			award_name    VARCHAR(255)   NOT NULL,
			award_content VARCHAR(2048)  NOT NULL DEFAULT '',
			uuid          BIGINT         NOT NULL COMMENT 'the take id',
			mq_state      TINYINT        NOT NULL DEFAULT 0 COMMENT '0 init, 1 sent, 2 failed',
			module        VARCHAR(255)   NOT NULL DEFAULT '',
			seed          BIGINT         NOT NULL DEFAULT 0 COMMENT 'the uint64 seed''s bit pattern as int64',
			order_time    BIGINT         NOT NULL,
			update_time   BIGINT         NOT NULL,
			PRIMARY KEY (order_id),
			UNIQUE KEY uk_uuid (uuid),
			KEY idx_mq (mq_state, order_time),
			KEY idx_user (user_id, order_time),
			KEY idx_award (activity_id, award_id)
		)`+mysqlTableOptions)
	}
	return out
}
