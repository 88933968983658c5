package orders

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/go-sql-driver/mysql"
)

// Interface guards.
var (
	_ lottery.Orders        = (*MySQL)(nil)
	_ lottery.Outbox        = (*MySQL)(nil)
	_ lottery.Granter       = (*MySQL)(nil)
	_ lottery.GrantBatch    = (*MySQL)(nil)
	_ lottery.CatalogAdmin  = (*MySQL)(nil)
	_ lottery.Ledger        = (*MySQL)(nil)
	_ lottery.SurplusWriter = (*MySQL)(nil)
)

// MySQL is the production orders store on MySQL or MariaDB (InnoDB): the
// catalog in the base database and the users' takes, counts and orders in
// Router.DBCount shard databases, each with one take and one count table
// and Router.TBCount order tables, each database named by its own DSN (on one server or on several). It behaves
// as SQLite does, the two sharing their SQL core; writes to a shard database
// go through its group-commit writer, on a connection of its own, and reads
// use a pool. It is safe for concurrent use, and several processes may share
// the databases (see the package documentation).
type MySQL struct {
	store
	cfg MySQLConfig
	// base and shards are the parsed DSNs.
	base   *mysql.Config
	shardC []*mysql.Config
}

// MySQLConfig configures OpenMySQL. Zero values take the defaults of
// MySQLTimeouts and MaxOpenConns; Validate reports every problem at once.
type MySQLConfig struct {
	// Base is the DSN of the base database, which holds activity, strategy,
	// strategy_detail, award and meta, in go-sql-driver/mysql's format:
	// user:password@tcp(host:port)/database?params. It must name a database;
	// Migrate creates it when missing.
	Base string
	// Shards are the DSNs of the shard databases, Router.DBCount of them, in
	// shard order (Shards[i] holds the users Router.Route sends to i). Each
	// names its own database, on the base's server or another one.
	Shards []string
	// Router is the shard router; the first open records its shape and a
	// later one with another shape is refused.
	Router Router
	// MaxOpenConns bounds each read pool (the base database's and each shard
	// database's); 0 means max(4, 2*GOMAXPROCS). Each shard database's
	// writer holds one more connection.
	MaxOpenConns int
	// Timeouts bound every wait on a server.
	Timeouts MySQLTimeouts
}

// MySQLTimeouts bound the store's waits on a server, so that a server down,
// unreachable or hung fails a call fast with ErrUnavailable instead of
// holding it. Zero fields take the defaults (see DefaultMySQLTimeouts).
type MySQLTimeouts struct {
	// Dial bounds establishing a connection.
	Dial time.Duration
	// Read and Write bound each network read and write on a connection.
	Read, Write time.Duration
	// Batch bounds one group commit's transaction: past it the writer drops
	// the connection and the batch's callers get ErrUnavailable.
	Batch time.Duration
	// LockWait is the writers' innodb_lock_wait_timeout, rounded up to whole
	// seconds: how long a write waits for a row that another process (another
	// edge) holds before its batch fails.
	LockWait time.Duration
}

// DefaultMySQLTimeouts are the timeouts a zero MySQLTimeouts field takes. A
// group commit normally takes milliseconds; LockWait stays below Batch so
// that a row held elsewhere fails the statement (and the batch runs again)
// before the batch's deadline cuts the connection.
var DefaultMySQLTimeouts = MySQLTimeouts{
	Dial:     time.Second,
	Read:     3 * time.Second,
	Write:    3 * time.Second,
	Batch:    3 * time.Second,
	LockWait: time.Second,
}

// withDefaults fills the zero fields.
func (c MySQLConfig) withDefaults() MySQLConfig {
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = max(4, 2*runtime.GOMAXPROCS(0))
	}
	t, d := &c.Timeouts, DefaultMySQLTimeouts
	for _, f := range []struct{ v, def *time.Duration }{
		{&t.Dial, &d.Dial}, {&t.Read, &d.Read}, {&t.Write, &d.Write}, {&t.Batch, &d.Batch}, {&t.LockWait, &d.LockWait},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	return c
}

