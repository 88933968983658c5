package analytics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/flashlottery/lottery/lottery"
)

var (
	_ Store   = (*ClickHouse)(nil)
	_ Querier = (*ClickHouse)(nil)
)

// Defaults of ClickHouseConfig, applied to every zero field.
const (
	DefaultClickHouseDatabase = "lottery"
	DefaultClickHouseUsername = "default"
	DefaultDialTimeout        = 2 * time.Second
	DefaultQueryTimeout       = 10 * time.Second
)

// ClickHouseConfig configures the ClickHouse store. Zero fields take the
// defaults above.
type ClickHouseConfig struct {
	// Addr is the host:port of the server's native protocol (9000 by
	// default on a server); it is required.
	Addr string
	// Database holds the store's tables; Migrate creates it. It must be
	// an identifier: letters, digits and underscores.
	Database string
	// Username and Password log in.
	Username string
	Password string
	// DialTimeout bounds connecting, so an unreachable server fails an
	// insert or query quickly.
	DialTimeout time.Duration
	// QueryTimeout bounds every insert and query whose context has no
	// earlier deadline, on the client and as the server's
	// max_execution_time.
	QueryTimeout time.Duration
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// withDefaults returns c with every unset field defaulted.
func (c ClickHouseConfig) withDefaults() ClickHouseConfig {
	if c.Database == "" {
		c.Database = DefaultClickHouseDatabase
	}
	if c.Username == "" {
		c.Username = DefaultClickHouseUsername
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	return c
}

// validate reports every problem of a defaulted config at once.
func (c ClickHouseConfig) validate() error {
	var errs []string
	if c.Addr == "" {
		errs = append(errs, "clickhouse addr is required")
	}
	if !identRE.MatchString(c.Database) {
		errs = append(errs, fmt.Sprintf("clickhouse database %q must be an identifier (letters, digits, _)", c.Database))
	}
	return invalid(errs)
}

// ClickHouse is the production Store and Querier: every event goes to a
// MergeTree table, and materialized views keep aggregates per second,
// minute and hour that the named queries read, so a query costs about the
// same over ten million events as over a thousand (see migrations for the
// schema). It speaks the native protocol through clickhouse-go v2 and works
// with ClickHouse 18.16 (Debian's) as with current servers. It is safe for
// concurrent use.
type ClickHouse struct {
	conn   driver.Conn
	cfg    ClickHouseConfig
	db     string // quoted database name
	closed atomic.Bool
	failed failedBatches
	// tables recycles batch tables: an insert of n events would
	// otherwise allocate about 850 bytes per event in column buffers.
	tables sync.Pool
}

// OpenClickHouse connects to the server and checks that it answers, within
// ctx and DialTimeout; a bad config fails with an error wrapping
// lottery.ErrInvalid, an unreachable server with one wrapping
// lottery.ErrUnavailable. Connections are pooled and re-dialled as needed,
// so the store recovers by itself from a server restart. Call Migrate
// before the first Insert.
func OpenClickHouse(ctx context.Context, cfg ClickHouseConfig) (*ClickHouse, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{cfg.Addr},
		Auth: clickhouse.Auth{Username: cfg.Username, Password: cfg.Password},
		// The database is not selected on the connection: it may not
		// exist before Migrate. Every statement names it.
		DialTimeout:  cfg.DialTimeout,
		ReadTimeout:  cfg.QueryTimeout,
		MaxIdleConns: 4,
		MaxOpenConns: 8,
		Settings:     clickhouse.Settings{"max_execution_time": max(1, int(cfg.QueryTimeout/time.Second))},
		ClientInfo: clickhouse.ClientInfo{Products: []struct{ Name, Version string }{
			{Name: "flashlottery-analytics", Version: "1"},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("analytics: clickhouse: %w", err)
	}
	c := &ClickHouse{conn: conn, cfg: cfg, db: "`" + cfg.Database + "`"}
	c.tables.New = func() any { return newBatchTable() }
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout+cfg.QueryTimeout)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		_ = conn.Close()
		return nil, c.fail("ping "+cfg.Addr, err)
	}
	return c, nil
}

// Close closes the connections; later calls fail with ErrClosed. Close is
// idempotent.
func (c *ClickHouse) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.conn.Close()
}

// Ping checks that the server answers.
func (c *ClickHouse) Ping(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if err := c.conn.Ping(ctx); err != nil {
		return c.fail("ping", err)
	}
	return nil
}

