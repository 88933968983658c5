package stock

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/flashlottery/lottery/lottery"
)

// Interface guards.
var (
	_ lottery.Stock        = (*Redis)(nil)
	_ lottery.StockBatch   = (*Redis)(nil)
	_ lottery.StockAdmin   = (*Redis)(nil)
	_ lottery.StockTrimmer = (*Redis)(nil)
)

// Reservation modes of the Redis adapter (RedisConfig.Mode).
const (
	// ModeLua reserves with one script that checks and increments the used
	// count in a single round trip. It is the default.
	ModeLua = "lua"
	// ModeLock is the seed's sliding stock: increment the used count, step
	// back above the total, and lock the slot with SET NX and a TTL.
	ModeLock = "lock"
)

// maxCount is the largest total or used count the adapter accepts: the
// scripts compute in Lua numbers, which are exact integers up to 2^53.
const maxCount = 1 << 53

// maxLockTries bounds how often a lock-mode reservation starts over after a
// unit was freed under it; past it the call fails instead of spinning.
const maxLockTries = 64

// RedisConfig configures NewRedis. A zero field takes the default named in
// its comment; Validate reports every invalid field at once.
type RedisConfig struct {
	// Addr is the host:port of the Redis primary. Required.
	Addr string
	// Password authenticates to Redis; empty for none.
	Password string
	// DB is the Redis database number.
	DB int
	// Prefix namespaces every key the adapter writes; default "lottery:". It
	// must not contain '{' or '}', which delimit the keys' hash tags.
	Prefix string
	// Mode is ModeLua (default) or ModeLock.
	Mode string
	// LockTTL is how long a slot lock of ModeLock lives if Settle or Release
	// never drops it (the edge died); default 10s, at least 1ms.
	LockTTL time.Duration
	// Shards splits each stock counter over this many Redis keys; default 1.
	// ModeLock needs one shard: its slots are positions in one counter.
	Shards int
	// DialTimeout, ReadTimeout and WriteTimeout bound each step of a Redis
	// call; default 50ms each, so an outage fails a reservation within about
	// 100ms instead of holding the draw.
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// PoolSize is the number of connections; default 10 per GOMAXPROCS.
	PoolSize int
	// Batch is the most reservations sent together in one pipeline; default 64.
	Batch int
	// SoldOutTTL is how long the local sold-out flag is trusted before the
	// next Reserve asks Redis again, so stock freed by another edge is seen;
	// default 200ms.
	SoldOutTTL time.Duration
}

// Default values of RedisConfig.
const (
	defaultPrefix     = "lottery:"
	defaultLockTTL    = 10 * time.Second
	defaultTimeout    = 50 * time.Millisecond
	defaultBatch      = 64
	defaultSoldOutTTL = 200 * time.Millisecond
	maxShards         = 256
	maxBatch          = 4096
)

// withDefaults returns the config with every zero field set to its default.
func (c RedisConfig) withDefaults() RedisConfig {
	if c.Prefix == "" {
		c.Prefix = defaultPrefix
	}
	if c.Mode == "" {
		c.Mode = ModeLua
	}
	if c.LockTTL == 0 {
		c.LockTTL = defaultLockTTL
	}
	if c.Shards == 0 {
		c.Shards = 1
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = defaultTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = defaultTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = defaultTimeout
	}
	if c.PoolSize == 0 {
		c.PoolSize = 10 * runtime.GOMAXPROCS(0)
	}
	if c.Batch == 0 {
		c.Batch = defaultBatch
	}
	if c.SoldOutTTL == 0 {
		c.SoldOutTTL = defaultSoldOutTTL
	}
	return c
}

// Validate reports every invalid field of the config, each wrapping
// lottery.ErrInvalid. Zero fields are valid: they take their defaults.
func (c RedisConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("stock: redis config: %w: "+format, append([]any{lottery.ErrInvalid}, args...)...))
	}
	if c.Addr == "" {
		bad("addr is required")
	}
	if c.DB < 0 {
		bad("db %d is negative", c.DB)
	}
	if strings.ContainsAny(c.Prefix, "{}") {
		bad("prefix %q must not contain '{' or '}'", c.Prefix)
	}
	switch c.Mode {
	case "", ModeLua, ModeLock:
	default:
		bad("mode %q is not %q or %q", c.Mode, ModeLua, ModeLock)
	}
	if c.LockTTL < 0 || (c.LockTTL > 0 && c.LockTTL < time.Millisecond) {
		bad("lock ttl %v must be at least 1ms", c.LockTTL)
	}
	if c.Shards < 0 || c.Shards > maxShards {
		bad("shards %d outside 1..%d", c.Shards, maxShards)
	}
	if c.Mode == ModeLock && c.Shards > 1 {
		bad("mode %q locks slots of one counter and needs shards 1, not %d", ModeLock, c.Shards)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"dial timeout", c.DialTimeout}, {"read timeout", c.ReadTimeout}, {"write timeout", c.WriteTimeout}, {"sold-out ttl", c.SoldOutTTL}} {
		if d.v < 0 {
			bad("%s %v is negative", d.name, d.v)
		}
	}
	if c.PoolSize < 0 {
		bad("pool size %d is negative", c.PoolSize)
	}
	if c.Batch < 0 || c.Batch > maxBatch {
		bad("batch %d outside 1..%d", c.Batch, maxBatch)
	}
	return errors.Join(errs...)
}

// Redis is the sliding stock of a cluster of edges, kept in Redis so every
// edge reserves from the same counters. It implements lottery.Stock and
// lottery.StockAdmin for activity and award keys alike; doc.go records its
// design. It is safe for concurrent use. One goroutine, started by NewRedis
// and stopped by Close, sends the waiting reservations to Redis in pipelines.
type Redis struct {
	cfg     RedisConfig
	client  *redis.Client
	scripts redisScripts
	start   time.Time // origin of the monotonic clock used by the local flags

	keys  sync.Map // lottery.StockKey -> *redisKey
	calls sync.Pool

	queue   chan *call
	mu      sync.RWMutex // guards closed against sends on queue
	closed  bool
	quit    chan struct{}
	stopped chan struct{}

	// Owned by the batcher goroutine.
	downUntil time.Duration // monotonic time until which batches fail fast
	downErr   error

	stats struct {
		reservations, failures, batches, roundTrips, abandoned, givenBack atomic.Uint64
	}
}

