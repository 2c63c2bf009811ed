// Package delayed holds the events clients schedule to be sent later
// (MSC4140). Element Call schedules its call-membership "leave" and keeps
// restarting the delay while the client is alive, so that a client that
// vanishes drops out of the call. Scheduled events live in the database and
// are sent, in order, by one scheduler goroutine; a restart loses none.
package delayed

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redoubt-systems/redoubt/caller"
	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
)

// Store is the part of storage.Q the scheduler uses: what it reads and
// writes.
type Store interface {
	AddDelayedEvent(ctx context.Context, d storage.DelayedEvent, txnID string) error
	CountDelayedEvents(ctx context.Context, userID string) (int, error)
	DelayIDByTxn(ctx context.Context, userID, deviceID, txnID string) (string, error)
	DelayedEvent(ctx context.Context, delayID string) (storage.DelayedEvent, error)
	DeleteDelayedEvent(ctx context.Context, delayID string) error
	DueDelayedEvents(ctx context.Context, ts int64, limit int) ([]storage.DelayedEvent, error)
	Membership(ctx context.Context, roomID, userID string) (string, int64, error)
	NextDelayedSend(ctx context.Context) (ts int64, ok bool, err error)
	RestartDelayedEvent(ctx context.Context, delayID string, ts int64) error
	UserDelayedEvents(ctx context.Context, userID string) ([]storage.DelayedEvent, error)
}

var _ Store = storage.Q{}

// Service schedules, manages and sends delayed events.
type Service struct {
	Cfg   *config.Config
	DB    storage.View[Store]
	Rooms *rooms.Service
	Log   *slog.Logger
	Now   func() time.Time

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	// sendMu keeps an event from being sent twice, by the scheduler and by
	// a client's "send" at the same moment.
	sendMu sync.Mutex
}

// Start runs the scheduler: events already due (the server was down when
// their time came) go out at once, the others when due.
func (s *Service) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.wake = make(chan struct{}, 1)
	s.done = make(chan struct{})
	go s.run(ctx)
}

// Close stops the scheduler and waits for it.
func (s *Service) Close() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Service) run(ctx context.Context) {
	defer close(s.done)
	for {
		wait := s.sendDue(ctx)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// sendDue sends every event that is due, soonest first, and returns how
// long to wait for the next one.
func (s *Service) sendDue(ctx context.Context) time.Duration {
	const idle = time.Hour
	for ctx.Err() == nil {
		due, err := s.DB.R().DueDelayedEvents(ctx, s.Now().UnixMilli(), 16)
		if err != nil {
			s.Log.Error("delayed events: reading the due ones", "err", err)
			return time.Second
		}
		if len(due) == 0 {
			break
		}
		for _, d := range due {
			if err := s.send(ctx, d); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return 5 * time.Second // try again later; the event stays
			}
		}
	}
	next, ok, err := s.DB.R().NextDelayedSend(ctx)
	if err != nil {
		return time.Second
	}
	if !ok {
		return idle
	}
	return min(max(time.Duration(next-s.Now().UnixMilli())*time.Millisecond, 0), idle)
}

// send sends a scheduled event as its user and removes it, in one
// transaction. One the room no longer accepts (the user left, lost the
// power) is dropped: its moment has passed.
func (s *Service) send(ctx context.Context, d storage.DelayedEvent) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	ev := rooms.Event{Sender: d.UserID, Type: d.Type, StateKey: d.StateKey, Content: d.Content}
	remove := func(q Store) error { return q.DeleteDelayedEvent(ctx, d.DelayID) }
	_, err := s.Rooms.SendWith(context.WithoutCancel(ctx), d.RoomID, ev, func(q storage.Q) error { return remove(q) })
	if err == nil || errors.Is(err, storage.ErrNotFound) {
		return err
	}
	refusal, internal := matrixerr.From(err)
	if internal {
		s.Log.Error("delayed events: sending", "err", err)
		return err
	}
	s.Log.Info("delayed events: dropped an event the room refused", "errcode", refusal.Code)
	return s.DB.Write(context.WithoutCancel(ctx), remove)
}