// migrations are the schema, one version per entry, applied in order. Each
// statement is idempotent (IF NOT EXISTS), so a migration cut short is
// simply applied again. {db} stands for the quoted database name.
//
// Version 1: draw_events keeps every event as it came, for audits; its
// MergeTree syntax (PARTITION BY, ORDER BY) is the one both 18.16 and
// current servers accept (the old MergeTree(date, key, 8192) form needs a
// setting on current servers). Partitions are days. No DateTime64 (18.16
// has none: seconds are the resolution) and no LowCardinality (a setting on
// 18.16). draw_counts and draw_latency are SummingMergeTree aggregates per
// activity and second, filled by materialized views on every insert into
// draw_events: counts per (outcome, award, module version), and a latency
// histogram whose buckets keep 32 per power of two (exact below 64 us,
// within 1/64 above; see latencyLow). draw_counts_hourly and
// draw_latency_hourly roll the same up per hour (at_hour, whole hours of
// UTC, partitioned by month), draw_counts_minutely per minute (at_minute).
// The named queries read only these, each part of a window at the
// coarsest resolution that fits it (see window.source).
//
// Version 2: draw_events.batch, the id of the Insert batch a row came in
// with, so that a batch whose insert may have been stored without its
// answer reaching us is not stored twice (see Insert). 18.16 has no
// ADD COLUMN IF NOT EXISTS; Migrate takes "column already exists" as done.
var migrations = []string{
	1: `CREATE TABLE IF NOT EXISTS {db}.draw_events (
	at DateTime,
	activity_id Int64,
	user_id String,
	strategy_mode Int8,
	module_name String,
	module_version String,
	outcome String,
	award_id String,
	latency_us UInt32,
	node Int64,
	seed UInt64
) ENGINE = MergeTree PARTITION BY toYYYYMMDD(at) ORDER BY (activity_id, at)
;
CREATE TABLE IF NOT EXISTS {db}.draw_counts (
	activity_id Int64,
	at DateTime,
	outcome String,
	award_id String,
	module_name String,
	module_version String,
	n UInt64
) ENGINE = SummingMergeTree PARTITION BY toYYYYMMDD(at)
ORDER BY (activity_id, at, outcome, award_id, module_name, module_version)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.draw_counts_mv TO {db}.draw_counts AS
SELECT activity_id, at, outcome, award_id, module_name, module_version, toUInt64(count()) AS n
FROM {db}.draw_events
GROUP BY activity_id, at, outcome, award_id, module_name, module_version
;
CREATE TABLE IF NOT EXISTS {db}.draw_latency (
	activity_id Int64,
	at DateTime,
	latency_lo UInt32,
	n UInt64
) ENGINE = SummingMergeTree PARTITION BY toYYYYMMDD(at) ORDER BY (activity_id, at, latency_lo)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.draw_latency_mv TO {db}.draw_latency AS
SELECT activity_id, at,
	toUInt32(latency_us - latency_us % greatest(intDiv(roundToExp2(latency_us), 32), 1)) AS latency_lo,
	toUInt64(count()) AS n
FROM {db}.draw_events
GROUP BY activity_id, at, latency_lo
;
CREATE TABLE IF NOT EXISTS {db}.draw_counts_hourly (
	activity_id Int64,
	at_hour DateTime,
	outcome String,
	award_id String,
	module_name String,
	module_version String,
	n UInt64
) ENGINE = SummingMergeTree PARTITION BY toYYYYMM(at_hour)
ORDER BY (activity_id, at_hour, outcome, award_id, module_name, module_version)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.draw_counts_hourly_mv TO {db}.draw_counts_hourly AS
SELECT activity_id, toDateTime(intDiv(toUInt32(at), 3600) * 3600) AS at_hour,
	outcome, award_id, module_name, module_version, toUInt64(count()) AS n
FROM {db}.draw_events
GROUP BY activity_id, at_hour, outcome, award_id, module_name, module_version
;
CREATE TABLE IF NOT EXISTS {db}.draw_counts_minutely (
	activity_id Int64,
	at_minute DateTime,
	outcome String,
	award_id String,
	module_name String,
	module_version String,
	n UInt64
) ENGINE = SummingMergeTree PARTITION BY toYYYYMMDD(at_minute)
ORDER BY (activity_id, at_minute, outcome, award_id, module_name, module_version)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.draw_counts_minutely_mv TO {db}.draw_counts_minutely AS
SELECT activity_id, toDateTime(intDiv(toUInt32(at), 60) * 60) AS at_minute,
	outcome, award_id, module_name, module_version, toUInt64(count()) AS n
FROM {db}.draw_events
GROUP BY activity_id, at_minute, outcome, award_id, module_name, module_version
;
CREATE TABLE IF NOT EXISTS {db}.draw_latency_hourly (
	activity_id Int64,
	at_hour DateTime,
	latency_lo UInt32,
	n UInt64
) ENGINE = SummingMergeTree PARTITION BY toYYYYMM(at_hour) ORDER BY (activity_id, at_hour, latency_lo)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.draw_latency_hourly_mv TO {db}.draw_latency_hourly AS
SELECT activity_id, toDateTime(intDiv(toUInt32(at), 3600) * 3600) AS at_hour,
	toUInt32(latency_us - latency_us % greatest(intDiv(roundToExp2(latency_us), 32), 1)) AS latency_lo,
	toUInt64(count()) AS n
FROM {db}.draw_events
GROUP BY activity_id, at_hour, latency_lo`,
	2: `ALTER TABLE {db}.draw_events ADD COLUMN batch UInt64 DEFAULT 0`,
}

