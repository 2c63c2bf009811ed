package backup

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/redoubt-systems/redoubt/objectstore"
)

// replicaQueue is how many segments may wait for one destination (at one
// a second, four minutes) before it is taken out of the generation.
const replicaQueue = 256

// segment is a sealed segment on its way, or a media file (open).
type segment struct {
	gen, key string
	body     []byte
	read     time.Time // when its frames were read from the WAL
	open     func() (io.ReadCloser, error)
}

// replica sends one destination its segments, in order, on a goroutine of
// its own, so that a destination slow or down delays no other.
type replica struct {
	store  *objectstore.Store
	log    *slog.Logger
	queue  chan segment
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	gen     string    // the generation it holds every segment of ("": none)
	through time.Time // what it holds was read from the WAL by then
	queued  int
	lagging bool // an error was logged about its lag
}

func newReplica(s *objectstore.Store, log *slog.Logger, now time.Time) *replica {
	d := &replica{store: s, log: log, queue: make(chan segment, replicaQueue), done: make(chan struct{}), through: now}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	go d.run()
	return d
}

func (d *replica) run() {
	defer close(d.done)
	for seg := range d.queue {
		d.mu.Lock()
		current := d.gen == seg.gen
		d.mu.Unlock()
		switch {
		case !current:
		case seg.open != nil:
			// A media file that did not get there is sent with the next
			// generation; the segments go on meanwhile.
			if err := putStream(d.ctx, d.store, seg.key, seg.open); err != nil && !errors.Is(err, fs.ErrNotExist) {
				d.log.Warn("continuous backup: a media file was not sent; the next generation sends it", "destination", d.store.Name, "error", err)
			}
		default:
			err := put(d.ctx, d.store, seg.key, seg.body)
			d.mu.Lock()
			if err != nil {
				d.leave(seg.gen, "a segment could not be sent", err)
			} else {
				d.through = seg.read
			}
			d.mu.Unlock()
		}
		d.mu.Lock()
		d.queued--
		d.mu.Unlock()
	}
}

// send queues a segment of the generation it holds.
func (d *replica) send(seg segment) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gen != seg.gen {
		return
	}
	select {
	case d.queue <- seg:
		d.queued++
	default:
		d.leave(seg.gen, "too many segments wait for it", nil)
	}
}

// leave takes it out of gen until a new generation brings it back; mu held.
func (d *replica) leave(gen, why string, err error) {
	if d.gen == gen {
		d.gen = ""
		d.log.Error("continuous backup: a destination missed a segment; it rejoins with a new generation",
			"destination", d.store.Name, "reason", why, "error", err)
	}
}

// join has it hold a generation whose base and first segments it has.
func (d *replica) join(gen string, through time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen, d.through = gen, through
}

// in reports whether it holds gen.
func (d *replica) in(gen string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gen == gen
}

// lag is how far it is behind gen's segments read by now (0: it holds all).
func (d *replica) lag(gen string, now time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if gen != "" && d.gen == gen && d.queued == 0 {
		return 0
	}
	return max(now.Sub(d.through), 0)
}

// close sends what is queued, giving up after wait.
func (d *replica) close(wait time.Duration) {
	close(d.queue)
	select {
	case <-d.done:
	case <-time.After(wait):
		d.cancel()
		<-d.done
	}
	d.cancel()
	d.store.CloseIdle()
}
