// Command redoubt-bench is a load tool for any Client-Server API server. It
// creates its users by shared-secret registration, runs fixed, seeded
// workloads, checks that what it measured really happened (every event
// stored, every sync woken, every message delivered), and prints one table.
//
//	redoubt-bench -url http://127.0.0.1:8008 -secret S [-pid N] [-db FILE|DIR] [-quick] [-keep-going]
//	redoubt-bench -compare DIR
//
// sidebyside.sh, beside it, runs several servers (Redoubt builds, Dendrite)
// in one interleaved run and prints the ratios with -compare.
package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

type config struct {
	url, secret, db  string
	pid              int
	quick, keepGoing bool
	only             map[string]bool
	prefix           string
	rng              *rand.Rand
	http             *http.Client
}

// row is one line of the result table.
type row struct {
	scenario, metric, value string
}

func main() {
	var cfg config
	var only string
	flag.StringVar(&cfg.url, "url", "http://127.0.0.1:8008", "base URL of the Client-Server API")
	flag.StringVar(&cfg.secret, "secret", "", "registration_shared_secret of the server")
	flag.IntVar(&cfg.pid, "pid", 0, "server process ID, for CPU and memory figures from /proc")
	flag.StringVar(&cfg.db, "db", "", "server database file (its WAL counted too) or data directory (every file in it), for bytes per event")
	flag.BoolVar(&cfg.keepGoing, "keep-going", false, "after a scenario fails, note it in the table and run the next")
	compareDir := flag.String("compare", "", "print the medians and ratios of the NAME.ROUND.md tables in this directory, and exit")
	flag.BoolVar(&cfg.quick, "quick", false, "small parameters (for CI: checks the tool works, measures little)")
	flag.StringVar(&only, "only", "", "comma-separated scenarios to run (send,redact,fanout,initial,messages,keys,todevice,users)")
	seed := flag.Int64("seed", 1, "seed of the workload")
	flag.Parse()
	if *compareDir != "" {
		if err := compare(*compareDir); err != nil {
			fmt.Fprintln(os.Stderr, "redoubt-bench:", err)
			os.Exit(1)
		}
		return
	}
	if cfg.secret == "" {
		fmt.Fprintln(os.Stderr, "redoubt-bench: -secret is required (the server's registration_shared_secret)")
		os.Exit(2)
	}
	cfg.only = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		if s != "" {
			cfg.only[s] = true
		}
	}
	cfg.rng = rand.New(rand.NewSource(*seed))
	cfg.prefix = fmt.Sprintf("bench%d", time.Now().UnixNano()%1e9)
	cfg.http = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 2048, MaxConnsPerHost: 0}}

	rows, err := run(context.Background(), &cfg)
	printTable(rows)
	if err != nil {
		fmt.Fprintln(os.Stderr, "redoubt-bench: FAILED:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg *config) ([]row, error) {
	var rows []row
	var failed error
	scenarios := []struct {
		name string
		fn   func(context.Context, *config) ([]row, error)
	}{
		{"send", benchSend},
		{"redact", benchRedact},
		{"fanout", benchFanout},
		{"initial", benchInitialSync},
		{"messages", benchMessages},
		{"keys", benchKeys},
		{"todevice", benchToDevice},
		{"users", benchUsers},
	}
	idle := procStats(cfg.pid)
	if cfg.pid != 0 {
		rows = append(rows, row{"server", "RSS idle (before the run)", fmt.Sprintf("%.1f MB", idle.rssMB)})
	}
	for _, s := range scenarios {
		if len(cfg.only) > 0 && !cfg.only[s.name] {
			continue
		}
		fmt.Fprintf(os.Stderr, "running %s…\n", s.name)
		r, err := s.fn(ctx, cfg)
		rows = append(rows, r...)
		if err != nil {
			failed = fmt.Errorf("%s: %w", s.name, err)
			if !cfg.keepGoing {
				return rows, failed
			}
			fmt.Fprintln(os.Stderr, "redoubt-bench:", failed)
			rows = append(rows, row{s.name, "FAILED", strings.ReplaceAll(err.Error(), "|", "/")})
		}
	}
	if cfg.pid != 0 {
		end := procStats(cfg.pid)
		rows = append(rows, row{"server", "RSS peak (whole run)", fmt.Sprintf("%.1f MB", end.peakMB)})
	}
	return rows, failed
}

func printTable(rows []row) {
	w1, w2 := len("scenario"), len("metric")
	for _, r := range rows {
		w1, w2 = max(w1, len(r.scenario)), max(w2, len(r.metric))
	}
	fmt.Printf("| %-*s | %-*s | %s |\n", w1, "scenario", w2, "metric", "value")
	fmt.Printf("|%s|%s|---|\n", strings.Repeat("-", w1+2), strings.Repeat("-", w2+2))
	for _, r := range rows {
		fmt.Printf("| %-*s | %-*s | %s |\n", w1, r.scenario, w2, r.metric, r.value)
	}
}

// encryptedBody is a realistic m.room.encrypted content of about 600 bytes.
func encryptedBody(rng *rand.Rand) map[string]any {
	cipher := make([]byte, 400)
	rng.Read(cipher)
	return map[string]any{
		"algorithm":  "m.megolm.v1.aes-sha2",
		"ciphertext": base64.RawStdEncoding.EncodeToString(cipher),
		"device_id":  "BENCHDEVICE",
		"sender_key": "r7NdCnWIzKCfkEG2xmjvk3y0JHcbsHcbtWkEn6rVVBc",
		"session_id": "4AjsLcYzTwK8ibg8gKyFNDtB7aOl9bU+kf1ArnkAtEE",
	}
}

// percentile returns the p-th percentile (0..1) of sorted durations in ms.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(float64(len(sorted)-1)*p)].Microseconds()) / 1000
}

func latencyRows(scenario string, lat []time.Duration) []row {
	slices.Sort(lat)
	return []row{{scenario, "latency p50 / p95 / p99", fmt.Sprintf("%.2f / %.2f / %.2f ms", percentile(lat, .5), percentile(lat, .95), percentile(lat, .99))}}
}