// SchemaVersion is the schema version Migrate brings a database to.
const SchemaVersion = 2

// codeColumnExists is the server's exception code for adding a column a
// table already has (ILLEGAL_COLUMN).
const codeColumnExists = 44

// Migrate creates the database and brings its schema to SchemaVersion,
// applying the migrations it has not applied yet and recording each in
// {db}.schema_migrations. Running it again, or on several nodes at once,
// is harmless.
func (c *ClickHouse) Migrate(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	for _, stmt := range []string{
		"CREATE DATABASE IF NOT EXISTS {db}",
		"CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, applied DateTime) ENGINE = MergeTree ORDER BY version",
	} {
		if err := c.conn.Exec(ctx, c.sql(stmt)); err != nil {
			return c.fail("migrate", err)
		}
	}
	var applied uint32
	if err := c.conn.QueryRow(ctx, c.sql("SELECT toUInt32(max(version)) FROM {db}.schema_migrations")).Scan(&applied); err != nil {
		return c.fail("migrate", err)
	}
	for v := int(applied) + 1; v < len(migrations); v++ {
		for stmt := range strings.SplitSeq(migrations[v], "\n;\n") {
			if err := c.conn.Exec(ctx, c.sql(stmt)); err != nil && !columnExists(stmt, err) {
				return c.fail(fmt.Sprintf("migration %d", v), err)
			}
		}
		// Not INSERT ... VALUES: through clickhouse-go that hangs on 18.16.
		rec := fmt.Sprintf("INSERT INTO {db}.schema_migrations SELECT toUInt32(%d), now()", v)
		if err := c.conn.Exec(ctx, c.sql(rec)); err != nil {
			return c.fail(fmt.Sprintf("migration %d", v), err)
		}
	}
	return nil
}

// insertColumns are the columns of draw_events an Insert fills, in the
// order of the external table it sends; the batch column is a constant of
// the statement.
const insertColumns = "at, activity_id, user_id, strategy_mode, module_name, module_version, outcome, award_id, latency_us, node, seed"

