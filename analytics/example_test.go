package analytics_test

import (
	"context"
	"fmt"
	"time"

	"github.com/flashlottery/lottery/analytics"
	"github.com/flashlottery/lottery/lottery"
)

// Example wires the default analytics path: draws are recorded into a Sink,
// whose flusher goroutine (owned here, stopped by cancel) delivers them to
// the embedded store, which answers the summary.
func Example() {
	store, err := analytics.OpenEmbedded("") // a directory makes it durable
	if err != nil {
		panic(err)
	}
	defer store.Close()
	sink := analytics.NewSink(store, analytics.SinkConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sink.Run(ctx)
	}()

	at := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		e := lottery.Event{At: at, ActivityID: 100001, UserID: fmt.Sprint("user-", i), Outcome: lottery.OutcomeLose, LatencyUS: 300}
		if i%4 == 0 {
			e.Outcome, e.AwardID = lottery.OutcomeWin, "coupon-10"
		}
		sink.Record(e) // never blocks
	}
	cancel() // shutdown: the final flush stores what is buffered
	<-done

	sum, err := store.Summary(context.Background(), 100001, time.Time{}, time.Time{})
	if err != nil {
		panic(err)
	}
	fmt.Println(sum.Draws, sum.Wins, sum.WinRate, sum.Awards, sink.Stats().Flushed)
	// Output: 10 3 0.3 map[coupon-10:3] 10
}
