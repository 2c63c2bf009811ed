package syncapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// Register adds the sync routes.
func (s *Service) Register(r *mux.Router, h *httpapi.API) {
	authed := httpapi.Routes{R: r, API: h}.Authed
	const c = "/_matrix/client/v3"
	authed(c+"/sync", s.sync, "GET")
	authed(slidingPath, s.slidingSync, "POST")
	authed(c+"/rooms/{roomId}/typing/{userId}", s.putTyping, "PUT")
	authed(c+"/rooms/{roomId}/receipt/{receiptType}/{eventId}", s.postReceipt, "POST")
	authed(c+"/rooms/{roomId}/read_markers", s.postReadMarkers, "POST")
	authed(c+"/presence/{userId}/status", s.getPresence, "GET")
	authed(c+"/presence/{userId}/status", s.putPresence, "PUT")
	authed(c+"/notifications", s.notifications, "GET")
}

// ephemeral returns a joined room's typing and receipt events.
func (b *builder) ephemeral(roomID string) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	f := &b.req.filter.Room.Ephemeral
	if (b.initial() || b.s.Typing.Changed(roomID, b.since.Typing, b.to.Typing)) && f.Allows("m.typing", "") {
		ev, _ := json.Marshal(map[string]any{"type": "m.typing", "content": map[string]any{"user_ids": b.s.Typing.Users(roomID)}})
		if !b.initial() || len(b.s.Typing.Users(roomID)) > 0 {
			out = append(out, ev)
		}
	}
	if !f.Allows("m.receipt", "") || (!b.initial() && b.since.Receipts == b.to.Receipts) {
		return out, nil
	}
	receipts, err := b.q.ReceiptsBetween(b.ctx, roomID, b.since.Receipts, b.to.Receipts)
	if err != nil {
		return nil, err
	}
	// content: event ID → receipt type → user → {ts, thread_id}
	content := map[string]map[string]map[string]map[string]any{}
	for _, r := range receipts {
		if r.Type == "m.read.private" && r.UserID != b.dev.UserID {
			continue // private receipts are for their owner only
		}
		byType := content[r.EventID]
		if byType == nil {
			byType = map[string]map[string]map[string]any{}
			content[r.EventID] = byType
		}
		if byType[r.Type] == nil {
			byType[r.Type] = map[string]map[string]any{}
		}
		info := map[string]any{"ts": r.TS}
		if r.ThreadID != "" {
			info["thread_id"] = r.ThreadID
		}
		byType[r.Type][r.UserID] = info
	}
	if len(content) > 0 {
		ev, _ := json.Marshal(map[string]any{"type": "m.receipt", "content": content})
		out = append(out, ev)
	}
	return out, nil
}

// presence adds the presence of users who share a room with the syncing user.
func (b *builder) presence() error {
	delete(b.newlyShared, b.dev.UserID)
	if !b.s.Cfg.Presence.Enabled || (b.since.Presence == b.to.Presence && len(b.newlyShared) == 0) {
		return nil
	}
	var changes []storage.Presence
	if b.since.Presence < b.to.Presence {
		var err error
		if changes, err = b.q.PresenceBetween(b.ctx, b.since.Presence, b.to.Presence); err != nil {
			return err
		}
	}
	var visible map[string]bool
	if len(changes) > 0 {
		var err error
		if visible, err = b.q.UsersSharingRooms(b.ctx, b.dev.UserID); err != nil {
			return err
		}
	}
	// Someone who came to share a room with the user is told of as they
	// are now, changed or not: the client has never seen them.
	sent := map[string]bool{}
	for u := range b.newlyShared {
		p, err := b.q.GetPresence(b.ctx, u)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		} else if err != nil {
			return err
		}
		changes = append(changes, p)
	}
	now := b.s.Now().UnixMilli()
	for _, p := range changes {
		if sent[p.UserID] || !(visible[p.UserID] || b.newlyShared[p.UserID]) || !b.req.filter.Presence.Allows("m.presence", p.UserID) {
			continue
		}
		sent[p.UserID] = true
		ev, _ := json.Marshal(map[string]any{"type": "m.presence", "sender": p.UserID, "content": presenceContent(p, now)})
		b.res.Presence.Events = append(b.res.Presence.Events, ev)
	}
	if len(b.res.Presence.Events) > 0 {
		b.empty = false
	}
	return nil
}

func presenceContent(p storage.Presence, now int64) map[string]any {
	c := map[string]any{"presence": p.State, "last_active_ago": max(now-p.LastActiveTS, 0),
		"currently_active": p.State == "online" && now-p.LastActiveTS < 5*60*1000}
	if p.StatusMsg != "" {
		c["status_msg"] = p.StatusMsg
	}
	return c
}