// Insert stores a batch with one statement: the batch travels as an
// external table, a native-protocol block sent with the query, and
// INSERT INTO draw_events SELECT ... FROM batch copies it. clickhouse-go's
// batch insert is not used because it sends INSERT ... FORMAT Native, which
// 18.16 refuses. A batch within one day and within max_insert_block_size
// (about a million rows) is stored whole or not at all. Times outside what
// a DateTime holds (1970 to 2106) are clamped to its range, latencies to
// 0..4294967295 us, and the module splits into name and version by
// SplitModule.
//
// An insert that fails may still have been stored: the server can commit
// it and die, or the connection can drop, before the answer arrives. So
// every batch is stored under a random batch id, and a failed batch is
// remembered by a hash of its events; when the Sink retries the same
// events, Insert first counts the rows stored under that id and inserts
// only if there are none. A batch is thus stored at most once, whatever
// happened to the answers of its earlier attempts.
func (c *ClickHouse) Insert(ctx context.Context, events []lottery.Event) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if len(events) == 0 {
		return ctx.Err()
	}
	b := c.tables.Get().(*batchTable)
	defer func() {
		b.reset()
		c.tables.Put(b)
	}()
	if err := b.fill(events); err != nil {
		return fmt.Errorf("analytics: clickhouse insert: %w", err)
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	// The hash costs about 60 ns an event: taken only while a batch that
	// failed waits for its retry, or when this one fails.
	var key uint64
	id, retry := rand.Uint64()|1, false // never 0, the id of rows from before version 2
	hashed := c.failed.any()
	if hashed {
		key = batchKey(events)
		if old, ok := c.failed.lookup(key); ok { // a retry: the same id
			id, retry = old, true
		}
	}
	if retry {
		lo, hi := slices.Min(b.at), slices.Max(b.at)
		var n uint64
		q := fmt.Sprintf("SELECT count() FROM {db}.draw_events WHERE at >= toDateTime(%d) AND at <= toDateTime(%d) AND batch = %d", lo, hi, id)
		if err := c.conn.QueryRow(ctx, c.sql(q)).Scan(&n); err != nil {
			return c.fail("insert (checking an earlier attempt)", err)
		}
		if n > 0 { // stored by an attempt whose answer was lost
			c.failed.forget(key)
			return nil
		}
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithExternalTable(b.tbl))
	q := fmt.Sprintf("INSERT INTO {db}.draw_events (%s, batch) SELECT %s, toUInt64(%d) FROM batch", insertColumns, insertColumns, id)
	if err := c.conn.Exec(ctx, c.sql(q)); err != nil {
		if !hashed {
			key = batchKey(events)
		}
		c.failed.remember(key, id)
		return c.fail("insert", err)
	}
	if hashed {
		c.failed.forget(key)
	}
	return nil
}

// failedBatches maps the hash of a batch whose insert failed to the batch
// id it was sent with. It holds at most maxFailedBatches entries (the Sink
// retries one batch at a time; the bound only matters to other callers).
type failedBatches struct {
	mu  sync.Mutex
	ids map[uint64]uint64
}

const maxFailedBatches = 64

// any reports whether some failed batch waits for its retry.
func (f *failedBatches) any() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ids) > 0
}

// lookup returns the id a failed batch with hash key was sent with, and
// whether there is one.
func (f *failedBatches) lookup(key uint64) (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.ids[key]
	return id, ok
}

func (f *failedBatches) remember(key, id uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ids == nil {
		f.ids = make(map[uint64]uint64)
	}
	if len(f.ids) >= maxFailedBatches {
		for k := range f.ids { // forget one: its retry may store it twice
			delete(f.ids, k)
			break
		}
	}
	f.ids[key] = id
}

func (f *failedBatches) forget(key uint64) {
	f.mu.Lock()
	delete(f.ids, key)
	f.mu.Unlock()
}

// batchKey hashes a batch's events (FNV-1a over the fields that tell two
// draws apart) so a retry of the same events finds its batch id.
func batchKey(events []lottery.Event) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037) ^ uint64(len(events))
	word := func(v uint64) {
		for range 8 {
			h = (h ^ v&0xff) * prime
			v >>= 8
		}
	}
	for i := range events {
		e := &events[i]
		word(uint64(e.At.UnixNano()))
		word(uint64(e.ActivityID))
		word(uint64(e.Node))
		word(e.Seed)
		for _, s := range []string{e.UserID, string(e.Outcome)} {
			for j := 0; j < len(s); j++ {
				h = (h ^ uint64(s[j])) * prime
			}
		}
	}
	return h
}

// batchTable is the external table "batch" an Insert sends, with the
// column slices it is filled from. Both keep their capacity between
// inserts (see ClickHouse.tables), so a steady stream of batches does not
// allocate.
type batchTable struct {
	tbl      *ext.Table
	at       []int64
	activity []int64
	user     []string
	mode     []int8
	modName  []string
	modVer   []string
	outcome  []string
	award    []string
	latency  []uint32
	node     []int64
	seed     []uint64
	split    map[string][2]string // module -> name, version
}

// newBatchTable returns an empty batch table.
func newBatchTable() *batchTable {
	tbl, err := ext.NewTable("batch",
		ext.Column("at", "DateTime"),
		ext.Column("activity_id", "Int64"),
		ext.Column("user_id", "String"),
		ext.Column("strategy_mode", "Int8"),
		ext.Column("module_name", "String"),
		ext.Column("module_version", "String"),
		ext.Column("outcome", "String"),
		ext.Column("award_id", "String"),
		ext.Column("latency_us", "UInt32"),
		ext.Column("node", "Int64"),
		ext.Column("seed", "UInt64"),
	)
	if err != nil {
		panic("analytics: batch table: " + err.Error()) // the column types are constants
	}
	return &batchTable{tbl: tbl, split: make(map[string][2]string)}
}

