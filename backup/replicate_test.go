package backup_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"go.uber.org/goleak"

	"github.com/redoubt-systems/redoubt/backup"
	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/internal/s3test"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
	"github.com/redoubt-systems/redoubt/objectstore"
)

// fastReplication shortens the replicator's periods for a test.
func fastReplication(t *testing.T) {
	every, rejoin := backup.ReplicateEvery, backup.RejoinAfter
	attempts, delay := backup.Retry.Attempts, backup.Retry.Delay
	t.Cleanup(func() {
		backup.ReplicateEvery, backup.RejoinAfter = every, rejoin
		backup.Retry.Attempts, backup.Retry.Delay = attempts, delay
	})
	backup.ReplicateEvery, backup.RejoinAfter = 50*time.Millisecond, 300*time.Millisecond
	backup.Retry.Attempts, backup.Retry.Delay = 2, 10*time.Millisecond
}

// sent is an event a client had acknowledged, and when (at), having
// asked for it at start.
type sent struct {
	id        string
	at, start time.Time
}

// load sends from several clients into their rooms (one of them redacting
// now and then, so that the scrubber checkpoints) until stop is closed.
func load(t *testing.T, srv *ts.Server, stop chan struct{}) func() []sent {
	var mu sync.Mutex
	var acked []sent
	var wg sync.WaitGroup
	for i := range 4 {
		c := srv.Register(t, fmt.Sprintf("writer%d", i))
		room := c.CreateRoom(t, nil)
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				id := c.Send(t, room, strings.Repeat("payload ", 40)+fmt.Sprint(n))
				if i == 0 && n%10 == 9 {
					c.MustDo(t, "PUT", "/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/redact/"+ts.PathEscape(id)+"/r"+fmt.Sprint(n), map[string]any{}, 200)
				}
				mu.Lock()
				acked = append(acked, sent{id, time.Now(), start})
				mu.Unlock()
			}
		})
	}
	return func() []sent {
		wg.Wait()
		return acked
	}
}

// restoreAt restores from a store as of at (zero: the newest) and reports
// which of the events are there.
func restoreAt(t *testing.T, s *objectstore.Store, at time.Time, id age.Identity, events []sent) (present map[string]bool, point backup.Point) {
	t.Helper()
	ctx := context.Background()
	point, err := backup.Choose(ctx, s, at)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := backup.RestorePoint(ctx, s, point, []age.Identity{id}, dir, false); err != nil {
		t.Fatalf("restore %s from %s: %v", point, s, err)
	}
	restored := ts.Start(t, func(c *config.Config) { c.Database = filepath.Join(dir, "redoubt.db") })
	present = map[string]bool{}
	for _, e := range events {
		var n int
		if err := restored.DB.RawRead(ctx, "SELECT count(*) FROM events WHERE event_id = '"+e.id+"'", &n); err != nil {
			t.Fatal(err)
		}
		present[e.id] = n == 1
	}
	return present, point
}

// The changes reach both stores within about a second under sending load,
// across checkpoints and WAL restarts: a restore from either, taken while
// the server goes on, holds every event acknowledged a second before, and
// one to a point in time holds what was sent before it and nothing after.
func TestContinuous(t *testing.T) {
	fastReplication(t)
	srv, id, _, stores := offsite(t)
	if err := srv.Replicator.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	wait := load(t, srv, stop)
	time.Sleep(2500 * time.Millisecond)
	mid := time.Now()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	events := wait()
	time.Sleep(500 * time.Millisecond) // ten rounds
	if lag, ok := srv.Replicator.Lag("eu"); !ok || lag != 0 {
		t.Fatalf("lag %v %v", lag, ok)
	}
	for _, s := range stores {
		present, point := restoreAt(t, s, time.Time{}, id, events)
		missing := 0
		for _, e := range events {
			if !present[e.id] {
				missing++
			}
		}
		t.Logf("%s: %s; %d events, %d missing", s, point, len(events), missing)
		// (Its time may be before end: the last commit can be read before
		// the last answer reaches its client.)
		if point.Generation == nil || missing != 0 {
			t.Fatalf("%s: restored %s, %d of %d events missing", s, point, missing, len(events))
		}
	}
	present, point := restoreAt(t, stores[0], mid, id, events)
	for _, e := range events {
		switch {
		case e.at.Before(mid.Add(-1500*time.Millisecond)) && !present[e.id]: // a round may be slow under -race
			t.Errorf("sent at %s, before %s, missing (restored %s)", e.at.Format("15:04:05.000"), mid.Format("15:04:05.000"), point)
		case e.start.After(mid) && present[e.id]:
			// Asked for after mid, so committed after it too: only
			// segments read at or before mid were applied.
			t.Errorf("sent at %s, after %s, present", e.start.Format("15:04:05.000"), mid.Format("15:04:05.000"))
		}
	}
}