// RedisStats counts the work of a Redis adapter since NewRedis.
type RedisStats struct {
	// Reservations is the number of Reserve calls Redis answered: a unit,
	// sold out or not found.
	Reservations uint64
	// Failures is the number of Reserve calls that failed: Redis
	// unavailable, the caller's context done, or the adapter closed.
	Failures uint64
	// Batches is the number of pipelines the reservation batcher sent; a
	// reservation takes one batch (ModeLua, its shard not empty) or two or
	// more (ModeLock). Batches / Reservations is the round trips per reservation.
	Batches uint64
	// RoundTrips is every round trip to Redis, batches included.
	RoundTrips uint64
	// Abandoned is the number of reservations whose caller stopped waiting
	// before the answer; a unit reserved for them is given back.
	Abandoned uint64
	// GivenBack is the number of units reserved for callers that had
	// stopped waiting and given back by the batcher.
	GivenBack uint64
}

// Stats returns the adapter's counters.
func (r *Redis) Stats() RedisStats {
	return RedisStats{
		Reservations: r.stats.reservations.Load(),
		Failures:     r.stats.failures.Load(),
		Batches:      r.stats.batches.Load(),
		RoundTrips:   r.stats.roundTrips.Load(),
		Abandoned:    r.stats.abandoned.Load(),
		GivenBack:    r.stats.givenBack.Load(),
	}
}

// NewRedis validates the config, creates the client and starts the
// reservation batcher. It does not connect: Redis is dialled on first use,
// so an edge starts while Redis is down and its draws fail fast with
// lottery.ErrUnavailable until Redis returns (Ping reports readiness).
func NewRedis(cfg RedisConfig) (*Redis, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	client := redis.NewClient(&redis.Options{
		Addr:         cfg.Addr,
		Password:     cfg.Password,
		DB:           cfg.DB,
		DialTimeout:  cfg.DialTimeout,
		ReadTimeout:  cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout,
		PoolSize:     cfg.PoolSize,
		// Waiting for a busy pool is bounded like a read: an exhausted pool
		// is an unavailable Redis, not a reason to hold a draw.
		PoolTimeout: cfg.ReadTimeout,
		// One dial attempt per connection: the client's default retries
		// five times with 100ms pauses, far beyond a draw's budget.
		DialerRetries: 1,
		// No command retries: a script that ran but whose answer was lost
		// would run twice, and a Release twice gives back two units.
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
		DisableIdentity:       true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	r := &Redis{
		cfg:     cfg,
		client:  client,
		scripts: newRedisScripts(""),
		start:   time.Now(),
		queue:   make(chan *call, 4*cfg.Batch),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	r.calls.New = func() any { return &call{done: make(chan struct{}, 1)} }
	go r.run()
	return r, nil
}

// Close stops the batcher and closes the client. Reservations already sent
// finish; those still queued and any later call fail with an error wrapping
// lottery.ErrUnavailable. Close waits for the batcher and is safe to call
// more than once.
func (r *Redis) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.stopped
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	close(r.quit)
	<-r.stopped
	return r.client.Close()
}

// Ping checks that Redis answers, for readiness probes.
func (r *Redis) Ping(ctx context.Context) error {
	r.stats.roundTrips.Add(1)
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("stock: redis ping: %w", unavailable(err))
	}
	return nil
}

// now is the adapter's monotonic clock, never zero after start.
func (r *Redis) now() time.Duration {
	return time.Since(r.start) + 1
}

// redisKey is the adapter's local view of one stock key: the names of its
// Redis keys, built once, and the local flags.
type redisKey struct {
	key lottery.StockKey
	// shards are the counter hashes, one per shard, each with fields t
	// (total) and u (used) and its own hash tag.
	shards []string
	// shardKeys[i] is {shards[i]}: the KEYS of a single-shard script.
	shardKeys [][]string
	// adminKeys is the meta hash then the shards: the KEYS of Provision.
	adminKeys []string
	// lockBase + slot is the lock key of a slot (ModeLock, one shard).
	lockBase   string
	errSoldOut error

	// soldOut holds the monotonic time until which the key is believed sold
	// out, 0 when it is not.
	soldOut atomic.Int64
	// epoch moves whenever a unit may have become free, so a sold-out answer
	// that raced with it does not set the flag.
	epoch atomic.Uint64
	// empty[i] is the monotonic time until which shard i is believed empty.
	empty []atomic.Int64
	// rr routes reservations over the shards, round robin.
	rr atomic.Uint32
}

// key returns the local view of a stock key, creating it on first use.
func (r *Redis) key(key lottery.StockKey) *redisKey {
	if v, ok := r.keys.Load(key); ok {
		return v.(*redisKey)
	}
	v, _ := r.keys.LoadOrStore(key, r.newKey(key))
	return v.(*redisKey)
}

// newKey names the Redis keys of a stock key. The id is the activity, then
// ":" and the award escaped so no award can spell another key's name or close
// the hash tag. One shard: "lottery:{42:a1}"; several: "lottery:{42:a1#0}"...;
// the meta hash "lottery:{42:a1}:meta"; slot locks "lottery:{42:a1}_7".
func (r *Redis) newKey(key lottery.StockKey) *redisKey {
	id := strconv.AppendInt(nil, key.Activity, 10)
	if key.Award != "" {
		id = append(id, ':')
		id = appendEscaped(id, key.Award)
	}
	base := r.cfg.Prefix + "{" + string(id) + "}"
	n := r.cfg.Shards
	k := &redisKey{
		key:        key,
		shards:     make([]string, n),
		shardKeys:  make([][]string, n),
		adminKeys:  make([]string, 0, n+1),
		lockBase:   base + "_",
		errSoldOut: &keyError{key: key, err: lottery.ErrSoldOut},
		empty:      make([]atomic.Int64, n),
	}
	k.adminKeys = append(k.adminKeys, base+":meta")
	for i := range n {
		if n == 1 {
			k.shards[i] = base
		} else {
			k.shards[i] = r.cfg.Prefix + "{" + string(id) + "#" + strconv.Itoa(i) + "}"
		}
		k.shardKeys[i] = k.shards[i : i+1 : i+1]
		k.adminKeys = append(k.adminKeys, k.shards[i])
	}
	return k
}

// appendEscaped appends s with every byte outside [A-Za-z0-9._-] written as
// %XX, so the result holds no ':', '#', '{', '}' or '%' of its own.
func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	return b
}

