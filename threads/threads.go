// Package threads serves thread subscriptions (MSC4306): a user follows a
// thread, by hand or because their client subscribed when they took part,
// and with push.thread_subscriptions on, replies in a thread notify only
// its followers. Subscriptions reach clients through sliding sync
// (MSC4308).
package threads

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/notifier"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
)

// API serves the subscription endpoints.
type API struct {
	DB       *storage.DB
	Rooms    *rooms.Service
	Notifier *notifier.Notifier
}

// Register adds the routes.
func (a *API) Register(r *mux.Router, h *httpapi.API) {
	const p = "/_matrix/client/unstable/io.element.msc4306/rooms/{roomId}/thread/{threadRootId}/subscription"
	rt := httpapi.Routes{R: r, API: h}
	rt.Authed(p, a.get, "GET")
	rt.Authed(p, a.subscribe, "PUT")
	rt.Authed(p, a.unsubscribe, "DELETE")
	rt.Authed("/_matrix/client/unstable/io.element.msc4308/thread_subscriptions", a.list, "GET")
}

// Changes shapes subscription changes as MSC4308 has them: subscribed and
// unsubscribed threads by room, each with its position as bump_stamp; a
// part without entries is left out.
func Changes(subs []storage.ThreadSubscription) map[string]any {
	subscribed, unsubscribed := map[string]map[string]any{}, map[string]map[string]any{}
	for _, t := range subs {
		entry := map[string]any{"bump_stamp": t.Pos}
		target := unsubscribed
		if t.Subscribed {
			entry["automatic"] = t.Automatic
			target = subscribed
		}
		if target[t.RoomID] == nil {
			target[t.RoomID] = map[string]any{}
		}
		target[t.RoomID][t.RootID] = entry
	}
	out := map[string]any{}
	if len(subscribed) > 0 {
		out["subscribed"] = subscribed
	}
	if len(unsubscribed) > 0 {
		out["unsubscribed"] = unsubscribed
	}
	return out
}

// Token is a pagination token for subscription changes: a position.
func Token(pos int64) string { return strconv.FormatInt(pos, 10) }

// GET /_matrix/client/unstable/io.element.msc4308/thread_subscriptions:
// pages backwards through a user's subscription changes, newest first.
func (a *API) list(r *http.Request, dev *httpapi.Device) httpapi.Response {
	q := r.URL.Query()
	if q.Get("dir") != "b" {
		return httpapi.Fail(httpapi.InvalidParam("dir must be b"))
	}
	parse := func(name string, def int64) (int64, error) {
		if s := q.Get(name); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return 0, httpapi.InvalidParam("%s is not a valid token", name)
			}
			return n, nil
		}
		return def, nil
	}
	from, err := parse("from", 1<<62)
	if err != nil {
		return httpapi.Fail(err)
	}
	to, err := parse("to", 0)
	if err != nil {
		return httpapi.Fail(err)
	}
	limit, err := parse("limit", 100)
	if err != nil || limit == 0 {
		return httpapi.Fail(httpapi.InvalidParam("limit must be a positive integer"))
	}
	limit = min(limit, 1000)
	subs, err := a.DB.R().ThreadSubscriptionsBetween(r.Context(), dev.UserID, to, from, int(limit))
	if err != nil {
		return httpapi.Fail(err)
	}
	out := Changes(subs)
	if len(subs) == int(limit) {
		out["end"] = Token(subs[len(subs)-1].Pos - 1)
	}
	return httpapi.OK(out)
}

var (
	errNotInThread = &httpapi.Error{Kind: matrixerr.KindInvalid, Code: "IO.ELEMENT.MSC4306.M_NOT_IN_THREAD",
		Message: "the automatic subscription's cause is not an event of this thread"}
	errConflict = &httpapi.Error{Kind: matrixerr.KindConflict, Code: "IO.ELEMENT.MSC4306.M_CONFLICTING_UNSUBSCRIPTION",
		Message: "the user unsubscribed from this thread after the event that caused this automatic subscription"}
)

