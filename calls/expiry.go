package calls

import (
	"context"
	"encoding/json"
	"time"

	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
)

// expiryInterval is how often expired call memberships are looked for.
const expiryInterval = time.Minute

// Start runs the job that ends call memberships whose time is up: a
// client that vanished without its delayed leave (or one from before
// delayed events) would otherwise stay "in the call" for everyone.
func (s *Service) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(expiryInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.ExpireMemberships(ctx); err != nil && ctx.Err() == nil {
					s.Log.Error("calls: ending expired call memberships", "err", err)
				}
			}
		}
	}()
}

// Close stops the job; a no-op if it was not started.
func (s *Service) Close() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
}

// ExpireMemberships ends every call membership past its expires (counted
// from its created_ts, or from when it was sent): the member leaves the
// call, as their client would have said, with an empty membership sent as
// them. One the room no longer takes from them (they left it) stays.
func (s *Service) ExpireMemberships(ctx context.Context) error {
	events, err := s.DB.R().ExpiringCallMemberships(ctx)
	if err != nil {
		return err
	}
	now := s.Now().UnixMilli()
	for _, e := range events {
		content := gjson.GetBytes(e.JSON, "content")
		start := content.Get("created_ts")
		if start.Type != gjson.Number {
			start = gjson.Result{Type: gjson.Number, Num: float64(e.OriginTS)}
		}
		if expires := content.Get("expires"); expires.Type != gjson.Number || int64(start.Num)+expires.Int() > now {
			continue
		}
		_, err := s.Rooms.Send(ctx, e.RoomID, rooms.Event{Sender: e.Sender, Type: storage.CallMembershipType, StateKey: e.StateKey,
			Content: json.RawMessage(`{}`)})
		if _, internal := matrixerr.From(err); err != nil && internal {
			return err
		}
	}
	return nil
}