// A destination down misses segments and is reported behind; once back it
// rejoins with a new generation and restores the newest state. Segments
// altered or missing are refused.
func TestContinuousDestinationDown(t *testing.T) {
	fastReplication(t)
	srv, id, s3, stores := offsite(t)
	if err := srv.Replicator.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, nil)
	alice.Send(t, room, "before")
	waitCaughtUp(t, srv, "us")
	s3[1].Stop()
	during := []sent{{id: alice.Send(t, room, "while us was down")}}
	// Out of the generation once its retries fail: behind from then on.
	deadline := time.Now().Add(10 * time.Second)
	for lag, _ := srv.Replicator.Lag("us"); lag < 2*backup.RejoinAfter; lag, _ = srv.Replicator.Lag("us") {
		if time.Now().After(deadline) {
			t.Fatalf("the destination that is down is %v behind", lag)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if lag, _ := srv.Replicator.Lag("eu"); lag > backup.RejoinAfter {
		t.Fatalf("eu is %v behind while us is down", lag)
	}
	s3[1].Start()
	after := []sent{{id: alice.Send(t, room, "after it came back")}}
	waitCaughtUp(t, srv, "us")
	for range 3 {
		after = append(after, sent{id: alice.Send(t, room, "and more")})
		time.Sleep(2 * backup.ReplicateEvery)
	}
	waitCaughtUp(t, srv, "us")
	for _, s := range stores {
		present, point := restoreAt(t, s, time.Time{}, id, append(during, after...))
		for _, e := range append(during, after...) {
			if !present[e.id] {
				t.Fatalf("%s: restored %s without what was sent: %v", s, point, present)
			}
		}
	}
	gens, err := backup.Generations(context.Background(), stores[0])
	if err != nil || len(gens) < 2 {
		t.Fatalf("no new generation brought us back: %+v %v", gens, err)
	}
	g := gens[len(gens)-1]
	if len(g.Segments) < 2 {
		t.Fatalf("generation %s has %d segments", g.Name, len(g.Segments))
	}
	// An altered segment, and one cut short, are refused.
	seg := s3[0].Object("eu-backups", "tenant-acme/"+g.Segments[1].Key)
	orig, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	damaged := slices.Clone(orig)
	damaged[len(damaged)/2] ^= 1
	os.WriteFile(seg, damaged, 0o600)
	if err := restoreFrom(t, stores[0], time.Time{}, id, t.TempDir()); err == nil || !strings.Contains(err.Error(), "segment 1 is damaged") {
		t.Fatalf("an altered segment: %v", err)
	}
	os.WriteFile(seg, orig[:len(orig)-10], 0o600)
	if err := restoreFrom(t, stores[0], time.Time{}, id, t.TempDir()); err == nil || !strings.Contains(err.Error(), "segment 1 is damaged") {
		t.Fatalf("a segment cut short: %v", err)
	}
	os.WriteFile(seg, orig, 0o600)
	if err := restoreFrom(t, stores[0], time.Time{}, identity(t), t.TempDir()); err == nil || !strings.Contains(err.Error(), "not encrypted to the given identity") {
		t.Fatalf("a wrong key: %v", err)
	}
}

func waitCaughtUp(t *testing.T, srv *ts.Server, dest string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	time.Sleep(3 * backup.ReplicateEvery)
	for lag, ok := srv.Replicator.Lag(dest); !ok || lag != 0; lag, ok = srv.Replicator.Lag(dest) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: lag %v", dest, lag)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Once the server has closed, nothing the replicator started runs on.
func TestContinuousStops(t *testing.T) {
	fastReplication(t)
	srv, _, _, _ := offsite(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	if err := srv.Replicator.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	alice := srv.Register(t, "alice")
	alice.Send(t, alice.CreateRoom(t, nil), "shipped as the server stops")
	srv.Stop()
}

// With media.path, media files reach the destinations on their own: those
// stored before a generation began are in it, those stored since are sent
// as they come, and a restore brings back each, checked against its
// SHA-256; one the destination lacks is left out, and said so.
func TestContinuousMedia(t *testing.T) {
	fastReplication(t)
	srv, id, s3, stores := offsite(t, func(c *config.Config) { c.Media.Path = filepath.Join(t.TempDir(), "media") })
	alice := srv.Register(t, "alice")
	upload := func(body string) string {
		return alice.MustDo(t, "POST", "/_matrix/media/v3/upload", body, 200).Get("content_uri").Str
	}
	before := upload("a file stored before continuous backup began")
	if err := srv.Replicator.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, srv, "eu")
	after := upload("a file stored since")
	lost := upload("a file whose object goes missing")
	waitCaughtUp(t, srv, "eu")
	time.Sleep(5 * backup.ReplicateEvery) // the media goroutines
	gens, err := backup.Generations(context.Background(), stores[0])
	if err != nil || len(gens) == 0 {
		t.Fatal(gens, err)
	}
	mediaID := func(mxc string) string { return mxc[strings.LastIndex(mxc, "/")+1:] }
	if err := os.Remove(s3[0].Object("eu-backups", "tenant-acme/generations/"+gens[len(gens)-1].Name+"/media/"+mediaID(lost))); err != nil {
		t.Fatal(err)
	}
	for i, s := range stores {
		dir := t.TempDir()
		point, err := backup.Choose(context.Background(), s, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := backup.RestorePoint(context.Background(), s, point, []age.Identity{id}, dir, false)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[int]int{0: 1, 1: 0}[i]; len(m.MediaMissing) != want {
			t.Fatalf("%s: missing %v", s, m.MediaMissing)
		}
		restored := ts.Start(t, func(c *config.Config) {
			c.Database, c.Media.Path = filepath.Join(dir, "redoubt.db"), filepath.Join(dir, "media")
		})
		reader := restored.Login(t, "alice")
		for mxc, want := range map[string]string{before: "a file stored before continuous backup began", after: "a file stored since"} {
			res, err := reader.Raw("GET", "/_matrix/client/v1/media/download/"+strings.TrimPrefix(mxc, "mxc://"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || string(body) != want {
				t.Fatalf("%s: %s: %d %q", s, mxc, res.StatusCode, body)
			}
		}
		if i == 0 {
			reader.MustFail(t, "GET", "/_matrix/client/v1/media/download/"+strings.TrimPrefix(lost, "mxc://"), nil, 404, "M_NOT_FOUND")
		}
	}
}

// Continuous backup keeps the promise of redaction: within a second the
// redacted content is gone from the database file and its WAL (the hold
// is let go for the scrubber's checkpoint), as without it.
func TestContinuousKeepsRedactionErasure(t *testing.T) {
	fastReplication(t)
	srv, _, _, _ := offsite(t)
	if err := srv.Replicator.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, nil)
	canary := "canary-5e1d-replicated-" + "9ab2"
	for range 20 {
		alice.Send(t, room, "filler message")
	}
	id := alice.Send(t, room, canary)
	for range 20 {
		alice.Send(t, room, "filler message")
	}
	waitCaughtUp(t, srv, "eu")
	if !srv.InFiles(t, canary) {
		t.Fatal("canary not found before redaction: the test would prove nothing")
	}
	alice.MustDo(t, "PUT", "/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/redact/"+ts.PathEscape(id)+"/x", map[string]any{}, 200)
	srv.Forgotten(t, canary)
}

// lockedBuffer is a log both the server and the test use.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// What an operator watches: with one store down, its replication lag
// grows in the admin summary and in /metrics, an error is logged once it
// passes backup.max_lag and a line when it has caught up; scheduled
// snapshots are counted per destination, with the last success.
func TestContinuousLagReported(t *testing.T) {
	fastReplication(t)
	var log lockedBuffer
	id := identity(t)
	s3 := []*s3test.Store{s3test.Start(t, "eu-backups"), s3test.Start(t, "us-backups")}
	srv := ts.StartLogged(t, &log, func(c *config.Config) {
		c.Backup.Recipients = []string{id.Recipient().String()}
		c.Backup.Destinations = []config.Destination{s3[0].Destination("eu", "eu-backups", ""), s3[1].Destination("us", "us-backups", "")}
		c.Backup.MaxLag = config.Duration(time.Second)
	})
	srv.Cfg.Backup.Interval = config.Duration(200 * time.Millisecond) // below what the configuration allows
	if err := srv.Replicator.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.Backups.Start(t.Context())
	admin := srv.RegisterAdmin(t, "admin")
	waitCaughtUp(t, srv, "us")
	s3[1].Stop()
	admin.Send(t, admin.CreateRoom(t, nil), "while us is down")
	metrics := httptest.NewServer(srv.Metrics.Handler())
	defer metrics.Close()
	scrape := func() string {
		res, err := metrics.Client().Get(metrics.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(log.String(), "a destination is behind by more than backup.max_lag") ||
		!strings.Contains(scrape(), `redoubt_backup_destination_runs_total{destination="us",result="error"}`) {
		if time.Now().After(deadline) {
			t.Fatalf("no error about the lag, or no failed run counted:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	summary := admin.MustDo(t, "GET", "/_redoubt/admin/v1/summary", nil, 200).Get("backup_destinations")
	if us := summary.Get("1"); us.Get("name").Str != "us" || us.Get("replication_lag_ms").Int() < 1000 {
		t.Fatalf("summary: %s", summary.Raw)
	}
	out := scrape()
	for _, want := range []string{`redoubt_backup_replication_lag_seconds{destination="eu"}`, `redoubt_backup_replication_lag_seconds{destination="us"}`,
		`redoubt_backup_destination_last_success_timestamp_seconds{destination="eu"}`, `redoubt_backup_destination_runs_total{destination="eu",result="ok"}`} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	s3[1].Start()
	waitCaughtUp(t, srv, "us")
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), "a destination caught up") {
		if time.Now().After(deadline) {
			t.Fatal("no line when us caught up")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