// lock is the name of the lock key of a slot (ModeLock).
func (k *redisKey) lock(slot int64) string {
	return k.lockBase + strconv.FormatInt(slot, 10)
}

// markSoldOut sets the sold-out flag until expiry unless a unit may have
// been freed since epoch was read; the re-check after the store keeps a
// release racing with the store from leaving the flag set.
func (k *redisKey) markSoldOut(epoch uint64, expiry time.Duration) {
	if k.epoch.Load() != epoch {
		return
	}
	k.soldOut.Store(int64(expiry))
	if k.epoch.Load() != epoch {
		k.soldOut.Store(0)
	}
}

// freed records that a unit may be free: it moves the epoch, then clears
// the flag.
func (k *redisKey) freed() {
	k.epoch.Add(1)
	k.soldOut.Store(0)
}

// SoldOut reports the key's local sold-out flag with no I/O. A refused
// reservation sets it; a Release through this adapter, a Provision that
// leaves stock, or SoldOutTTL passing clears it, the last so that stock freed
// by another edge is seen again. It is false for a key this adapter never saw.
func (r *Redis) SoldOut(key lottery.StockKey) bool {
	v, ok := r.keys.Load(key)
	if !ok {
		return false
	}
	until := v.(*redisKey).soldOut.Load()
	return until != 0 && time.Duration(until) > r.now()
}

// call is one Reserve (or ModeLock Settle) on its way through the batcher.
// The caller owns it until it is queued and again after done fires; in
// between the batcher does. A caller that stops waiting abandons it to the
// batcher for good, and it never returns to the pool.
type call struct {
	k     *redisKey
	epoch uint64
	state atomic.Int32 // callWaiting, callDone or callAbandoned
	done  chan struct{}
	res   lottery.Reservation
	err   error

	// Batcher state.
	step  step
	eval  bool // send the script's source (EVAL): Redis answered NOSCRIPT
	start int  // first shard tried
	tried int  // shards tried so far
	slot  int64
	total int64
	tries int
	// sold is set when ModeLock found no free slot: the undo then answers
	// sold out whatever count it sees.
	sold bool
	// group is the next call of a ReserveEach: the batcher takes the calls
	// of a group together, into one pipeline.
	group *call

	cmd     *redis.Cmd
	intCmd  *redis.IntCmd
	strCmd  *redis.StringCmd
	boolCmd *redis.BoolCmd
}

// op names the call's operation in errors.
func (c *call) op() string {
	if c.step == stepSettle {
		return "settle"
	}
	return "reserve"
}

const (
	callWaiting int32 = iota
	callDone
	callAbandoned
)

// step is what a call sends in the next batch.
type step uint8

const (
	stepReserve  step = iota // ModeLua: the reserve script on one shard
	stepIncr                 // ModeLock: HINCRBY u 1 and HGET t
	stepUndo                 // ModeLock: HINCRBY u -1 after going above the total
	stepLock                 // ModeLock: SET NX PX on the slot
	stepClaim                // ModeLock: the slot was locked; the claim script finds a free one
	stepCleanup              // ModeLock: the key is missing; drop the counter the HINCRBY created
	stepGiveBack             // the caller gave up: release the unit it got
	stepSettle               // ModeLock Settle: DEL the slot lock
)

// Reserve takes one unit of the key's stock. Calls from many goroutines are
// gathered by the batcher and sent to Redis together, up to Batch per
// pipeline. It answers an error wrapping lottery.ErrSoldOut when no unit is
// left (and sets the local sold-out flag), lottery.ErrNotFound for a key
// never provisioned, and lottery.ErrUnavailable when Redis does not answer,
// the context ends first, or the adapter is closed. A unit reserved for a
// caller that stopped waiting is given back. The Slot is the used count
// after the reservation with one shard (in ModeLock, the slot it locked) and
// zero with several, whose counts are per shard.
func (r *Redis) Reserve(ctx context.Context, key lottery.StockKey) (lottery.Reservation, error) {
	if err := ctx.Err(); err != nil {
		r.stats.failures.Add(1)
		return lottery.Reservation{}, r.fail("reserve", key, err)
	}
	return r.submit(ctx, "reserve", r.reserveCall(key))
}

// reserveCall takes a call from the pool, set up for the first step of a
// reservation of key.
func (r *Redis) reserveCall(key lottery.StockKey) *call {
	k := r.key(key)
	c := r.calls.Get().(*call)
	*c = call{k: k, epoch: k.epoch.Load(), done: c.done}
	if r.cfg.Mode == ModeLock {
		c.step = stepIncr
	} else {
		c.step = stepReserve
		c.start = r.route(k)
	}
	return c
}

// submit queues a call for the batcher and waits for its answer or the end
// of ctx, whichever comes first.
func (r *Redis) submit(ctx context.Context, op string, c *call) (lottery.Reservation, error) {
	reserve, key := c.step != stepSettle, c.k.key // read before the batcher owns c
	if err := r.enqueue(ctx, c); err != nil {
		return r.failed(op, c, err)
	}
	return r.wait(ctx, op, c, reserve, key)
}

