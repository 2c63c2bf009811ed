package mediaapi_test

import (
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// BenchmarkMedia100MiB uploads a 100 MiB file and downloads it again, both
// streamed, and reports the peak of the Go heap in use (server and client
// share this process) sampled every 5 ms: it must stay far below the file's
// size, since neither side may hold the file in memory.
func BenchmarkMedia100MiB(b *testing.B) {
	srv := ts.Start(b)
	alice := srv.Register(b, "alice")
	const size = 100 << 20
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	b.SetBytes(2 * size)
	for i := 0; b.Loop(); i++ {
		res := request(b, srv, alice.Token, "POST", upload, random(uint64(i), size), size, "application/octet-stream")
		mxc := jsonOf(b, res, 200, "").Get("content_uri").Str
		res = request(b, srv, alice.Token, "GET", v1+"/download/"+mediaPath(mxc), nil, 0, "")
		n, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil || n != size {
			b.Fatalf("downloaded %d bytes: %v", n, err)
		}
	}
	close(stop)
	<-done
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(base.HeapInuse)/(1<<20), "base-heap-MiB")
	// The process's peak RSS also counts SQLite's page caches and the WAL
	// index, which live outside the Go heap.
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if kb, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")))
				b.ReportMetric(float64(n)/1024, "peak-rss-MiB")
			}
		}
	}
}
