package lottery

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Snowflake generates 63-bit ids: 41 bits of milliseconds since Epoch, 10
// bits of node and 12 bits of sequence. It is lock-free (one CAS per id) and
// never goes backwards: when the clock steps back or the sequence of a
// millisecond is used up, it borrows the next millisecond.
type Snowflake struct {
	node  int64
	state atomic.Int64 // ms<<12 | seq of the last id
	now   func() time.Time
}

// Epoch is the snowflake epoch, 2024-01-01 UTC.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// MaxNode is the largest node number a Snowflake accepts.
const MaxNode = 1<<10 - 1

// NewSnowflake returns a generator for node (0..MaxNode).
func NewSnowflake(node int64) (*Snowflake, error) {
	if node < 0 || node > MaxNode {
		return nil, fmt.Errorf("%w: snowflake node %d outside 0..%d", ErrInvalid, node, MaxNode)
	}
	return &Snowflake{node: node, now: time.Now}, nil
}

// Node returns the generator's node number.
func (s *Snowflake) Node() int64 { return s.node }

// Next returns a new id, unique for this node.
func (s *Snowflake) Next() int64 {
	for {
		old := s.state.Load()
		ms := s.now().Sub(Epoch).Milliseconds()
		next := ms << 12
		if next <= old {
			next = old + 1 // same or earlier millisecond: take the next sequence (may roll into the next ms)
		}
		if s.state.CompareAndSwap(old, next) {
			return (next>>12)<<22 | s.node<<12 | next&0xfff
		}
	}
}