// failed answers a call that never reached the batcher and pools it.
func (r *Redis) failed(op string, c *call, err error) (lottery.Reservation, error) {
	if c.step != stepSettle {
		r.stats.failures.Add(1)
	}
	err = r.fail(op, c.k.key, err)
	*c = call{done: c.done}
	r.calls.Put(c)
	return lottery.Reservation{}, err
}

// enqueue hands a call (with the calls of its group) to the batcher.
func (r *Redis) enqueue(ctx context.Context, c *call) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return errClosed
	}
	select {
	case r.queue <- c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait waits for a queued call's answer or the end of ctx. reserve and key
// are the call's, read before it was queued: the batcher writes the call
// while it runs it.
func (r *Redis) wait(ctx context.Context, op string, c *call, reserve bool, key lottery.StockKey) (lottery.Reservation, error) {
	select {
	case <-c.done:
	case <-ctx.Done():
		if c.state.CompareAndSwap(callWaiting, callAbandoned) {
			// The batcher owns the call from now on and gives back a unit
			// it reserves for it.
			if reserve {
				r.stats.failures.Add(1)
				r.stats.abandoned.Add(1)
			}
			return lottery.Reservation{}, r.fail(op, key, ctx.Err())
		}
		<-c.done
	}
	res, err := c.res, c.err
	*c = call{done: c.done} // hold on to nothing while pooled
	r.calls.Put(c)
	return res, err
}

// ReserveEach reserves one unit of each key, as Reserve does for each, with
// the reservations sent to Redis in one pipeline (one round trip for all
// of them, unless one falls through to another shard or step). res and
// errs, of len(keys), receive each key's answer. Each key is its own
// reservation: one refused leaves the others reserved.
func (r *Redis) ReserveEach(ctx context.Context, keys []lottery.StockKey, res []lottery.Reservation, errs []error) {
	if len(keys) == 0 {
		return
	}
	if err := ctx.Err(); err != nil {
		for i, key := range keys {
			r.stats.failures.Add(1)
			res[i], errs[i] = lottery.Reservation{}, r.fail("reserve", key, err)
		}
		return
	}
	calls := make([]*call, len(keys))
	for i, key := range keys {
		calls[i] = r.reserveCall(key)
	}
	for i := range len(calls) - 1 {
		calls[i].group = calls[i+1]
	}
	if err := r.enqueue(ctx, calls[0]); err != nil { // the group goes with its head
		for i, c := range calls {
			res[i], errs[i] = r.failed("reserve", c, err)
		}
		return
	}
	for i, c := range calls {
		res[i], errs[i] = r.wait(ctx, "reserve", c, true, keys[i])
	}
}

// appendGroup appends c and the rest of its group to pending.
func appendGroup(pending []*call, c *call) []*call {
	for c != nil {
		next := c.group
		c.group = nil
		pending = append(pending, c)
		c = next
	}
	return pending
}

// route picks the shard a reservation tries first: the next one round
// robin, skipping shards believed empty. The Stock port carries no user, so
// there is nothing to hash; round robin spreads the load evenly and drains
// the shards together.
func (r *Redis) route(k *redisKey) int {
	n := len(k.shards)
	if n == 1 {
		return 0
	}
	start := int(k.rr.Add(1) % uint32(n))
	now := int64(r.now())
	for i := range n {
		s := (start + i) % n
		if k.empty[s].Load() <= now {
			return s
		}
	}
	return start
}

var errClosed = errors.New("adapter closed")

// run is the batcher: it gathers waiting reservations, sends each batch as
// one pipeline and hands every caller its own answer. Calls that need
// another step (a ModeLock reservation, a fall-through to the next shard)
// ride in the next batch. On Close it finishes the calls it holds and fails
// those still queued.
func (r *Redis) run() {
	defer close(r.stopped)
	var pending, next []*call
	for {
		closing := false
		if len(pending) == 0 {
			select {
			case c := <-r.queue:
				pending = appendGroup(pending, c)
			case <-r.quit:
				r.failQueued()
				return
			}
		}
		select {
		case <-r.quit:
			closing = true
		default:
		}
		if !closing && len(pending) < r.cfg.Batch {
			// Yield once so the draws the last batch's answers woke can
			// queue their next reservation (as the orders writer does):
			// on the 2-core target an all-win load's Redis CPU per draw fell
			// 15% and draws a second rose 2% (8 alternated pairs).
			runtime.Gosched()
		}
	gather:
		for !closing && len(pending) < r.cfg.Batch {
			select {
			case c := <-r.queue:
				pending = appendGroup(pending, c)
			default:
				break gather
			}
		}
		next = r.batch(pending, next[:0])
		clear(pending)
		pending, next = next, pending[:0]
	}
}

// failQueued answers every queued call with the closed error. No call is
// queued after it: Close set closed before it signalled quit.
func (r *Redis) failQueued() {
	for {
		select {
		case c := <-r.queue:
			for _, c := range appendGroup(nil, c) {
				r.finish(c, lottery.Reservation{}, r.fail(c.op(), c.k.key, errClosed))
			}
		default:
			return
		}
	}
}

// batch sends one pipeline with the next step of every call and handles the
// answers; it returns the calls that need another step.
func (r *Redis) batch(calls, next []*call) []*call {
	now := r.now()
	if now < r.downUntil {
		// Redis just failed a batch: fail fast instead of piling every
		// caller behind another timeout. The next batch after the window
		// probes Redis again.
		for _, c := range calls {
			r.finish(c, lottery.Reservation{}, r.fail(c.op(), c.k.key, r.downErr))
		}
		return next
	}
	// The whole batch, dial included, gets the longest single-step budget:
	// a healthy Redis answers a batch in well under a millisecond.
	ctx, cancel := context.WithTimeout(context.Background(), max(r.cfg.DialTimeout, r.cfg.ReadTimeout, r.cfg.WriteTimeout))
	defer cancel()
	pipe := r.client.Pipeline()
	for _, c := range calls {
		r.send(ctx, pipe, c)
	}
	_, err := pipe.Exec(ctx)
	r.stats.batches.Add(1)
	r.stats.roundTrips.Add(1)
	if err != nil && !isServerError(err) && !errors.Is(err, redis.Nil) {
		r.downUntil, r.downErr = r.now()+r.cfg.ReadTimeout, err
	}
	for _, c := range calls {
		if r.handle(c) {
			next = append(next, c)
		}
	}
	return next
}

// send queues the call's next step on the pipeline.
func (r *Redis) send(ctx context.Context, pipe redis.Pipeliner, c *call) {
	k := c.k
	shard := (c.start + c.tried) % len(k.shards)
	switch c.step {
	case stepReserve:
		c.cmd = r.scripts.reserve.run(ctx, pipe, c.eval, k.shardKeys[shard])
	case stepIncr:
		c.intCmd = pipe.HIncrBy(ctx, k.shards[0], "u", 1)
		c.strCmd = pipe.HGet(ctx, k.shards[0], "t")
	case stepUndo:
		c.intCmd = pipe.HIncrBy(ctx, k.shards[0], "u", -1)
	case stepLock:
		c.boolCmd = pipe.SetNX(ctx, k.lock(c.slot), "1", r.cfg.LockTTL)
	case stepClaim:
		c.cmd = r.scripts.claim.run(ctx, pipe, c.eval, k.shardKeys[0], k.lockBase, c.slot, c.total, r.cfg.LockTTL.Milliseconds())
	case stepCleanup:
		c.cmd = r.scripts.cleanup.run(ctx, pipe, c.eval, k.shardKeys[0])
	case stepGiveBack:
		c.cmd = r.scripts.release.run(ctx, pipe, c.eval, r.releaseKeys(k, c.res.Slot), len(k.shards))
	case stepSettle:
		c.intCmd = pipe.Del(ctx, k.lock(c.res.Slot))
	}
	c.eval = false
}

// handle reads the answer to the call's step and either finishes the call
// or sets its next step and reports true.
func (r *Redis) handle(c *call) bool {
	k := c.k
	switch c.step {
	case stepReserve:
		v, err := c.cmd.Int64()
		if retry, err := r.scriptErr(c, err); retry || err != nil {
			return retry || r.finish(c, lottery.Reservation{}, r.fail("reserve", k.key, err))
		}
		switch {
		case v < 0:
			return r.finish(c, lottery.Reservation{}, notFound(k.key))
		case v == 0:
			shard := (c.start + c.tried) % len(k.shards)
			k.empty[shard].Store(int64(r.now() + r.cfg.SoldOutTTL))
			if c.tried++; c.tried < len(k.shards) {
				return true // fall through to the next shard
			}
			k.markSoldOut(c.epoch, r.now()+r.cfg.SoldOutTTL)
			return r.finish(c, lottery.Reservation{}, k.errSoldOut)
		}
		res := lottery.Reservation{Key: k.key}
		if len(k.shards) == 1 {
			res.Slot = v
		}
		return r.finish(c, res, nil)

	case stepIncr:
		used, err := c.intCmd.Result()
		if err != nil {
			return r.finish(c, lottery.Reservation{}, r.fail("reserve", k.key, err))
		}
		total, err := c.strCmd.Int64()
		switch {
		case errors.Is(err, redis.Nil):
			// No total: the key was never provisioned (or Redis lost it) and
			// the HINCRBY made a stray counter; drop it.
			c.step = stepCleanup
			return true
		case err != nil:
			// The unit is counted but unknown: reconciliation gets it back.
			return r.finish(c, lottery.Reservation{}, r.fail("reserve", k.key, err))
		}
		c.total = total
		if used > total {
			c.step = stepUndo
			return true
		}
		c.slot, c.step = used, stepLock
		return true

	case stepUndo:
		used, err := c.intCmd.Result()
		if err != nil {
			return r.finish(c, lottery.Reservation{}, r.fail("reserve", k.key, err))
		}
		if used < c.total && !c.sold {
			// A unit was freed between the increment and the undo: the
			// seed would answer sold out here and leave it unsold.
			if c.tries++; c.tries < maxLockTries {
				c.step = stepIncr
				return true
			}
			return r.finish(c, lottery.Reservation{}, r.fail("reserve", k.key, errors.New("lock mode: too much contention")))
		}
		k.markSoldOut(c.epoch, r.now()+r.cfg.SoldOutTTL)
		return r.finish(c, lottery.Reservation{}, k.errSoldOut)

	case stepLock:
		ok, err := c.boolCmd.Result()
		if err != nil {
			return r.finish(c, lottery.Reservation{}, r.fail("reserve", k.key, err))
		}
		if !ok {
			// Another holder has this slot: a release below it moved the
			// count back under a slot still in flight. The unit is ours by
			// count; find a free slot for it.
			c.step = stepClaim
			return true
		}
		return r.finish(c, lottery.Reservation{Key: k.key, Slot: c.slot}, nil)

	case stepClaim:
		v, err := c.cmd.Int64()
		if retry, err := r.scriptErr(c, err); retry || err != nil {
			return retry || r.finish(c, lottery.Reservation{}, r.fail("reserve", k.key, err))
		}
		if v == 0 {
			// Every slot up to the total is locked: holders the count does
			// not know of (a Reset under load) still hold them. Give the
			// count back and answer sold out; the locks expire after LockTTL.
			c.step, c.sold = stepUndo, true
			return true
		}
		return r.finish(c, lottery.Reservation{Key: k.key, Slot: v}, nil)

	case stepCleanup:
		_, err := c.cmd.Result()
		if retry, _ := r.scriptErr(c, err); retry {
			return true
		}
		return r.finish(c, lottery.Reservation{}, notFound(k.key))

	case stepSettle:
		if err := c.intCmd.Err(); err != nil {
			return r.finish(c, lottery.Reservation{}, r.fail("settle", k.key, err))
		}
		return r.finish(c, c.res, nil)

	case stepGiveBack:
		v, err := c.cmd.Slice()
		if retry, _ := r.scriptErr(c, err); retry {
			return true
		}
		if err == nil {
			r.stats.givenBack.Add(1)
			r.released(k, v)
		}
		return false
	}
	panic("stock: unknown batcher step")
}

// scriptErr handles a script's error: NOSCRIPT means Redis lost its script
// cache (a restart), so the step is sent again with the source (EVAL), which
// also loads it for the EVALSHAs that follow.
func (r *Redis) scriptErr(c *call, err error) (retry bool, _ error) {
	if err != nil && isNoScript(err) && !c.eval {
		c.eval = true
		return true, nil
	}
	return false, err
}

// finish hands the answer to the caller and reports false (the call needs
// no other step) unless the caller gave up and a unit was reserved for it:
// then the call turns into a give-back and finish reports true.
func (r *Redis) finish(c *call, res lottery.Reservation, err error) bool {
	reserve := c.step != stepSettle
	if c.state.CompareAndSwap(callWaiting, callDone) {
		switch {
		case !reserve:
		case err != nil && errors.Is(err, lottery.ErrUnavailable):
			r.stats.failures.Add(1)
		default:
			r.stats.reservations.Add(1)
		}
		c.res, c.err = res, err
		c.done <- struct{}{}
		return false
	}
	if err != nil || !reserve {
		return false
	}
	c.res, c.step, c.eval = res, stepGiveBack, false
	return true
}

// Release gives a reservation's unit back (in ModeLock it also drops the
// slot lock) and clears the local sold-out flag when a unit is free again.
// The used count never goes below zero. With several shards the unit goes
// back to the fullest shard, so a shard holding more than its total (after a
// Provision with used above the total) drains first. It answers an error
// wrapping lottery.ErrNotFound for an unknown key and
// lottery.ErrUnavailable when Redis does not answer.
func (r *Redis) Release(ctx context.Context, res lottery.Reservation) error {
	k := r.key(res.Key)
	v, err := r.scripts.release.do(ctx, r, r.releaseKeys(k, res.Slot), len(k.shards))
	if err != nil {
		return r.fail("release", res.Key, err)
	}
	vals, _ := v.([]any)
	if len(vals) != 2 {
		return r.fail("release", res.Key, fmt.Errorf("release script answered %v", v))
	}
	if left, _ := vals[0].(int64); left < 0 {
		return notFound(res.Key)
	}
	r.released(k, vals)
	return nil
}

// releaseKeys are the KEYS of the release script for a unit of k at slot:
// the shards, and in ModeLock the slot's lock after the one shard.
func (r *Redis) releaseKeys(k *redisKey, slot int64) []string {
	if r.cfg.Mode == ModeLock && slot > 0 {
		return []string{k.shards[0], k.lock(slot)}
	}
	return k.shards
}

// released updates the local flags from the release script's answer
// {left, shard (1-based, 0 for none)}.
func (r *Redis) released(k *redisKey, vals []any) {
	if len(vals) != 2 {
		return
	}
	left, _ := vals[0].(int64)
	shard, _ := vals[1].(int64)
	if shard > 0 && int(shard) <= len(k.empty) {
		k.empty[shard-1].Store(0)
	}
	if left > 0 {
		k.freed()
	}
}

// Settle drops the reservation's slot lock in ModeLock, once the take or
// order is committed; the unit stays sold. The DEL rides in the batcher's
// pipelines with the reservations. In ModeLua it does nothing and costs no
// round trip. A lock Settle could not drop expires after LockTTL.
func (r *Redis) Settle(ctx context.Context, res lottery.Reservation) error {
	if r.cfg.Mode != ModeLock || res.Slot <= 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return r.fail("settle", res.Key, err)
	}
	c := r.calls.Get().(*call)
	*c = call{k: r.key(res.Key), res: res, step: stepSettle, done: c.done}
	_, err := r.submit(ctx, "settle", c)
	return err
}

