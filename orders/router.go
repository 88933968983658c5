package orders

import (
	"fmt"

	"github.com/flashlottery/lottery/lottery"
)

// MaxShardCount is the largest number of databases, and of tables per
// database, a Router accepts.
const MaxShardCount = 64

// Names of the sharded tables, as in the seed. A shard database holds one
// take table and one count table, and TBCount order tables named
// ShardTable(TableExport, tb), for example user_strategy_export_003.
const (
	TableTake      = "user_take_activity"
	TableTakeCount = "user_take_activity_count"
	TableExport    = "user_strategy_export"
)

// Router maps a user id to the database that holds the user's takes,
// counts and orders and to the order table there (the seed's dbRouter over
// dbCount x tbCount, 2 x 4 in the seed). It is a plain value, independent of any backend, so the
// SQLite and MySQL adapters route the same user to the same (db, tb) and data
// can move between them.
type Router struct {
	DBCount int // number of shard databases, 1..MaxShardCount
	TBCount int // number of order tables per database, 1..MaxShardCount
}

// NewRouter returns a router over dbCount databases of tbCount tables each,
// both in 1..MaxShardCount.
func NewRouter(dbCount, tbCount int) (Router, error) {
	if dbCount < 1 || dbCount > MaxShardCount || tbCount < 1 || tbCount > MaxShardCount {
		return Router{}, fmt.Errorf("orders: router %dx%d: %w: dbCount and tbCount must be in 1..%d",
			dbCount, tbCount, lottery.ErrInvalid, MaxShardCount)
	}
	return Router{DBCount: dbCount, TBCount: tbCount}, nil
}

// Shards returns the number of (database, table) slots, DBCount * TBCount.
func (r Router) Shards() int { return r.DBCount * r.TBCount }

// Route returns the 0-based database and table of userID. The hash is
// FNV-1a 32-bit over the bytes of userID, spread with h ^ (h >> 16) so that
// the high bits reach the low ones; then idx = h mod (DBCount * TBCount),
// db = idx / TBCount and tb = idx % TBCount. The result is part of the
// on-disk format: changing it, or the counts, moves users away from their
// data. Route panics on a zero Router; build one with NewRouter.
func (r Router) Route(userID string) (db, tb int) {
	idx := int(spread(fnv1a32(userID)) % uint32(r.DBCount*r.TBCount))
	return idx / r.TBCount, idx % r.TBCount
}

// fnv1a32 is FNV-1a 32-bit (as hash/fnv's New32a) without allocating.
func fnv1a32(s string) uint32 {
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= prime32
	}
	return h
}

// spread folds the high half of h into the low half.
func spread(h uint32) uint32 { return h ^ h>>16 }

// ShardTable returns the name of table tb of a split kind (the orders):
// base followed by an underscore and tb in three digits, as the seed names
// them (user_strategy_export_000 ... user_strategy_export_003).
func ShardTable(base string, tb int) string { return fmt.Sprintf("%s_%03d", base, tb) }

// ShardDatabase returns the name of shard database db: lottery_00,
// lottery_01, ... (the SQLite adapter adds ".db" for the file name).
func ShardDatabase(db int) string { return fmt.Sprintf("lottery_%02d", db) }

// BaseDatabase is the name of the database that holds the catalog
// (activity, strategy, strategy_detail, award).
const BaseDatabase = "lottery"