// thread reads the room and root of a request and checks that the user may
// see the root: a thread is any event of the room they can see.
func (a *API) thread(ctx context.Context, q storage.Q, r *http.Request, dev *httpapi.Device) (string, storage.Event, error) {
	roomID, rootID := mux.Vars(r)["roomId"], mux.Vars(r)["threadRootId"]
	if !strings.HasPrefix(roomID, "!") {
		return "", storage.Event{}, httpapi.InvalidParam("%q is not a room ID", roomID)
	}
	if !strings.HasPrefix(rootID, "$") {
		return "", storage.Event{}, httpapi.InvalidParam("%q is not an event ID", rootID)
	}
	root, err := a.Rooms.VisibleEvent(ctx, q, dev.UserID, roomID, rootID)
	return roomID, root, err
}

// GET .../thread/{threadRootId}/subscription
func (a *API) get(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var sub storage.ThreadSubscription
	err := a.DB.Read(r.Context(), func(q storage.Q) error {
		roomID, root, err := a.thread(r.Context(), q, r, dev)
		if err != nil {
			return err
		}
		sub, err = q.ThreadSubscription(r.Context(), dev.UserID, roomID, root.EventID)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && !sub.Subscribed) {
			return httpapi.NotFound("not subscribed to this thread")
		}
		return err
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]bool{"automatic": sub.Automatic})
}

// PUT .../thread/{threadRootId}/subscription: {} subscribes by hand;
// {"automatic": cause} because the user took part with the event cause.
func (a *API) subscribe(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		Automatic *json.RawMessage `json:"automatic"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	cause := ""
	if req.Automatic != nil {
		c := gjson.ParseBytes(*req.Automatic)
		if c.Type != gjson.String {
			return httpapi.Fail(httpapi.BadJSON("automatic must be an event ID"))
		}
		cause = c.Str
	}
	return a.change(r, dev, func(ctx context.Context, q storage.Q, roomID string, root storage.Event) (*storage.ThreadSubscription, error) {
		var causePos int64
		if cause != "" {
			ev, err := a.Rooms.VisibleEvent(ctx, q, dev.UserID, roomID, cause)
			if err != nil {
				return nil, err
			}
			rel := gjson.GetBytes(ev.JSON, `content.m\.relates_to`)
			if rel.Get("rel_type").Str != "m.thread" || rel.Get("event_id").Str != root.EventID {
				return nil, errNotInThread
			}
			causePos = ev.Pos
		}
		cur, err := q.ThreadSubscription(ctx, dev.UserID, roomID, root.EventID)
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

// DELETE .../thread/{threadRootId}/subscription
func (a *API) unsubscribe(r *http.Request, dev *httpapi.Device) httpapi.Response {
	return a.change(r, dev, func(ctx context.Context, q storage.Q, roomID string, root storage.Event) (*storage.ThreadSubscription, error) {
		cur, err := q.ThreadSubscription(ctx, dev.UserID, roomID, root.EventID)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && !cur.Subscribed) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		head, err := q.RoomHead(ctx, roomID)
		return &storage.ThreadSubscription{RoomID: roomID, RootID: root.EventID, UnsubscribedAt: head}, err
	})
}

// change runs decide for the request's thread in a write transaction and
// stores the subscription it returns (nil: nothing changes); the user's
// syncs are woken after a change.
func (a *API) change(r *http.Request, dev *httpapi.Device,
	decide func(ctx context.Context, q storage.Q, roomID string, root storage.Event) (*storage.ThreadSubscription, error)) httpapi.Response {
	changed := false
	err := a.DB.Write(r.Context(), func(q storage.Q) error {
		ctx := r.Context()
		roomID, root, err := a.thread(ctx, q, r, dev)
		if err != nil {
			return err
		}
		sub, err := decide(ctx, q, roomID, root)
		if err != nil || sub == nil {
			return err
		}
		changed = true
		_, err = q.SetThreadSubscription(ctx, dev.UserID, *sub)
		return err
	})
	if changed && err == nil {
		a.Notifier.Wake(dev.UserID)
	}
	return httpapi.EmptyOr(err)
}