// Provision sets the key's total and brings its used count in line with the
// durable count, safely for a cluster of edges that each provision at
// start. Redis is the authority for used while it holds the key: its count
// includes reservations in flight, which the database does not know yet, so
// Provision never lowers it. It raises it to used when Redis holds less (it
// lost writes), and creates the key from used when Redis lost it. The one
// exception is a redefinition: a new total together with a durable count
// below the one last provisioned means the database was reset, and used
// wins. Reset replaces the count unconditionally. Provision answers an error
// wrapping lottery.ErrInvalid when total or used is negative or above 2^53,
// and lottery.ErrConflict when another edge provisioned the key with a
// different number of shards.
func (r *Redis) Provision(ctx context.Context, key lottery.StockKey, total, used int64) error {
	return r.provision(ctx, "provision", key, total, used, false)
}

// Reset replaces the key's total and used count like Memory.Provision does,
// whatever Redis holds. Reservations in flight are forgotten, so use it only
// when no edge is drawing on the key: after a sale, to take back units that
// crashed edges reserved and never committed, or in tests.
func (r *Redis) Reset(ctx context.Context, key lottery.StockKey, total, used int64) error {
	return r.provision(ctx, "reset", key, total, used, true)
}

func (r *Redis) provision(ctx context.Context, op string, key lottery.StockKey, total, used int64, force bool) error {
	if total < 0 || used < 0 || total > maxCount || used > maxCount {
		return &keyError{key: key, err: fmt.Errorf("%w: total %d and used %d must lie in 0..2^53", lottery.ErrInvalid, total, used)}
	}
	k := r.key(key)
	forced := 0
	if force {
		forced = 1
	}
	v, err := r.scripts.provision.do(ctx, r, k.adminKeys, total, used, forced)
	if err != nil {
		if redis.HasErrorPrefix(err, "SHARDS") {
			return &keyError{key: key, err: fmt.Errorf("%w: %w", lottery.ErrConflict, err)}
		}
		return r.fail(op, key, err)
	}
	for i := range k.empty {
		k.empty[i].Store(0)
	}
	if left, _ := v.(int64); left > 0 {
		k.freed()
	} else {
		k.epoch.Add(1)
		k.soldOut.Store(int64(r.now() + r.cfg.SoldOutTTL))
	}
	return nil
}

