package backup_test

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/redoubt-systems/redoubt/backup"
	"github.com/redoubt-systems/redoubt/export"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// peakHeap samples the Go heap in use every 5 ms until stop is called.
func peakHeap() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var m runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	return func() uint64 { close(done); <-finished; return peak.Load() }
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkBackupAndExport1GB builds an instance of over 1 GB (ten 100 MiB
// uploads of incompressible bytes, like encrypted attachments, and a few
// thousand events), then backs it up and exports it, reporting each one's
// throughput over the database file's size and the peak Go heap.
// Run once: go test ./backup -run X -bench 1GB -benchtime 1x
func BenchmarkBackupAndExport1GB(b *testing.B) {
	srv := ts.Start(b)
	alice := srv.Register(b, "alice")
	room := alice.CreateRoom(b, nil)
	for i := range 2000 {
		alice.Send(b, room, "message number "+string(rune('a'+i%26)))
	}
	for i := range 10 {
		req, _ := http.NewRequest("POST", srv.URL+"/_matrix/media/v3/upload", io.LimitReader(rand.NewChaCha8([32]byte{byte(i)}), 100<<20))
		req.ContentLength = 100 << 20
		req.Header.Set("Authorization", "Bearer "+alice.Token)
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 200 {
			b.Fatalf("upload: %v", err)
		}
		res.Body.Close()
	}
	if err := srv.DB.Checkpoint(context.Background()); err != nil {
		b.Fatal(err)
	}
	info, err := os.Stat(srv.Cfg.Database)
	if err != nil {
		b.Fatal(err)
	}
	size := float64(info.Size()) / (1 << 20)
	id, _ := age.GenerateX25519Identity()
	runtime.GC()
	b.ResetTimer()

	stop := peakHeap()
	start := time.Now()
	var out countWriter
	if _, err := backup.Write(context.Background(), srv.DB, srv.Cfg.Database, "", srv.Cfg.ServerName, []age.Recipient{id.Recipient()}, &out, time.Now()); err != nil {
		b.Fatal(err)
	}
	backupSecs, backupPeak := time.Since(start).Seconds(), stop()

	runtime.GC()
	stop = peakHeap()
	start = time.Now()
	var exp countWriter
	if _, err := export.Write(context.Background(), srv.DB, srv.Media, srv.Cfg.ServerName, export.Options{}, b.TempDir(), &exp, time.Now()); err != nil {
		b.Fatal(err)
	}
	exportSecs, exportPeak := time.Since(start).Seconds(), stop()
	b.StopTimer()

	b.ReportMetric(size, "db-MiB")
	b.ReportMetric(size/backupSecs, "backup-MB/s")
	b.ReportMetric(float64(backupPeak)/(1<<20), "backup-peak-heap-MiB")
	b.ReportMetric(size/exportSecs, "export-MB/s")
	b.ReportMetric(float64(exportPeak)/(1<<20), "export-peak-heap-MiB")
}