// Validate checks the configuration and reports every problem at once, as
// an ErrInvalid error. DSNs are never echoed, since they carry passwords.
func (c MySQLConfig) Validate() error {
	_, _, err := c.parse()
	return err
}

// parse validates c and returns its parsed DSNs.
func (c MySQLConfig) parse() (base *mysql.Config, shards []*mysql.Config, err error) {
	var bad []string
	if _, err := NewRouter(c.Router.DBCount, c.Router.TBCount); err != nil {
		bad = append(bad, fmt.Sprintf("router %dx%d: dbCount and tbCount must be in 1..%d", c.Router.DBCount, c.Router.TBCount, MaxShardCount))
	}
	dsn := func(what, s string) *mysql.Config {
		if s == "" {
			bad = append(bad, what+" DSN is empty")
			return nil
		}
		mc, err := mysql.ParseDSN(s)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s DSN: %v", what, err))
			return nil
		}
		if mc.DBName == "" {
			bad = append(bad, what+" DSN names no database (user:password@tcp(host:port)/database)")
			return nil
		}
		return mc
	}
	base = dsn("base", c.Base)
	if c.Router.DBCount > 0 && len(c.Shards) != c.Router.DBCount {
		bad = append(bad, fmt.Sprintf("%d shard DSNs for a router of %d databases", len(c.Shards), c.Router.DBCount))
	}
	seen := map[string]int{}
	for i, s := range c.Shards {
		mc := dsn("shards["+strconv.Itoa(i)+"]", s)
		shards = append(shards, mc)
		if mc == nil {
			continue
		}
		key := mc.Net + " " + mc.Addr + " " + mc.DBName
		if j, ok := seen[key]; ok {
			bad = append(bad, fmt.Sprintf("shards[%d] and shards[%d] name the same database %s at %s", j, i, mc.DBName, mc.Addr))
		}
		seen[key] = i
	}
	if c.MaxOpenConns < 0 {
		bad = append(bad, "maxOpenConns must not be negative")
	}
	t := c.Timeouts
	if t.Dial < 0 || t.Read < 0 || t.Write < 0 || t.Batch < 0 || t.LockWait < 0 {
		bad = append(bad, "timeouts must not be negative")
	}
	if len(bad) > 0 {
		return nil, nil, fmt.Errorf("orders: mysql config: %w: %s", lottery.ErrInvalid, strings.Join(bad, "; "))
	}
	return base, shards, nil
}

// OpenMySQL connects to the base and shard databases of cfg, migrates them
// (Migrate: databases and tables created when missing, the router's shape
// checked) and starts a writer (two goroutines) per shard database; Close
// stops them. A server that cannot be reached fails it with ErrUnavailable within
// the dial timeout; a bad configuration, or databases created with another
// router shape, with ErrInvalid.
func OpenMySQL(ctx context.Context, cfg MySQLConfig) (*MySQL, error) {
	cfg = cfg.withDefaults()
	base, shards, err := cfg.parse()
	if err != nil {
		return nil, err
	}
	s := &MySQL{store: store{d: mysqlDialect, router: cfg.Router}, cfg: cfg, base: base, shardC: shards}
	if err := s.open(); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("orders: open mysql: %w", err)
	}
	if err := s.Migrate(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.start(ctx, cfg.Timeouts.Batch); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("orders: open mysql: %w", s.storeErr(err))
	}
	return s, nil
}