// Left returns what is left of the key's stock, total - used and never
// below zero, summed over the shards in one round trip. It answers an error
// wrapping lottery.ErrNotFound for an unknown key.
func (r *Redis) Left(ctx context.Context, key lottery.StockKey) (int64, error) {
	left, _, err := r.counts(ctx, "left", key)
	return left, err
}

// Trim sets the key's used count (summed over its shards) to toUsed if it
// is still expectUsed, and reports whether it did: the compare-and-set that
// lets the reconciliation of several edges give back units that crashed
// edges reserved and never committed, once.
func (r *Redis) Trim(ctx context.Context, key lottery.StockKey, expectUsed, toUsed int64) (bool, error) {
	if err := checkTrim(key, expectUsed, toUsed); err != nil {
		return false, err
	}
	k := r.key(key)
	v, err := r.scripts.trim.do(ctx, r, k.shards, expectUsed, toUsed)
	if err != nil {
		return false, r.fail("trim", key, err)
	}
	switch n, _ := v.(int64); n {
	case -1:
		return false, notFound(key)
	case 1:
		for i := range k.empty {
			k.empty[i].Store(0)
		}
		k.freed()
		return true, nil
	}
	return false, nil
}

// Used returns the key's used count as Redis holds it (committed and in
// flight), summed over the shards in one round trip, for reconciliation
// with the durable record. It answers an error wrapping lottery.ErrNotFound
// for an unknown key.
func (r *Redis) Used(ctx context.Context, key lottery.StockKey) (int64, error) {
	_, used, err := r.counts(ctx, "used", key)
	return used, err
}