// fill loads events into the table, column by column.
func (b *batchTable) fill(events []lottery.Event) error {
	for i := range events {
		e := &events[i]
		b.at = append(b.at, min(max(e.At.Unix(), 0), maxUnix))
		b.activity = append(b.activity, e.ActivityID)
		b.user = append(b.user, e.UserID)
		b.mode = append(b.mode, int8(e.Mode))
		nv, ok := b.split[e.Module]
		if !ok {
			nv[0], nv[1] = SplitModule(e.Module)
			if len(b.split) < 64 {
				b.split[e.Module] = nv
			}
		}
		b.modName = append(b.modName, nv[0])
		b.modVer = append(b.modVer, nv[1])
		b.outcome = append(b.outcome, string(e.Outcome))
		b.award = append(b.award, e.AwardID)
		b.latency = append(b.latency, uint32(min(max(e.LatencyUS, 0), math.MaxUint32)))
		b.node = append(b.node, e.Node)
		b.seed = append(b.seed, e.Seed)
	}
	cols := b.tbl.Block().Columns
	for i, data := range []any{b.at, b.activity, b.user, b.mode, b.modName, b.modVer, b.outcome, b.award, b.latency, b.node, b.seed} {
		if _, err := cols[i].Append(data); err != nil {
			return err
		}
	}
	return nil
}

// reset empties the table for the next batch and drops its references to
// the events' strings.
func (b *batchTable) reset() {
	for _, col := range b.tbl.Block().Columns {
		col.Reset()
	}
	for _, s := range []*[]string{&b.user, &b.modName, &b.modVer, &b.outcome, &b.award} {
		clear(*s)
		*s = (*s)[:0]
	}
	b.at, b.activity, b.mode, b.latency, b.node, b.seed = b.at[:0], b.activity[:0], b.mode[:0], b.latency[:0], b.node[:0], b.seed[:0]
	clear(b.split)
}

// latencyLow returns the lower bound of the draw_latency bucket of a
// latency, as the materialized view computes it: buckets are 1 us wide
// below 64 us, then each power of two p is cut into 32 buckets of p/32.
func latencyLow(us uint32) uint32 {
	w := max(roundToExp2(us)/32, 1)
	return us - us%w
}

// latencyMid returns the midpoint of the bucket starting at lo, within 1/64
// of every value in the bucket (exact below 64 us).
func latencyMid(lo uint32) int64 {
	w := max(roundToExp2(lo)/32, 1)
	return int64(lo) + int64(w/2)
}

// roundToExp2 is ClickHouse's roundToExp2 for UInt32: the largest power of
// two not above us, 0 for 0.
func roundToExp2(us uint32) uint32 {
	if us == 0 {
		return 0
	}
	return 1 << (bits.Len32(us) - 1)
}

// Summary counts an activity's events in [from, to) (see Querier). The
// latency percentiles are within 1/64 (exact below 64 us).
func (c *ClickHouse) Summary(ctx context.Context, activityID int64, from, to time.Time) (Summary, error) {
	sum := Summary{ActivityID: activityID, Outcomes: map[string]int64{}, Awards: map[string]int64{}, From: from, To: to}
	if c.closed.Load() {
		return sum, ErrClosed
	}
	lo, hi := summaryBounds(from, to)
	if lo >= hi || hi <= 0 || lo > maxUnix {
		return sum, ctx.Err()
	}
	// Unbounded ends become the ends of what a DateTime holds.
	w := window{act: activityID, lo: max(lo, 0), hi: min(hi, maxUnix)}
	ctx, cancel := c.bound(ctx)
	defer cancel()

	// Three independent reads, at once: the summary costs the slowest.
	var (
		outcomes, awards []group
		hist             chHist
		errs             [3]error
		wg               sync.WaitGroup
	)
	wg.Go(func() { outcomes, sum.Draws, errs[0] = c.top(ctx, "summary", "outcome", w.counts("outcome", "")) })
	wg.Go(func() { awards, _, errs[1] = c.top(ctx, "summary", "award_id", w.wonAwards()) })
	wg.Go(func() { hist, errs[2] = c.latencyHist(ctx, w) })
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return sum, err
	}
	for _, g := range outcomes {
		sum.Outcomes[g.name] = g.n
	}
	for _, g := range awards {
		sum.Awards[g.name] = g.n
	}
	sum.Wins = sum.Outcomes[string(lottery.OutcomeWin)]
	if _, folded := sum.Outcomes[otherName]; folded && sum.Wins == 0 {
		// Over MaxGroups outcomes, and "win" not among the most frequent.
		q := "SELECT toInt64(sum(n)) FROM " + w.counts("outcome", "outcome = 'win'")
		if err := c.each(ctx, "summary", q, func(r driver.Rows) error { return r.Scan(&sum.Wins) }); err != nil {
			return sum, err
		}
	}
	sum.WinRate = winRate(sum.Wins, sum.Draws)
	sum.LatencyP50US = hist.quantile(0.50)
	sum.LatencyP99US = hist.quantile(0.99)
	return sum, nil
}