// open makes the pools; they connect on first use.
func (s *MySQL) open() error {
	t := s.cfg.Timeouts
	// Catalog writes and reads share a pool; it reports matched rows, so a
	// compare-and-set that sets a value already there still counts.
	base, err := mysqlPool(s.base, t, true, false, nil)
	if err != nil {
		return err
	}
	base.SetMaxOpenConns(s.cfg.MaxOpenConns)
	base.SetMaxIdleConns(s.cfg.MaxOpenConns)
	s.baseW, s.baseR = base, base
	// The writer's session: READ COMMITTED takes no gap locks, so writers of
	// several processes block each other less; a short lock wait turns a row
	// held elsewhere into a failed batch instead of a stalled writer.
	lockWait := int((t.LockWait + time.Second - 1) / time.Second)
	writerInit := []string{
		`SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED`,
		`SET SESSION innodb_lock_wait_timeout = ` + strconv.Itoa(lockWait),
	}
	for _, mc := range s.shardC {
		sh := &shard{name: mc.DBName + "@" + mc.Addr}
		s.shards = append(s.shards, sh)
		// The writer's pool must report changed rows, not matched ones: the
		// count upsert tells "nothing left" by changing nothing. It sends
		// several statements in one text (runBulk's reads, then its
		// writes); their arguments are interpolated by the driver, never
		// spliced in by hand.
		if sh.wdb, err = mysqlPool(mc, t, false, true, writerInit); err != nil {
			return err
		}
		sh.wdb.SetMaxOpenConns(mysqlDialect.writers)
		sh.wdb.SetMaxIdleConns(mysqlDialect.writers)
		if sh.rdb, err = mysqlPool(mc, t, false, false, nil); err != nil {
			return err
		}
		sh.rdb.SetMaxOpenConns(s.cfg.MaxOpenConns)
		sh.rdb.SetMaxIdleConns(s.cfg.MaxOpenConns)
	}
	return nil
}

// mysqlPool opens a pool on the database of mc with the store's settings:
// timeouts, client-side interpolation of arguments (one round trip per
// statement that is not prepared), found rows and multiple statements per
// text as asked, and init run on every new connection.
func mysqlPool(mc *mysql.Config, t MySQLTimeouts, foundRows, multiStatements bool, init []string) (*sql.DB, error) {
	c := mc.Clone()
	c.Timeout, c.ReadTimeout, c.WriteTimeout = t.Dial, t.Read, t.Write
	c.InterpolateParams = true
	c.ClientFoundRows = foundRows
	c.MultiStatements = multiStatements
	// Every failure reaches the caller as an error; the driver's own log
	// would only repeat it, or report reconnects that callers never see.
	c.Logger = &mysql.NopLogger{}
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("%w: %s at %s: %v", lottery.ErrInvalid, mc.DBName, mc.Addr, err)
	}
	if len(init) > 0 {
		conn = initConnector{Connector: conn, init: init}
	}
	db := sql.OpenDB(conn)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

// initConnector runs statements on each new connection, before the pool
// hands it out (session settings survive a reconnect that way).
type initConnector struct {
	driver.Connector
	init []string
}