func (r *Redis) counts(ctx context.Context, op string, key lottery.StockKey) (left, used int64, err error) {
	k := r.key(key)
	v, err := r.scripts.counts.do(ctx, r, k.shards)
	if err != nil {
		return 0, 0, r.fail(op, key, err)
	}
	vals, _ := v.([]any)
	if len(vals) != 2 {
		return 0, 0, r.fail(op, key, fmt.Errorf("counts script answered %v", v))
	}
	left, _ = vals[0].(int64)
	used, _ = vals[1].(int64)
	if left < 0 {
		return 0, 0, notFound(key)
	}
	return left, used, nil
}

// fail wraps an error of a Redis call with the operation and the key.
// Connection failures, timeouts, an exhausted pool, a closed adapter, an
// ended context and Redis answering that it cannot serve now (LOADING,
// BUSY, READONLY...) wrap lottery.ErrUnavailable; other server errors (a
// wrong type, a script bug) are returned as they are.
func (r *Redis) fail(op string, key lottery.StockKey, err error) error {
	return &keyError{key: key, err: fmt.Errorf("redis %s: %w", op, unavailable(err))}
}

// unavailable wraps err with lottery.ErrUnavailable unless it is a server
// error that retrying later would not fix.
func unavailable(err error) error {
	if isServerError(err) && !isTransientServerError(err) {
		return err
	}
	return fmt.Errorf("%w: %w", lottery.ErrUnavailable, err)
}

func isServerError(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && !errors.Is(err, redis.Nil)
}

