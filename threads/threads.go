// Package threads is thread subscriptions (MSC4306): a user follows a
// thread, by hand or because their client subscribed when they took part,
// and with push.thread_subscriptions on, replies in a thread notify only
// its followers. Subscriptions reach clients through sliding sync
// (MSC4308) and their own endpoints (clientapi).
package threads

import (
	"context"
	"errors"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/notifier"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
	"github.com/redoubt-systems/redoubt/streams"
)

// Store is the part of storage.Q thread subscriptions uses: what it reads
// and writes.
type Store interface {
	rooms.EventViewer
	RoomHead(ctx context.Context, roomID string) (int64, error)
	SetThreadSubscription(ctx context.Context, userID string, s storage.ThreadSubscription) (int64, error)
	ThreadSubscription(ctx context.Context, userID, roomID, rootID string) (storage.ThreadSubscription, error)
	ThreadSubscriptionsBetween(ctx context.Context, userID string, from, to int64, limit int) ([]storage.ThreadSubscription, error)
}

var _ Store = storage.Q{}

// Service reads and changes a user's subscriptions.
type Service struct {
	DB       storage.View[Store]
	Rooms    *rooms.Service
	Notifier *notifier.Notifier
}

// Changes is subscription changes as MSC4308 has them: subscribed and
// unsubscribed threads by room and root, each with its position as
// bump_stamp, and where more may follow, the token to page on with (the
// companion endpoint calls it end, the sliding sync extension prev_batch).
type Changes struct {
	Subscribed   map[string]map[string]Change `json:"subscribed,omitempty"`
	Unsubscribed map[string]map[string]Change `json:"unsubscribed,omitempty"`
	End          string                       `json:"end,omitempty"`
	PrevBatch    string                       `json:"prev_batch,omitempty"`
}

// Change is one thread's subscription change.
type Change struct {
	BumpStamp int64 `json:"bump_stamp"`
	Automatic *bool `json:"automatic,omitempty"` // subscriptions only
}

// NewChanges shapes subscription changes.
func NewChanges(subs []storage.ThreadSubscription) *Changes {
	out := &Changes{}
	for _, t := range subs {
		c := Change{BumpStamp: t.Pos}
		target := &out.Unsubscribed
		if t.Subscribed {
			c.Automatic = &t.Automatic
			target = &out.Subscribed
		}
		if *target == nil {
			*target = map[string]map[string]Change{}
		}
		if (*target)[t.RoomID] == nil {
			(*target)[t.RoomID] = map[string]Change{}
		}
		(*target)[t.RoomID][t.RootID] = c
	}
	return out
}

// List is a user's subscription changes in (to, from], newest first, at
// most limit of them, with an end token when more may follow.
func (s *Service) List(ctx context.Context, userID string, from, to int64, limit int) (*Changes, error) {
	subs, err := s.DB.R().ThreadSubscriptionsBetween(ctx, userID, to, from, limit)
	if err != nil {
		return nil, err
	}
	out := NewChanges(subs)
	if len(subs) == limit {
		out.End = streams.Subscriptions(subs[len(subs)-1].Pos - 1)
	}
	return out, nil
}

var (
	errNotInThread = &matrixerr.Error{Kind: matrixerr.KindInvalid, Code: "IO.ELEMENT.MSC4306.M_NOT_IN_THREAD",
		Message: "the automatic subscription's cause is not an event of this thread"}
	errConflict = &matrixerr.Error{Kind: matrixerr.KindConflict, Code: "IO.ELEMENT.MSC4306.M_CONFLICTING_UNSUBSCRIPTION",
		Message: "the user unsubscribed from this thread after the event that caused this automatic subscription"}
)

// thread checks a thread's IDs and that the user may see its root: a
// thread is any event of the room they can see.
func (s *Service) thread(ctx context.Context, q Store, userID, roomID, rootID string) (storage.Event, error) {
	if !strings.HasPrefix(roomID, "!") {
		return storage.Event{}, matrixerr.InvalidParam("%q is not a room ID", roomID)
	}
	if !strings.HasPrefix(rootID, "$") {
		return storage.Event{}, matrixerr.InvalidParam("%q is not an event ID", rootID)
	}
	return s.Rooms.VisibleEvent(ctx, q, userID, roomID, rootID)
}

// Subscription reports whether a user follows a thread automatically;
// M_NOT_FOUND if they do not follow it.
func (s *Service) Subscription(ctx context.Context, userID, roomID, rootID string) (automatic bool, err error) {
	err = s.DB.Read(ctx, func(q Store) error {
		root, err := s.thread(ctx, q, userID, roomID, rootID)
		if err != nil {
			return err
		}
		sub, err := q.ThreadSubscription(ctx, userID, roomID, root.EventID)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && !sub.Subscribed) {
			return matrixerr.NotFound("not subscribed to this thread")
		}
		automatic = sub.Automatic
		return err
	})
	return automatic, err
}

// Subscribe makes a user follow a thread: by hand (cause ""), or because
// they took part with the event cause.
func (s *Service) Subscribe(ctx context.Context, userID, roomID, rootID, cause string) error {
	return s.change(ctx, userID, roomID, rootID, func(q Store, root storage.Event) (*storage.ThreadSubscription, error) {
		var causePos int64
		if cause != "" {
			ev, err := s.Rooms.VisibleEvent(ctx, q, userID, roomID, cause)
			if err != nil {
				return nil, err
			}
			rel := gjson.GetBytes(ev.JSON, `content.m\.relates_to`)
			if rel.Get("rel_type").Str != "m.thread" || rel.Get("event_id").Str != root.EventID {
				return nil, errNotInThread
			}
			causePos = ev.Pos
		}
		cur, err := q.ThreadSubscription(ctx, userID, roomID, root.EventID)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		exists := err == nil
		switch {
		case exists && cur.Subscribed && (!cur.Automatic || cause != ""):
			return nil, nil // nothing to change
		case exists && !cur.Subscribed && cause != "" && cur.UnsubscribedAt >= causePos:
			// The user left the thread after taking part with that event:
			// their choice stands.
			return nil, errConflict
		}
		return &storage.ThreadSubscription{RoomID: roomID, RootID: root.EventID, Subscribed: true, Automatic: cause != ""}, nil
	})
}

// Unsubscribe makes a user stop following a thread.
func (s *Service) Unsubscribe(ctx context.Context, userID, roomID, rootID string) error {
	return s.change(ctx, userID, roomID, rootID, func(q Store, root storage.Event) (*storage.ThreadSubscription, error) {
		cur, err := q.ThreadSubscription(ctx, userID, roomID, root.EventID)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && !cur.Subscribed) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		head, err := q.RoomHead(ctx, roomID)
		return &storage.ThreadSubscription{RoomID: roomID, RootID: root.EventID, UnsubscribedAt: head}, err
	})
}

// change runs decide for a thread in a write transaction and stores the
// subscription it returns (nil: nothing changes); the user's syncs are
// woken after a change.
func (s *Service) change(ctx context.Context, userID, roomID, rootID string,
	decide func(q Store, root storage.Event) (*storage.ThreadSubscription, error)) error {
	changed := false
	err := s.DB.Write(ctx, func(q Store) error {
		root, err := s.thread(ctx, q, userID, roomID, rootID)
		if err != nil {
			return err
		}
		sub, err := decide(q, root)
		if err != nil || sub == nil {
			return err
		}
		changed = true
		_, err = q.SetThreadSubscription(ctx, userID, *sub)
		return err
	})
	if changed && err == nil {
		s.Notifier.Wake(userID)
	}
	return err
}