// Schedule stores an event to be sent after delay, and returns its delay
// ID. A repeated (device, txnID) returns the delay it made first.
func (s *Service) Schedule(ctx context.Context, dev *caller.Device, roomID string, ev rooms.Event, delay string) (string, error) {
	ms, err := strconv.ParseInt(delay, 10, 64)
	if err != nil || ms <= 0 {
		return "", matrixerr.InvalidParam("org.matrix.msc4140.delay must be a positive number of milliseconds")
	}
	max := s.Cfg.DelayedEvents.MaxDelay.D()
	if max == 0 {
		return "", matrixerr.Unrecognized("delayed events are off on this server")
	}
	if ms > max.Milliseconds() {
		return "", &matrixerr.Error{Kind: matrixerr.KindInvalid, Code: "M_UNKNOWN", Message: "the delay is longer than this server allows",
			Extra: map[string]any{"org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED", "org.matrix.msc4140.max_delay": max.Milliseconds()}}
	}
	if err := rooms.CheckContent(ev.Content); err != nil {
		return "", err
	}
	var id string
	err = s.DB.Write(ctx, func(q Store) error {
		if ev.TxnID != "" {
			prev, err := q.DelayIDByTxn(ctx, dev.UserID, dev.DeviceID, ev.TxnID)
			if err == nil {
				id = prev
				return nil
			} else if !errors.Is(err, storage.ErrNotFound) {
				return err
			}
		}
		if m, _, err := q.Membership(ctx, roomID, dev.UserID); err != nil {
			return err
		} else if m != "join" {
			return matrixerr.Forbidden("you are not in this room")
		}
		if n, err := q.CountDelayedEvents(ctx, dev.UserID); err != nil {
			return err
		} else if n >= s.Cfg.DelayedEvents.MaxPerUser {
			return matrixerr.LimitExceeded(time.Minute, "you have %d delayed events scheduled, the most this server allows", n)
		}
		id = newDelayID()
		return q.AddDelayedEvent(ctx, storage.DelayedEvent{DelayID: id, UserID: dev.UserID, DeviceID: dev.DeviceID, RoomID: roomID,
			Type: ev.Type, StateKey: ev.StateKey, Content: ev.Content, DelayMS: ms, SendTS: s.Now().UnixMilli() + ms}, ev.TxnID)
	})
	if err == nil {
		s.poke()
	}
	return id, err
}

// newDelayID is a delay's ID: it is what lets anyone holding it send,
// restart or cancel the event, so it is unguessable.
func newDelayID() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = letters[int(c)%len(letters)]
	}
	return "syd_" + string(out)
}

// List is a user's scheduled events, soonest first.
func (s *Service) List(ctx context.Context, userID string) ([]storage.DelayedEvent, error) {
	return s.DB.R().UserDelayedEvents(ctx, userID)
}

// Act cancels a scheduled event, restarts its delay, or sends it now.
// The delay ID is the capability: whoever holds it may act.
func (s *Service) Act(ctx context.Context, delayID, action string) error {
	var err error
	switch action {
	case "cancel":
		err = s.DB.Write(ctx, func(q Store) error { return q.DeleteDelayedEvent(ctx, delayID) })
	case "restart":
		err = s.DB.Write(ctx, func(q Store) error {
			d, err := q.DelayedEvent(ctx, delayID)
			if err != nil {
				return err
			}
			return q.RestartDelayedEvent(ctx, delayID, s.Now().UnixMilli()+d.DelayMS)
		})
	case "send":
		var d storage.DelayedEvent
		if d, err = s.DB.R().DelayedEvent(ctx, delayID); err == nil {
			err = s.send(ctx, d)
		}
	default:
		return matrixerr.InvalidParam("action must be cancel, restart or send")
	}
	if errors.Is(err, storage.ErrNotFound) {
		return matrixerr.NotFound("unknown delay_id")
	}
	if err == nil {
		s.poke()
	}
	return err
}