// isTransientServerError reports the server errors that mean "not now".
func isTransientServerError(err error) bool {
	for _, p := range []string{"LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "OOM", "NOREPLICAS", "MISCONF"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

func isNoScript(err error) bool {
	return redis.HasErrorPrefix(err, "NOSCRIPT")
}

// script is a Lua script sent by digest (EVALSHA), or by source (EVAL)
// after Redis answered NOSCRIPT.
type script struct {
	src, sha string
}

func newScript(src string) *script {
	s := redis.NewScript(src)
	return &script{src: src, sha: s.Hash()}
}

// run queues the script on a pipeline.
func (s *script) run(ctx context.Context, pipe redis.Pipeliner, eval bool, keys []string, args ...any) *redis.Cmd {
	if eval {
		return pipe.Eval(ctx, s.src, keys, args...)
	}
	return pipe.EvalSha(ctx, s.sha, keys, args...)
}

// do runs the script directly, by digest first and by source on NOSCRIPT.
func (s *script) do(ctx context.Context, r *Redis, keys []string, args ...any) (any, error) {
	r.stats.roundTrips.Add(1)
	v, err := r.client.EvalSha(ctx, s.sha, keys, args...).Result()
	if err != nil && isNoScript(err) {
		r.stats.roundTrips.Add(1)
		v, err = r.client.Eval(ctx, s.src, keys, args...).Result()
	}
	return v, err
}

// redisScripts are the adapter's Lua scripts. Counters are hashes with
// fields t (total) and u (used); a key without t does not exist.
type redisScripts struct {
	reserve, release, counts, provision, claim, cleanup, trim *script
}

// newRedisScripts builds the scripts; salt, a Lua comment, changes their
// digests (tests use it to exercise the NOSCRIPT fallback).
func newRedisScripts(salt string) redisScripts {
	return redisScripts{
		reserve:   newScript(reserveLua + salt),
		release:   newScript(releaseLua + salt),
		counts:    newScript(countsLua + salt),
		provision: newScript(provisionLua + salt),
		claim:     newScript(claimLua + salt),
		cleanup:   newScript(cleanupLua + salt),
		trim:      newScript(trimLua + salt),
	}
}

// reserveLua takes one unit of one shard: it answers the used count after
// the reservation, 0 when the shard has nothing left, -1 when it is missing.
const reserveLua = `
local v = redis.call('HMGET', KEYS[1], 't', 'u')
if not v[1] then return -1 end
local u = tonumber(v[2]) or 0
if u >= tonumber(v[1]) then return 0 end
return redis.call('HINCRBY', KEYS[1], 'u', 1)
`

// releaseLua gives one unit back to the shard that holds the most beyond
// its total (the fullest), never below zero, and deletes the slot lock
// KEYS[n+1] if given. KEYS[1..n] are the shards, ARGV[1] is n. It answers
// {left over all shards, shard given to (1-based) or 0}, or {-1, 0} when a
// shard is missing.
const releaseLua = `
local n = tonumber(ARGV[1])
local t, u = {}, {}
local pick, best = 0, nil
for i = 1, n do
  local v = redis.call('HMGET', KEYS[i], 't', 'u')
  if not v[1] then return {-1, 0} end
  t[i] = tonumber(v[1])
  u[i] = tonumber(v[2]) or 0
  if u[i] > 0 and (best == nil or u[i] - t[i] > best) then
    pick, best = i, u[i] - t[i]
  end
end
if #KEYS > n then redis.call('DEL', KEYS[n + 1]) end
if pick > 0 then u[pick] = redis.call('HINCRBY', KEYS[pick], 'u', -1) end
local left = 0
for i = 1, n do
  if t[i] > u[i] then left = left + t[i] - u[i] end
end
return {left, pick}
`

// trimLua lowers the used count summed over the shards KEYS from ARGV[1]
// to ARGV[2], taking from the shards in KEYS order (each down to zero at
// most), only if the sum is still ARGV[1]. It answers 1 when it trimmed, 0 when the count moved, -1
// when a shard is missing.
const trimLua = `
local expect, to = tonumber(ARGV[1]), tonumber(ARGV[2])
local u, sum = {}, 0
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 't', 'u')
  if not v[1] then return -1 end
  u[i] = tonumber(v[2]) or 0
  sum = sum + u[i]
end
if sum ~= expect then return 0 end
local give = expect - to
for i = 1, #KEYS do
  if give <= 0 then break end
  local d = math.min(give, u[i])
  if d > 0 then
    redis.call('HINCRBY', KEYS[i], 'u', -d)
    give = give - d
  end
end
return 1
`

// countsLua answers {left, used} summed over the shards KEYS, or {-1, 0}
// when a shard is missing.
const countsLua = `
local left, used = 0, 0
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 't', 'u')
  if not v[1] then return {-1, 0} end
  local t, u = tonumber(v[1]), tonumber(v[2]) or 0
  if t > u then left = left + t - u end
  used = used + u
end
return {left, used}
`

// provisionLua sets a stock key: KEYS[1] is the meta hash (n shards, T
// total, w the highest durable count provisioned), KEYS[2..] the shards;
// ARGV is total, durable used, force. It keeps the live used count unless
// the key is missing, forced, or redefined (new total and a durable count
// below w), raises it to the durable count, then sets the shards' totals so
// that each shard's left is an even share of what is left overall (or, used
// above the total, the excess sits on the first shards, which Release drains
// first). It answers what is left.
const provisionLua = `
local function int(x) return string.format('%d', x) end
local n = #KEYS - 1
local T, d, force = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
local m = redis.call('HMGET', KEYS[1], 'n', 'T', 'w')
if m[1] and tonumber(m[1]) ~= n then
  return redis.error_reply('SHARDS the key is provisioned with ' .. m[1] .. ' shards, this edge uses ' .. n)
end
local u, U, live = {}, 0, false
for i = 1, n do
  local v = redis.call('HMGET', KEYS[i + 1], 't', 'u')
  u[i] = 0
  if v[1] then
    live = true
    u[i] = tonumber(v[2]) or 0
  end
  U = U + u[i]
end
local w = tonumber(m[3])
local reset = force or not live or (w ~= nil and d < w and T ~= tonumber(m[2]))
local function share(x, i)
  local q = math.floor(x / n)
  if i <= x % n then q = q + 1 end
  return q
end
if reset then
  for i = 1, n do u[i] = share(d, i) end
  U, w = d, d
else
  if d > U then
    local add = d - U
    for i = 1, n do u[i] = u[i] + share(add, i) end
    U = d
  end
  if w == nil or d > w then w = d end
end
local L = T - U
local excess = 0
if L < 0 then excess = -L end
for i = 1, n do
  local t
  if L >= 0 then
    t = u[i] + share(L, i)
  else
    local e = math.min(excess, u[i])
    t = u[i] - e
    excess = excess - e
  end
  redis.call('HSET', KEYS[i + 1], 't', int(t), 'u', int(u[i]))
end
redis.call('HSET', KEYS[1], 'n', int(n), 'T', int(T), 'w', int(w))
if L < 0 then return 0 end
return L
`

// claimLua finds a free slot for a ModeLock reservation whose slot ARGV[2]
// was locked: it tries the slots below, then above up to the total ARGV[3],
// locking the first free one (lock key ARGV[1]..slot, TTL ARGV[4] ms). The
// holders in flight are at most the used count, so a free slot exists unless
// locks outlived the count (a Reset). It answers the slot, or 0.
const claimLua = `
local base, s, t, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
for i = s - 1, 1, -1 do
  if redis.call('SET', base .. i, '1', 'PX', ttl, 'NX') then return i end
end
for i = s + 1, t do
  if redis.call('SET', base .. i, '1', 'PX', ttl, 'NX') then return i end
end
return 0
`

// cleanupLua deletes KEYS[1] unless it holds a total: the counter a ModeLock
// HINCRBY created on a missing key. A Provision in between made it real and
// it stays.
const cleanupLua = `
if redis.call('HEXISTS', KEYS[1], 't') == 0 then redis.call('DEL', KEYS[1]) end
return 0
`
