package retention_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
	"github.com/redoubt-systems/redoubt/rooms"
)

// BenchmarkPruneWhileSending prunes 100,000 old events (in 16 rooms) while
// a client sends messages through the API one after another, and reports
// the pruning time and the client's send latencies during it: the pruner
// works in small transactions so that sends do not wait behind it.
// Run it once: go test ./retention -run X -bench PruneWhileSending -benchtime 1x
func BenchmarkPruneWhileSending(b *testing.B) {
	const total, roomCount = 100_000, 16
	srv := ts.Start(b, retentionCfg)
	alice := srv.Register(b, "alice")
	ctx := context.Background()
	ciphertext := make([]byte, 600)
	for i := range ciphertext {
		ciphertext[i] = 'A' + byte(i%26)
	}
	content := json.RawMessage(`{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"` + string(ciphertext) + `"}`)
	var wg sync.WaitGroup
	for range roomCount {
		room := alice.CreateRoom(b, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range total / roomCount {
				if _, err := srv.Rooms.Send(ctx, room, rooms.Event{Sender: alice.UserID, Type: "m.room.encrypted", Content: content}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	srv.Clock.Advance(31 * day)
	live := alice.CreateRoom(b, nil)

	b.ResetTimer()
	done, stopSending := make(chan struct{}), make(chan struct{})
	var latencies []time.Duration
	go func() {
		defer close(done)
		for {
			start := time.Now()
			alice.Send(b, live, "while pruning")
			latencies = append(latencies, time.Since(start))
			select {
			case <-stopSending:
				return
			default:
			}
		}
	}()
	start := time.Now()
	st, err := srv.Retention.Prune(ctx)
	elapsed := time.Since(start)
	close(stopSending)
	<-done
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if st.Events < total {
		b.Fatalf("pruned %d events", st.Events)
	}
	slices.Sort(latencies)
	b.ReportMetric(elapsed.Seconds(), "prune-s")
	b.ReportMetric(float64(st.Events), "events-pruned")
	b.ReportMetric(float64(len(latencies)), "sends")
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "send-p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "send-p99-ms")
	b.ReportMetric(float64(latencies[len(latencies)-1].Microseconds())/1000, "send-max-ms")
}
