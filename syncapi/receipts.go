package syncapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// The receipts and typing streams: their part of a room in a sync
// response, and the endpoints that set them (typing, receipts, read
// markers).

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
	err := s.DB.Write(ctx, func(q Store) error {
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
