package invoice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/flashlottery/lottery/lottery"
)

// Defaults shared by the broker, the producer and the consumer.
const (
	// DefaultTopic is the invoice topic (the seed's lottery_invoice).
	DefaultTopic = "lottery_invoice"
	// DefaultGroup is the consumer group of the award distributors.
	DefaultGroup = "lottery_invoice_distributor"
	// DefaultPartitions is the partition count of a topic the embedded broker seeds.
	DefaultPartitions = 4
	// DefaultBrokerAddr makes the embedded broker pick a free loopback port.
	DefaultBrokerAddr = "127.0.0.1:0"
	// DefaultRetention is how long the embedded broker keeps a message:
	// Kafka's default log.retention.ms.
	DefaultRetention = 7 * 24 * time.Hour
	// maxRetentionCheck bounds the interval between two retention passes.
	maxRetentionCheck = 5 * time.Minute
)

// BrokerConfig configures the embedded Kafka-protocol broker.
type BrokerConfig struct {
	// Addr is the host:port to listen on and to advertise to clients;
	// "127.0.0.1:0" (the default) picks a free loopback port. Clients
	// connect to the address the listener reports, so bind a concrete host
	// when clients run elsewhere.
	Addr string
	// DataDir, when set, persists the log, committed group offsets and
	// producer ids there; a broker started again on the same directory
	// resumes with them. Empty keeps everything in memory.
	DataDir string
	// SyncWrites fsyncs every produced batch (DataDir only). Without it
	// writes go to the OS page cache and are synced on segment roll and
	// Close, like Kafka's default: a process crash loses nothing, a machine
	// crash may lose the last batches.
	SyncWrites bool
	// Topic is the topic to create if it does not exist (default DefaultTopic).
	Topic string
	// Partitions is the new topic's partition count (default DefaultPartitions).
	// An existing topic keeps its count.
	Partitions int
	// Retention is how long a message is kept (default DefaultRetention).
	// The broker drops a partition's oldest batches once all their messages
	// are older: from memory at once, from disk a whole segment file (100
	// MiB) at a time. Without it the log and its in-memory index grew with
	// every invoice (about 250 bytes of disk and 12 of memory each,
	// measured). A distributor stopped for longer than this loses the
	// invoices it did not read: their orders stay with grant_state 0 (see
	// the activity audit).
	Retention time.Duration
	// Logger receives the broker's warnings and errors (default: discarded).
	Logger *slog.Logger
}

// Broker is the embedded Kafka-protocol broker of the default mode: one
// kfake node speaking the Kafka wire protocol, which sarama drives like a
// real cluster.
type Broker struct {
	cluster *kfake.Cluster
	addrs   []string
	topic   string
	lock    *os.File // the data dir's lock, nil without one
	once    sync.Once
	// quit stops the retention goroutine; done is closed when it returned.
	quit, done chan struct{}
}

// StartBroker starts a one-node broker listening on cfg.Addr and makes sure
// cfg.Topic exists. Close stops it.
func StartBroker(cfg BrokerConfig) (*Broker, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultBrokerAddr
	}
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = DefaultPartitions
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Retention < time.Millisecond {
		return nil, fmt.Errorf("invoice: broker retention %s: %w: want at least 1ms", cfg.Retention, lottery.ErrInvalid)
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("invoice: broker address %q: %w: %w", cfg.Addr, lottery.ErrInvalid, err)
	}
	addr := cfg.Addr
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ClusterID("lottery"),
		// kfake always asks for 127.0.0.1:port; listen where we were told to.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, addr) }),
		kfake.SeedTopics(int32(cfg.Partitions), cfg.Topic),
		kfake.DefaultNumPartitions(cfg.Partitions),
		// kfake reads the retention from here but enforces it only when
		// asked (ApplyRetention): the goroutine of retain does.
		kfake.BrokerConfigs(map[string]string{"log.retention.ms": strconv.FormatInt(cfg.Retention.Milliseconds(), 10)}),
	}
	if cfg.Logger != nil {
		opts = append(opts, kfake.WithLogger(kfakeLogger{cfg.Logger}))
	}
	var lock *os.File
	if cfg.DataDir != "" {
		var err error
		if lock, err = lockDir(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("invoice: broker data dir: %w", err)
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
		if cfg.SyncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		unlock(lock)
		return nil, fmt.Errorf("invoice: start broker on %s: %w: %w", cfg.Addr, lottery.ErrUnavailable, err)
	}
	// A data dir from an earlier run skips the seeding: create the topic
	// if that run did not have it.
	if c.TopicInfo(cfg.Topic) == nil {
		if err := c.CreateTopic(cfg.Topic, int32(cfg.Partitions), nil); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			c.Close()
			unlock(lock)
			return nil, fmt.Errorf("invoice: create topic %s: %w", cfg.Topic, err)
		}
	}
	b := &Broker{cluster: c, addrs: c.ListenAddrs(), topic: cfg.Topic, lock: lock, quit: make(chan struct{}), done: make(chan struct{})}
	go b.retain(min(cfg.Retention/4, maxRetentionCheck))
	return b, nil
}

// retain applies the retention every interval until Close. A pass drops
// whole batches whose newest message is older than the retention, so a
// message lives between the retention and the retention plus one interval.
func (b *Broker) retain(every time.Duration) {
	defer close(b.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.cluster.ApplyRetention()
		case <-b.quit:
			return
		}
	}
}

// Held returns how many messages the broker holds over the partitions of
// its topic: those produced and not yet dropped by the retention.
func (b *Broker) Held() int64 {
	var n int64
	for _, p := range b.cluster.PartitionInfos(b.topic) {
		n += p.HighWatermark - p.LogStartOffset
	}
	return n
}

// Addrs returns the addresses clients bootstrap from.
func (b *Broker) Addrs() []string { return append([]string(nil), b.addrs...) }

// Topic returns the invoice topic the broker was started with.
func (b *Broker) Topic() string { return b.topic }

// Close stops the broker, drops its client connections and, with a data
// dir, writes its state there and releases the dir. It is safe to call more
// than once.
func (b *Broker) Close() {
	b.once.Do(func() {
		close(b.quit)
		<-b.done
		b.cluster.Close()
		unlock(b.lock)
	})
}

func unlock(f *os.File) {
	if f != nil {
		f.Close() // closing the descriptor drops the lock
	}
}

// kfakeLogger forwards kfake's log lines to slog. kfake logs every request
// at info, so its info and debug lines go to slog's debug level.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var sl slog.Level
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	default:
		sl = slog.LevelDebug
	}
	ctx := context.Background()
	if !k.l.Enabled(ctx, sl) {
		return
	}
	k.l.Log(ctx, sl, fmt.Sprintf(format, args...), "component", "kfake")
}
