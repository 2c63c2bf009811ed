// Package delayed holds the events clients schedule to be sent later
// (MSC4140). Element Call schedules its call-membership "leave" and keeps
// restarting the delay while the client is alive, so that a client that
// vanishes drops out of the call. Scheduled events live in the database and
// are sent, in order, by one scheduler goroutine; a restart loses none.
package delayed

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
)

// Service schedules, manages and sends delayed events.
type Service struct {
	Cfg   *config.Config
	DB    *storage.DB
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
	remove := func(q storage.Q) error { return q.DeleteDelayedEvent(ctx, d.DelayID) }
	_, err := s.Rooms.SendWith(context.WithoutCancel(ctx), d.RoomID, ev, remove)
	if err == nil || errors.Is(err, storage.ErrNotFound) {
		return err
	}
	status := httpapi.StatusOf(err)
	if status >= 500 {
		s.Log.Error("delayed events: sending", "err", err)
		return err
	}
	s.Log.Info("delayed events: dropped an event the room refused", "status", status)
	return s.DB.Write(context.WithoutCancel(ctx), remove)
}

// Schedule stores an event to be sent after delay, and returns its delay
// ID. A repeated (device, txnID) returns the delay it made first.
func (s *Service) Schedule(ctx context.Context, dev *httpapi.Device, roomID string, ev rooms.Event, delay string) (string, error) {
	ms, err := strconv.ParseInt(delay, 10, 64)
	if err != nil || ms <= 0 {
		return "", httpapi.InvalidParam("org.matrix.msc4140.delay must be a positive number of milliseconds")
	}
	max := s.Cfg.DelayedEvents.MaxDelay.D()
	if max == 0 {
		return "", httpapi.Unrecognized("delayed events are off on this server")
	}
	if ms > max.Milliseconds() {
		return "", &httpapi.Error{Kind: matrixerr.KindInvalid, Code: "M_UNKNOWN", Message: "the delay is longer than this server allows",
			Extra: map[string]any{"org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED", "org.matrix.msc4140.max_delay": max.Milliseconds()}}
	}
	if err := rooms.CheckContent(ev.Content); err != nil {
		return "", err
	}
	var id string
	err = s.DB.Write(ctx, func(q storage.Q) error {
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
			return httpapi.Forbidden("you are not in this room")
		}
		if n, err := q.CountDelayedEvents(ctx, dev.UserID); err != nil {
			return err
		} else if n >= s.Cfg.DelayedEvents.MaxPerUser {
			return httpapi.LimitExceeded(time.Minute, "you have %d delayed events scheduled, the most this server allows", n)
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

// Register adds the management routes. Scheduling is a query parameter of
// the send and state endpoints (see clientapi).
func (s *Service) Register(r *mux.Router, h *httpapi.API) {
	const p = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events"
	rt := httpapi.Routes{R: r, API: h}
	rt.Authed(p, s.list, "GET")
	// The delay ID is the capability: clients manage delays without a
	// token, so that a delay can be restarted by whatever holds it.
	rt.Public(p+"/{delayId}/{action:cancel|restart|send}", s.manage, "POST")
	rt.Public(p+"/{delayId}", s.manage, "POST")
}

// GET /_matrix/client/unstable/org.matrix.msc4140/delayed_events
func (s *Service) list(r *http.Request, dev *httpapi.Device) httpapi.Response {
	list, err := s.DB.R().UserDelayedEvents(r.Context(), dev.UserID)
	if err != nil {
		return httpapi.Fail(err)
	}
	out := make([]map[string]any, 0, len(list))
	for _, d := range list {
		e := map[string]any{"delay_id": d.DelayID, "room_id": d.RoomID, "type": d.Type, "content": json.RawMessage(d.Content),
			"delay": d.DelayMS, "running_since": d.SendTS - d.DelayMS}
		if d.StateKey != nil {
			e["state_key"] = *d.StateKey
		}
		out = append(out, e)
	}
	return httpapi.OK(map[string]any{"delayed_events": out})
}

// POST .../delayed_events/{delayId}/{cancel|restart|send}, and the older
// POST .../delayed_events/{delayId} with {"action": ...}.
func (s *Service) manage(r *http.Request) httpapi.Response {
	action := mux.Vars(r)["action"]
	if action == "" {
		var req struct {
			Action string `json:"action"`
		}
		if err := httpapi.Decode(r, &req); err != nil {
			return httpapi.Fail(err)
		}
		switch req.Action {
		case "":
			return httpapi.Fail(httpapi.MissingParam("action is required"))
		case "cancel", "restart", "send":
			action = req.Action
		default:
			return httpapi.Fail(httpapi.InvalidParam("action must be cancel, restart or send"))
		}
	}
	ctx, id := r.Context(), mux.Vars(r)["delayId"]
	var err error
	switch action {
	case "cancel":
		err = s.DB.Write(ctx, func(q storage.Q) error { return q.DeleteDelayedEvent(ctx, id) })
	case "restart":
		err = s.DB.Write(ctx, func(q storage.Q) error {
			d, err := q.DelayedEvent(ctx, id)
			if err != nil {
				return err
			}
			return q.RestartDelayedEvent(ctx, id, s.Now().UnixMilli()+d.DelayMS)
		})
	case "send":
		var d storage.DelayedEvent
		if d, err = s.DB.R().DelayedEvent(ctx, id); err == nil {
			err = s.send(ctx, d)
		}
	}
	if errors.Is(err, storage.ErrNotFound) {
		return httpapi.Fail(httpapi.NotFound("unknown delay_id"))
	}
	if err == nil {
		s.poke()
	}
	return httpapi.EmptyOr(err)
}