// roomMember checks that the caller is joined to the {roomId} room.
func (s *Service) joinedRoom(r *http.Request, dev *httpapi.Device) (string, error) {
	roomID := mux.Vars(r)["roomId"]
	if len(roomID) == 0 || roomID[0] != '!' {
		return "", httpapi.InvalidParam("%q is not a room ID", roomID)
	}
	m, _, err := s.DB.R().Membership(r.Context(), roomID, dev.UserID)
	if err != nil {
		return "", err
	}
	if m != spec.Join {
		return "", httpapi.Forbidden("you are not in this room")
	}
	return roomID, nil
}

// PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}
func (s *Service) putTyping(r *http.Request, dev *httpapi.Device) httpapi.Response {
	if mux.Vars(r)["userId"] != dev.UserID {
		return httpapi.Fail(httpapi.Forbidden("you may only set your own typing state"))
	}
	var req struct {
		Typing  *bool  `json:"typing"`
		Timeout *int64 `json:"timeout"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.Typing == nil {
		return httpapi.Fail(httpapi.MissingParam("typing is required"))
	}
	roomID, err := s.joinedRoom(r, dev)
	if err != nil {
		return httpapi.Fail(err)
	}
	timeout := 30 * time.Second
	if req.Timeout != nil {
		if *req.Timeout < 0 {
			return httpapi.Fail(httpapi.InvalidParam("timeout must not be negative"))
		}
		timeout = min(time.Duration(*req.Timeout)*time.Millisecond, 2*time.Minute)
	}
	s.Typing.Set(roomID, dev.UserID, *req.Typing, timeout)
	return httpapi.OK(httpapi.Empty)
}

// POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}
func (s *Service) postReceipt(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		ThreadID string `json:"thread_id"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	roomID, err := s.joinedRoom(r, dev)
	if err != nil {
		return httpapi.Fail(err)
	}
	typ, eventID := mux.Vars(r)["receiptType"], mux.Vars(r)["eventId"]
	switch typ {
	case "m.read", "m.read.private", "m.fully_read":
	default:
		return httpapi.Fail(httpapi.InvalidParam("unknown receipt type %q", typ))
	}
	if typ == "m.fully_read" && req.ThreadID != "" {
		return httpapi.Fail(httpapi.InvalidParam("m.fully_read cannot be threaded"))
	}
	return httpapi.EmptyOr(s.markRead(r.Context(), dev.UserID, roomID, map[string]string{typ: eventID}, req.ThreadID))
}

// POST /_matrix/client/v3/rooms/{roomId}/read_markers
func (s *Service) postReadMarkers(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req map[string]string
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	markers := map[string]string{}
	for _, k := range []string{"m.fully_read", "m.read", "m.read.private"} {
		if v := req[k]; v != "" {
			markers[k] = v
		}
	}
	roomID, err := s.joinedRoom(r, dev)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.EmptyOr(s.markRead(r.Context(), dev.UserID, roomID, markers, ""))
}

// markRead stores receipts (m.read, m.read.private) and the fully-read
// marker (room account data) for events of the room, then wakes whoever
// syncs them.
func (s *Service) markRead(ctx context.Context, userID, roomID string, markers map[string]string, threadID string) error {
	wakeRoom, wakeUser := false, false
	err := s.DB.Write(ctx, func(q storage.Q) error {
		for typ, eventID := range markers {
			ev, err := q.Event(ctx, eventID)
			if errors.Is(err, storage.ErrNotFound) || (err == nil && ev.RoomID != roomID) {
				return httpapi.NotFound("unknown event %s", eventID)
			}
			if err != nil {
				return err
			}
			if typ == "m.fully_read" {
				content, _ := json.Marshal(map[string]string{"event_id": eventID})
				if _, err := q.SetAccountData(ctx, userID, roomID, "m.fully_read", content); err != nil {
					return err
				}
				wakeUser = true
				continue
			}
			changed, err := q.SetReceipt(ctx, storage.Receipt{RoomID: roomID, UserID: userID, Type: typ, ThreadID: threadID,
				EventID: eventID, EventPos: ev.Pos, TS: s.Now().UnixMilli()})
			if err != nil {
				return err
			}
			wakeUser = wakeUser || changed
			wakeRoom = wakeRoom || (changed && typ == "m.read")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if wakeRoom {
		s.OnRoomChange(roomID)
	} else if wakeUser {
		s.Notifier.Wake(userID)
	}
	return nil
}

// GET /_matrix/client/v3/presence/{userId}/status
func (s *Service) getPresence(r *http.Request, dev *httpapi.Device) httpapi.Response {
	userID := mux.Vars(r)["userId"]
	ctx := r.Context()
	if exists, err := s.DB.R().UserExists(ctx, userID); err != nil {
		return httpapi.Fail(err)
	} else if !exists {
		return httpapi.Fail(httpapi.NotFound("unknown user"))
	}
	if userID != dev.UserID {
		sharing, err := s.DB.R().UsersSharingRooms(ctx, dev.UserID)
		if err != nil {
			return httpapi.Fail(err)
		}
		if !sharing[userID] {
			return httpapi.Fail(httpapi.Forbidden("you share no room with this user"))
		}
	}
	p, err := s.DB.R().GetPresence(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) || !s.Cfg.Presence.Enabled {
		return httpapi.OK(map[string]any{"presence": "offline"})
	}
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(presenceContent(p, s.Now().UnixMilli()))
}

// PUT /_matrix/client/v3/presence/{userId}/status
func (s *Service) putPresence(r *http.Request, dev *httpapi.Device) httpapi.Response {
	if mux.Vars(r)["userId"] != dev.UserID {
		return httpapi.Fail(httpapi.Forbidden("you may only set your own presence"))
	}
	var req struct {
		Presence  string  `json:"presence"`
		StatusMsg *string `json:"status_msg"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	switch req.Presence {
	case "online", "offline", "unavailable":
	case "":
		return httpapi.Fail(httpapi.MissingParam("presence is required"))
	default:
		return httpapi.Fail(httpapi.InvalidParam("presence must be online, offline or unavailable"))
	}
	msg := ""
	if req.StatusMsg != nil {
		msg = *req.StatusMsg
	}
	if len(msg) > 1024 {
		return httpapi.Fail(httpapi.InvalidParam("status_msg is limited to 1024 bytes"))
	}
	return httpapi.EmptyOr(s.setPresence(r.Context(), dev.UserID, req.Presence, msg, true))
}

// setPresenceFromSync applies set_presence (default online) without
// rewriting an unchanged presence on every sync.
func (s *Service) setPresenceFromSync(ctx context.Context, userID, state string) error {
	if state == "" {
		state = "online"
	}
	if !s.Cfg.Presence.Enabled {
		return nil
	}
	cur, err := s.DB.R().GetPresence(ctx, userID)
	if err == nil && cur.State == state {
		return nil
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return s.setPresence(ctx, userID, state, cur.StatusMsg, false)
}

func (s *Service) setPresence(ctx context.Context, userID, state, msg string, touch bool) error {
	if !s.Cfg.Presence.Enabled {
		return nil
	}
	var changed bool
	err := s.DB.Write(ctx, func(q storage.Q) error {
		var err error
		changed, err = q.SetPresence(ctx, storage.Presence{UserID: userID, State: state, StatusMsg: msg, LastActiveTS: s.Now().UnixMilli()}, touch)
		return err
	})
	if err != nil || !changed {
		return err
	}
	sharing, err := s.DB.R().UsersSharingRooms(ctx, userID)
	if err != nil {
		return err
	}
	s.wake(sharing)
	return nil
}

// GET /_matrix/client/v3/notifications
func (s *Service) notifications(r *http.Request, dev *httpapi.Device) httpapi.Response {
	q := r.URL.Query()
	limit := 20
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return httpapi.Fail(httpapi.InvalidParam("limit must be a positive integer"))
		}
		limit = min(n, 100)
	}
	var from int64
	if f := q.Get("from"); f != "" {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n < 0 {
			return httpapi.Fail(httpapi.InvalidParam("invalid from token"))
		}
		from = n
	}
	only := q.Get("only")
	if only != "" && only != "highlight" {
		return httpapi.Fail(httpapi.InvalidParam("only must be highlight"))
	}
	var out []map[string]any
	var next string
	err := s.DB.Read(r.Context(), func(sq storage.Q) error {
		list, err := sq.Notifications(r.Context(), dev.UserID, from, limit, only == "highlight")
		if err != nil {
			return err
		}
		events := make([]storage.Event, len(list))
		for i, n := range list {
			events[i] = n.Event
		}
		formatted, err := s.Rooms.Format(r.Context(), sq, events, dev)
		if err != nil {
			return err
		}
		for i, n := range list {
			out = append(out, map[string]any{"actions": json.RawMessage(n.Actions), "event": formatted[i],
				"read": n.Read, "room_id": n.RoomID, "ts": n.TS})
		}
		if len(list) == limit {
			next = strconv.FormatInt(list[len(list)-1].EventPos, 10)
		}
		return nil
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	if out == nil {
		out = []map[string]any{}
	}
	res := map[string]any{"notifications": out}
	if next != "" {
		res["next_token"] = next
	}
	return httpapi.OK(res)
}
