package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flashlottery/lottery/stock"
)

// stockCollectors returns the counters of the Redis stock adapter
// (stock.RedisStats) as Prometheus metrics, or none for another backend.
// Round trips per draw, the figure `make bench` reports for the Redis
// profiles, is the rise of lottery_stock_redis_roundtrips_total over the
// rise of lottery_draws_total.
func stockCollectors(st stockStore) []prometheus.Collector {
	r, ok := st.(*stock.Redis)
	if !ok {
		return nil
	}
	counter := func(name, help string, f func(stock.RedisStats) uint64) prometheus.Collector {
		return counterFunc(name, help, func() uint64 { return f(r.Stats()) })
	}
	return []prometheus.Collector{
		counter("lottery_stock_redis_reservations_total", "Reservations Redis answered (a unit, sold out or not found).",
			func(s stock.RedisStats) uint64 { return s.Reservations }),
		counter("lottery_stock_redis_failures_total", "Reservations that failed (Redis unavailable, caller gone, adapter closed).",
			func(s stock.RedisStats) uint64 { return s.Failures }),
		counter("lottery_stock_redis_batches_total", "Pipelines sent by the reservation batcher.",
			func(s stock.RedisStats) uint64 { return s.Batches }),
		counter("lottery_stock_redis_roundtrips_total", "Round trips to Redis, batches included.",
			func(s stock.RedisStats) uint64 { return s.RoundTrips }),
		counter("lottery_stock_redis_abandoned_total", "Reservations whose caller stopped waiting before the answer.",
			func(s stock.RedisStats) uint64 { return s.Abandoned }),
		counter("lottery_stock_redis_given_back_total", "Units reserved for callers that had stopped waiting, given back.",
			func(s stock.RedisStats) uint64 { return s.GivenBack }),
	}
}
