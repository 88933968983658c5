package invoice

import (
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/flashlottery/lottery/lottery"
)

// EnsureTopic creates topic on the cluster of brokers unless it exists,
// with partitions partitions and a replication factor of three, or the
// number of brokers when there are fewer. A cluster that refuses to create
// topics (auto-creation off and no right to create) answers an error; an
// operator then creates the topic by hand. timeout bounds each network
// call.
func EnsureTopic(brokers []string, topic string, partitions int, timeout time.Duration) error {
	if len(brokers) == 0 || topic == "" || partitions <= 0 {
		return fmt.Errorf("invoice: ensure topic: %w: brokers, topic and partitions are required", lottery.ErrInvalid)
	}
	admin, err := newAdmin(brokers, timeout)
	if err != nil {
		return fmt.Errorf("invoice: ensure topic %s on %v: %w: %w", topic, brokers, lottery.ErrUnavailable, err)
	}
	defer admin.Close()
	nodes, _, err := admin.DescribeCluster()
	if err != nil {
		return fmt.Errorf("invoice: ensure topic %s: describe cluster: %w: %w", topic, lottery.ErrUnavailable, err)
	}
	detail := &sarama.TopicDetail{NumPartitions: int32(partitions), ReplicationFactor: int16(min(3, max(len(nodes), 1)))}
	err = admin.CreateTopic(topic, detail, false)
	if err == nil || errors.Is(err, sarama.ErrTopicAlreadyExists) {
		return nil
	}
	return fmt.Errorf("invoice: create topic %s (%d partitions, replication %d): %w", topic, partitions, detail.ReplicationFactor, err)
}

// newAdmin connects a cluster admin whose every network call is bounded by
// timeout.
func newAdmin(brokers []string, timeout time.Duration) (sarama.ClusterAdmin, error) {
	sc := sarama.NewConfig()
	sc.ClientID = DefaultClientID
	sc.Net.DialTimeout, sc.Net.ReadTimeout, sc.Net.WriteTimeout = timeout, timeout, timeout
	sc.Admin.Timeout = timeout
	return sarama.NewClusterAdmin(brokers, sc)
}