// Connect connects and runs the init statements.
func (c initConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ex, ok := conn.(driver.ExecerContext)
	if !ok {
		_ = conn.Close()
		return nil, errors.New("mysql connection cannot execute statements")
	}
	for _, q := range c.init {
		if _, err := ex.ExecContext(ctx, q, nil); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// Migrate creates the databases that are missing (CREATE DATABASE IF NOT
// EXISTS, utf8mb4, only for a DSN whose database does not exist yet: an
// existing one needs no CREATE privilege), then every missing table and
// index, and records the table layout and the router's shape in the base
// database and in each shard database, with each shard database's index.
// It refuses, with ErrInvalid and before creating any table, databases
// created with another shape or by the earlier layout (takes and counts
// split like the orders), or shard databases listed in another order. It
// is idempotent; OpenMySQL calls it.
func (s *MySQL) Migrate(ctx context.Context) error {
	if err := s.ensureDatabase(ctx, s.baseW, s.base); err != nil {
		return fmt.Errorf("orders: migrate: %w", err)
	}
	for i, sh := range s.shards {
		if err := s.ensureDatabase(ctx, sh.wdb, s.shardC[i]); err != nil {
			return fmt.Errorf("orders: migrate: %w", err)
		}
	}
	return s.migrate(ctx)
}

// ensureDatabase pings db and creates its database if the server answers
// that it does not exist (error 1049).
func (s *MySQL) ensureDatabase(ctx context.Context, db *sql.DB, mc *mysql.Config) error {
	err := db.PingContext(ctx)
	if me, ok := errors.AsType[*mysql.MySQLError](err); ok && me.Number == 1049 {
		err = s.createDatabase(ctx, mc)
		if err == nil {
			err = db.PingContext(ctx)
		}
	}
	if err != nil {
		return fmt.Errorf("database %s at %s: %w", mc.DBName, mc.Addr, unavailable(err))
	}
	return nil
}

func (s *MySQL) createDatabase(ctx context.Context, mc *mysql.Config) error {
	server := mc.Clone()
	server.DBName = ""
	db, err := mysqlPool(server, s.cfg.Timeouts, false, false, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, `CREATE DATABASE IF NOT EXISTS `+quoteIdent(mc.DBName)+
		` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`)
	return err
}

// quoteIdent quotes a MySQL identifier.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// mysqlDialect is MySQL's SQL where it differs (see dialect).
var mysqlDialect = &dialect{
	name:         "mysql",
	baseSchema:   mysqlBaseSchema,
	shardSchema:  mysqlShardSchema,
	metaSchema:   mysqlMetaSchema,
	putMeta:      `INSERT INTO meta (meta_key, meta_value) VALUES (?, ?) ON DUPLICATE KEY UPDATE meta_key = meta_key`,
	decrementSQL: mysqlDecrementSQL,
	decrement:    mysqlDecrement,
	savepointSQL: [3]string{`SAVEPOINT request`, `RELEASE SAVEPOINT request`, `ROLLBACK TO SAVEPOINT request`},
	pendingSQL:   mysqlPendingSQL,
	mapErr:       mysqlMapErr,
	retry:        mysqlRetry,
	snapshot:     &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
	// Every statement is a round trip and costs the server a parse, an
	// optimisation and a reply: a batch's takes, draws, grants and outbox
	// updates go as multi-row statements, its read in one round trip and
	// its writes in another; concurrent UserState calls share a query.
	bulk:            true,
	union:           mysqlUnionForUpdate,
	multiStatements: true,
	statementErr:    mysqlStatementErr,
	batchReads:      1,
	// Two batches in flight per shard database: while the server runs one,
	// the next is gathered and sent, and the server's second core works.
	writers: 2,
}

// mysqlStatementErr reports the errors only a statement answers, never a
// COMMIT: a duplicate key, a value a column refuses, a lock wait timeout, a
// deadlock. The server stops a text of several statements at its first
// error, so after one of these the COMMIT that ends the text did not run,
// and the batch may be rolled back and run again. Any other error (a lost
// connection, a failed COMMIT) leaves the outcome unknown.
func mysqlStatementErr(err error) bool {
	me, ok := errors.AsType[*mysql.MySQLError](err)
	if !ok {
		return false
	}
	switch me.Number {
	case erDupEntry, erDupEntryKeyName, erLockWaitTimeout, erLockDeadlock,
		erBadNullError, erWarnDataRange, erWarnDataTrunc, erTruncatedValue, erTruncatedField, erDataTooLong:
		return true
	}
	return false
}

// mysqlUnionForUpdate joins SELECTs with UNION ALL, each locking the rows
// it reads (FOR UPDATE: under READ COMMITTED, the rows that exist).
func mysqlUnionForUpdate(selects []string) string {
	return "(" + strings.Join(selects, " FOR UPDATE)\nUNION ALL (") + " FOR UPDATE)"
}

// mysqlDecrementSQL creates the count row at takeCount - 1, or decrements
// it while positive, in one statement; its arguments are (user, activity,
// takeCount, takeCount - 1).
//
// MariaDB has no RETURNING on UPDATE (and MySQL none at all), so the
// statement answers through what the server reports anyway: the rows
// affected are 1 for an insert (the user's first take), 2 for an update
// and 0 when the row was left as it was (nothing left); on an update,
// LAST_INSERT_ID(expr) stores the take's number, total - left + 1 before
// the decrement, where the server's reply carries it as the last insert id
// (multiplied by 0, it leaves the new left_count as left_count - 1). One
// round trip, no SELECT ... FOR UPDATE, and the row lock the statement
// takes serialises concurrent takes of a user, from any process.
func mysqlDecrementSQL(count string) string {
	return `INSERT INTO ` + count + ` (user_id, activity_id, total_count, left_count) VALUES (?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE left_count = IF(left_count > 0,
			left_count - 1 + 0 * LAST_INSERT_ID(total_count - left_count + 1),
			left_count)`
}

// mysqlDecrement runs the decrement (see mysqlDecrementSQL).
func mysqlDecrement(b *batch, userID string, activityID int64, takeCount int) (int, error) {
	n, id, err := b.execID(wDecrement, dbTable, userID, activityID, takeCount, takeCount-1)
	switch {
	case err != nil:
		return 0, err
	case n == 0:
		return 0, lottery.ErrLimitReached
	case n == 1:
		return 1, nil
	case n == 2 && id > 1:
		return int(id), nil
	}
	return 0, fmt.Errorf("count upsert: %d rows affected and insert id %d, want 0, 1, or 2 and the take's number", n, id)
}

// mysqlPendingSQL reads the pending orders of table tb, oldest first, as
// two walks of the idx_mq (mq_state, order_time) index that each stop at
// the limit; only their union (at most twice the limit) is sorted.
func mysqlPendingSQL(tb int) string {
	export := ShardTable(TableExport, tb)
	return `(SELECT ` + orderColumns + ` FROM ` + export + `
			WHERE mq_state = 2 ORDER BY order_time, order_id LIMIT ?)
		UNION ALL
		(SELECT ` + orderColumns + ` FROM ` + export + `
			WHERE mq_state = 0 AND order_time < ? ORDER BY order_time, order_id LIMIT ?)
		ORDER BY order_time, order_id LIMIT ?`
}

// MySQL server error numbers the store tells apart.
const (
	erDupEntry        = 1062
	erDupEntryKeyName = 1586
	erLockWaitTimeout = 1205
	erLockDeadlock    = 1213
	erBadNullError    = 1048
	erWarnDataRange   = 1264
	erWarnDataTrunc   = 1265
	erTruncatedValue  = 1292
	erTruncatedField  = 1366
	erDataTooLong     = 1406
)

// mysqlMapErr maps a duplicate key (1062) to ErrConflict and a value the
// column refuses in strict mode (too long, out of range, not UTF-8) to
// ErrInvalid. Other errors come back unchanged; callers treat them as the
// store failing (ErrUnavailable).
func mysqlMapErr(err error) error {
	me, ok := errors.AsType[*mysql.MySQLError](err)
	if !ok {
		return err
	}
	switch me.Number {
	case erDupEntry, erDupEntryKeyName:
		return fmt.Errorf("%w: %v", lottery.ErrConflict, err)
	case erBadNullError, erWarnDataRange, erWarnDataTrunc, erTruncatedValue, erTruncatedField, erDataTooLong:
		return fmt.Errorf("%w: %v", lottery.ErrInvalid, err)
	}
	return err
}

// mysqlRetry reports a deadlock (InnoDB rolled the transaction back) or a
// lock wait timeout (the statement was rolled back, and the writer rolls
// back the rest): the batch wrote nothing and may run again. Both arise only
// when another process writes the same rows, since a process has a single
// writer per shard database.
func mysqlRetry(err error) bool {
	me, ok := errors.AsType[*mysql.MySQLError](err)
	return ok && (me.Number == erLockDeadlock || me.Number == erLockWaitTimeout)
}