// Awards counts the won draws of an activity per award (see Querier).
// Beyond MaxGroups-1 awards, the most won are kept.
func (c *ClickHouse) Awards(ctx context.Context, activityID int64, from, to time.Time) ([]AwardCount, error) {
	w, err := checkWindow(activityID, from, to)
	if err != nil {
		return nil, err
	}
	if c.closed.Load() {
		return nil, ErrClosed
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	groups, _, err := c.top(ctx, "awards", "award_id", w.wonAwards())
	if err != nil {
		return nil, err
	}
	awards := make([]AwardCount, len(groups))
	for i, g := range groups {
		awards[i] = AwardCount{AwardID: g.name, Count: g.n}
	}
	sortAwards(awards)
	return awards, nil
}

// Timeline counts the draws and wins of an activity per step (see Querier).
func (c *ClickHouse) Timeline(ctx context.Context, activityID int64, from, to time.Time, step time.Duration) ([]TimelinePoint, error) {
	w, err := checkWindow(activityID, from, to)
	if err != nil {
		return nil, err
	}
	st, err := checkStep(w, step)
	if err != nil {
		return nil, err
	}
	if c.closed.Load() {
		return nil, ErrClosed
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	pts := w.timeline(st)
	src := w.source("draw_counts", countTiers, "outcome", "", st)
	q := fmt.Sprintf("SELECT toInt64(intDiv(toInt64(toUInt32(at)), %d) - %d) AS i, toInt64(sum(n)), toInt64(sumIf(n, outcome = 'win')) FROM %s GROUP BY i", st, w.lo/st, src)
	err = c.each(ctx, "timeline", q, func(r driver.Rows) error {
		var i, draws, wins int64
		if err := r.Scan(&i, &draws, &wins); err != nil {
			return err
		}
		if i < 0 || i >= int64(len(pts)) {
			return fmt.Errorf("step %d outside the window", i)
		}
		pts[i].Draws, pts[i].Wins = draws, wins
		return nil
	})
	if err != nil {
		return nil, err
	}
	finishTimeline(w, st, pts)
	return pts, nil
}

// Latency computes the latency percentiles of an activity from the
// draw_latency histogram: each is the midpoint of the bucket holding the
// exact percentile, so exact below 64 us and within 1/64 above (see
// Querier).
func (c *ClickHouse) Latency(ctx context.Context, activityID int64, from, to time.Time) (Latency, error) {
	w, err := checkWindow(activityID, from, to)
	if err != nil {
		return Latency{}, err
	}
	if c.closed.Load() {
		return Latency{}, ErrClosed
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	hist, err := c.latencyHist(ctx, w)
	if err != nil {
		return Latency{}, err
	}
	return Latency{
		ActivityID: activityID, From: from, To: to, Count: hist.total,
		P50US: hist.quantile(0.50), P90US: hist.quantile(0.90), P99US: hist.quantile(0.99),
	}, nil
}

// Modules counts the outcomes of an activity's draws per draw module
// version (see Querier). Beyond MaxGroups-1 (module version, outcome)
// pairs, the most frequent are kept and the rest folded per outcome.
func (c *ClickHouse) Modules(ctx context.Context, activityID int64, from, to time.Time) ([]ModuleOutcomes, error) {
	w, err := checkWindow(activityID, from, to)
	if err != nil {
		return nil, err
	}
	if c.closed.Load() {
		return nil, ErrClosed
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	groups := make(moduleGroups)
	q := fmt.Sprintf("SELECT module_name, module_version, outcome, toInt64(sum(n)) AS c FROM %s GROUP BY module_name, module_version, outcome ORDER BY c DESC, module_name, module_version, outcome LIMIT %d",
		w.counts("module_name, module_version, outcome", ""), MaxGroups)
	rows := 0
	kept := make(map[string]int64) // per outcome, the draws counted so far
	err = c.each(ctx, "modules", q, func(r driver.Rows) error {
		var name, version, outcome string
		var n int64
		if err := r.Scan(&name, &version, &outcome, &n); err != nil {
			return err
		}
		if rows++; rows < MaxGroups {
			groups.add(name, version, outcome, n)
			kept[outcome] += n
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rows == MaxGroups { // maybe more: fold the rest, per outcome
		q := "SELECT outcome, toInt64(sum(n)) FROM " + w.counts("outcome", "") + " GROUP BY outcome"
		err := c.each(ctx, "modules", q, func(r driver.Rows) error {
			var outcome string
			var n int64
			if err := r.Scan(&outcome, &n); err != nil {
				return err
			}
			if rest := n - kept[outcome]; rest > 0 {
				groups.add(otherName, "", outcome, rest)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return finishModules(groups), nil
}

// counts returns a FROM clause over the count rows of the window: the
// columns cols (and at, n) of the rows that match cond ("" for all).
func (w window) counts(cols, cond string) string {
	return w.source("draw_counts", countTiers, cols, cond, 0)
}

// wonAwards returns a FROM clause over the count rows of the window's won
// draws with an award: what Summary and Awards count per award.
func (w window) wonAwards() string {
	return w.counts("award_id", "outcome = 'win' AND award_id != ''")
}

// tier is one resolution of an aggregate table: the table's name suffix,
// its time column and the width of its rows in seconds.
type tier struct {
	suffix, col string
	width       int64
}

// Tiers of the aggregate tables, coarsest first.
var (
	countTiers   = []tier{{"_hourly", "at_hour", hour}, {"_minutely", "at_minute", minute}, {"", "at", 1}}
	latencyTiers = []tier{{"_hourly", "at_hour", hour}, {"", "at", 1}}
)

// source returns a FROM clause, a subquery, that covers the window's rows
// of an aggregate table in its tiers (table, table_minutely,
// table_hourly) exactly once, reading each part of the window at the
// coarsest resolution that fits: the whole hours inside [lo, hi) per
// hour, the whole minutes left at its edges per minute, the rest per
// second. It selects at (a row's start), n and cols, of the rows that
// match cond ("" for all).
//
// With step > 0, for a timeline, only tiers whose width divides the step
// are used: steps are aligned to multiples of step since the epoch, so
// every row then falls within one step.
//
// A query over a month so reads about 750 hourly rows per combination
// plus at most two hours of per-minute and two minutes of per-second rows,
// instead of a row per second; a timeline in steps of whole minutes reads
// per minute, and one in steps under a minute (at most MaxFineWindow) per
// second.
func (w window) source(table string, tiers []tier, cols, cond string, step int64) string {
	var b strings.Builder
	b.WriteString("(")
	for i, p := range w.plan(tiers, step) {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		fmt.Fprintf(&b, "SELECT %[1]s AS at, n, %[2]s FROM {db}.%[3]s%[4]s WHERE activity_id = %[5]d AND %[1]s >= toDateTime(%[6]d) AND %[1]s < toDateTime(%[7]d)",
			p.tier.col, cols, table, p.tier.suffix, w.act, p.from, p.to)
		if cond != "" {
			fmt.Fprintf(&b, " AND (%s)", cond)
		}
	}
	if b.Len() == 1 { // an empty window: a query that reads nothing
		fmt.Fprintf(&b, "SELECT at, n, %s FROM {db}.%s WHERE 0", cols, table)
	}
	b.WriteString(")")
	return b.String()
}

// part is a span of a window read from one tier.
type part struct {
	tier tier
	span
}

// plan cuts the window into spans, each read from the coarsest tier whose
// rows it holds whole (and, for a timeline, whose width divides step).
// The spans tile the window exactly; the last tier must be per second.
func (w window) plan(tiers []tier, step int64) []part {
	var parts []part
	var cover func(ts []tier, sp span)
	cover = func(ts []tier, sp span) {
		if sp.from >= sp.to {
			return
		}
		t := ts[0]
		if len(ts) == 1 {
			parts = append(parts, part{t, sp}) // the finest tier takes the rest
			return
		}
		in := span{(sp.from + t.width - 1) / t.width * t.width, sp.to / t.width * t.width}
		if in.from >= in.to || step > 0 && step%t.width != 0 {
			cover(ts[1:], sp)
			return
		}
		cover(ts[1:], span{sp.from, in.from})
		parts = append(parts, part{t, in})
		cover(ts[1:], span{in.to, sp.to})
	}
	cover(tiers, span{w.lo, w.hi})
	return parts
}

// span is a range of seconds [from, to).
type span struct{ from, to int64 }

// group is a count of rows per value of a column.
type group struct {
	name string
	n    int64
}

// top counts the rows of the source src per value of column, the
// MaxGroups-1 largest counts first, and folds the rest under OtherName. It
// also returns the sum of all counts, which it queries only when there is
// a rest to fold.
func (c *ClickHouse) top(ctx context.Context, op, column, src string) (groups []group, total int64, err error) {
	q := fmt.Sprintf("SELECT %[1]s, toInt64(sum(n)) AS c FROM %[2]s GROUP BY %[1]s ORDER BY c DESC, %[1]s LIMIT %[3]d", column, src, MaxGroups)
	groups = make([]group, 0, 8)
	err = c.each(ctx, op, q, func(r driver.Rows) error {
		var g group
		if err := r.Scan(&g.name, &g.n); err != nil {
			return err
		}
		groups = append(groups, g)
		total += g.n
		return nil
	})
	if err != nil || len(groups) < MaxGroups {
		return groups, total, err
	}
	q = "SELECT toInt64(sum(n)) FROM " + src
	if err := c.each(ctx, op, q, func(r driver.Rows) error { return r.Scan(&total) }); err != nil {
		return nil, 0, err
	}
	groups = groups[:MaxGroups-1]
	rest := total
	for _, g := range groups {
		rest -= g.n
	}
	if rest > 0 {
		groups = append(groups, group{name: otherName, n: rest})
	}
	return groups, total, nil
}

// chHist is a latency histogram read from draw_latency: bucket lower
// bounds in ascending order with their counts.
type chHist struct {
	lows   []uint32
	counts []int64
	total  int64
}

// latencyHist reads the latency histogram of the window.
func (c *ClickHouse) latencyHist(ctx context.Context, w window) (chHist, error) {
	var h chHist
	q := "SELECT latency_lo, toInt64(sum(n)) FROM " + w.source("draw_latency", latencyTiers, "latency_lo", "", 0) + " GROUP BY latency_lo ORDER BY latency_lo"
	err := c.each(ctx, "latency", q, func(r driver.Rows) error {
		var lo uint32
		var n int64
		if err := r.Scan(&lo, &n); err != nil {
			return err
		}
		h.lows, h.counts, h.total = append(h.lows, lo), append(h.counts, n), h.total+n
		return nil
	})
	return h, err
}

// quantile returns the midpoint of the bucket holding the ceil(q*n)-th
// smallest latency, the same rank as the embedded store's; 0 for none.
func (h chHist) quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	rank := max(int64(math.Ceil(q*float64(h.total))), 1)
	var cum int64
	for i, n := range h.counts {
		if cum += n; cum >= rank {
			return latencyMid(h.lows[i])
		}
	}
	return latencyMid(h.lows[len(h.lows)-1])
}

// each runs a query and calls fn for every row.
func (c *ClickHouse) each(ctx context.Context, op, query string, fn func(driver.Rows) error) error {
	rows, err := c.conn.Query(ctx, c.sql(query))
	if err != nil {
		return c.fail(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return c.fail(op, err)
		}
	}
	if err := rows.Err(); err != nil {
		return c.fail(op, err)
	}
	return nil
}

// sql puts the quoted database name in place of {db}.
func (c *ClickHouse) sql(q string) string {
	return strings.ReplaceAll(q, "{db}", c.db)
}

// bound applies QueryTimeout to ctx unless it has an earlier deadline.
func (c *ClickHouse) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= c.cfg.QueryTimeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.cfg.QueryTimeout)
}

// columnExists reports whether err is the server refusing an ADD COLUMN
// statement because the column is there: a migration already applied.
func columnExists(stmt string, err error) bool {
	var ex *clickhouse.Exception
	return strings.Contains(stmt, "ADD COLUMN") && errors.As(err, &ex) && ex.Code == codeColumnExists
}

// fail wraps a driver error: the store cannot answer now.
func (c *ClickHouse) fail(op string, err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("analytics: clickhouse %s: %w", op, err)
	}
	return fmt.Errorf("analytics: clickhouse %s: %w: %w", op, lottery.ErrUnavailable, err)
}
