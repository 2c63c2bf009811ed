package adminapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
)

// roomJSON is a room in Synapse's room list format.
func roomJSON(l storage.RoomListing) map[string]any {
	return map[string]any{
		"room_id": l.RoomID, "name": nullable(l.Name), "canonical_alias": nullable(l.CanonicalAlias),
		"joined_members": l.JoinedMembers, "joined_local_members": l.JoinedMembers, "version": l.Version,
		"creator": l.Creator, "encryption": nullable(l.Encryption), "federatable": false,
		"public": l.JoinRules == "public", "join_rules": nullable(l.JoinRules), "guest_access": nullable(l.GuestAccess),
		"history_visibility": nullable(l.HistoryVisible), "state_events": l.StateEvents, "room_type": nullable(l.RoomType),
	}
}

// GET /_synapse/admin/v1/rooms
func (a *API) listRooms(r *http.Request, _ *httpapi.Device) httpapi.Response {
	l, err := readListing(r, storage.RoomOrders)
	if err != nil {
		return httpapi.Fail(err)
	}
	from, limit := l.from, l.limit
	list, total, err := a.DB.R().ListRooms(r.Context(), r.URL.Query().Get("search_term"), l.order, l.back, from, limit)
	if err != nil {
		return httpapi.Fail(err)
	}
	out := make([]map[string]any, 0, len(list))
	for _, l := range list {
		out = append(out, roomJSON(l))
	}
	body := map[string]any{"rooms": out, "offset": from, "total_rooms": total}
	if from+len(list) < total {
		body["next_batch"] = from + len(list)
	}
	if from > 0 {
		body["prev_batch"] = max(0, from-limit)
	}
	return httpapi.OK(body)
}

func (a *API) room(r *http.Request) (storage.RoomListing, error) {
	l, err := a.DB.R().RoomListingOf(r.Context(), mux.Vars(r)["roomId"])
	if errors.Is(err, storage.ErrNotFound) {
		return l, httpapi.NotFound("unknown room")
	}
	return l, err
}

// GET /_synapse/admin/v1/rooms/{roomId}
func (a *API) getRoom(r *http.Request, _ *httpapi.Device) httpapi.Response {
	l, err := a.room(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	body := roomJSON(l)
	body["topic"], body["avatar"], body["forgotten"], body["blocked"] = nullable(l.Topic), nullable(l.Avatar), false, l.Blocked
	body["joined_local_devices"], body["invited_members"] = 0, l.InvitedMembers
	return httpapi.OK(body)
}

// GET /_synapse/admin/v1/rooms/{roomId}/members
func (a *API) roomMembers(r *http.Request, _ *httpapi.Device) httpapi.Response {
	l, err := a.room(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	members, err := a.DB.R().RoomMembers(r.Context(), l.RoomID, "join")
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"members": members, "total": len(members)})
}

// GET /_synapse/admin/v1/rooms/{roomId}/state
func (a *API) roomState(r *http.Request, _ *httpapi.Device) httpapi.Response {
	l, err := a.room(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	q := a.DB.R()
	state, err := q.CurrentState(r.Context(), l.RoomID)
	if err != nil {
		return httpapi.Fail(err)
	}
	formatted, err := a.Rooms.Format(r.Context(), q, state, nil)
	if err != nil {
		return httpapi.Fail(err)
	}
	if formatted == nil {
		formatted = []json.RawMessage{}
	}
	return httpapi.OK(map[string]any{"state": formatted})
}

// deleteRoom removes everyone from a room and purges it (see
// rooms.DeleteRoom), blocking it if asked (Synapse's block, default off).
// Purging is always done: purge false is not offered.
func (a *API) deleteRoom(r *http.Request, dev *httpapi.Device) (map[string]any, error) {
	l, err := a.room(r)
	if err != nil {
		return nil, err
	}
	var req struct {
		Block   *bool   `json:"block"`
		Purge   *bool   `json:"purge"`
		Message *string `json:"message"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Purge != nil && !*req.Purge {
		return nil, httpapi.InvalidParam("purge false is not supported: a deleted room's history is always deleted")
	}
	block := req.Block != nil && *req.Block
	removed, purged, err := a.Rooms.DeleteRoom(r.Context(), l.RoomID, dev.UserID, block)
	if err != nil {
		return nil, err
	}
	if removed == nil {
		removed = []string{}
	}
	if err := a.record(r.Context(), dev, "delete_room", l.RoomID, fmt.Sprintf("%d members removed, %d events purged, block=%v", len(removed), purged, block)); err != nil {
		return nil, err
	}
	return map[string]any{"kicked_users": removed, "failed_to_kick_users": []string{}, "local_aliases": []string{}, "new_room_id": nil}, nil
}

// DELETE /_synapse/admin/v1/rooms/{roomId}
func (a *API) deleteRoomV1(r *http.Request, dev *httpapi.Device) httpapi.Response {
	res, err := a.deleteRoom(r, dev)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(res)
}

// DELETE /_synapse/admin/v2/rooms/{roomId}: deletion here is quick, so it
// is complete when the request returns; its status stays queryable.
func (a *API) deleteRoomV2(r *http.Request, dev *httpapi.Device) httpapi.Response {
	res, err := a.deleteRoom(r, dev)
	if err != nil {
		return httpapi.Fail(err)
	}
	id := rooms.RandomID(16)
	a.mu.Lock()
	if a.deletes == nil {
		a.deletes = map[string]map[string]any{}
	}
	a.deletes[id] = map[string]any{"delete_id": id, "room_id": mux.Vars(r)["roomId"], "status": "complete", "shutdown_room": res}
	a.mu.Unlock()
	return httpapi.OK(map[string]string{"delete_id": id})
}

// GET /_synapse/admin/v2/rooms/delete_status/{deleteId}
func (a *API) deleteStatus(r *http.Request, _ *httpapi.Device) httpapi.Response {
	a.mu.Lock()
	st, ok := a.deletes[mux.Vars(r)["deleteId"]]
	a.mu.Unlock()
	if !ok {
		return httpapi.Fail(httpapi.NotFound("unknown delete_id"))
	}
	return httpapi.OK(st)
}

// POST /_synapse/admin/v1/send_server_notice: a message from the notices
// account into the user's notices room, created (and tagged
// m.server_notice for the user) on first use.
func (a *API) sendServerNotice(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		UserID   string          `json:"user_id"`
		Content  json.RawMessage `json:"content"`
		Type     string          `json:"type"`
		StateKey *string         `json:"state_key"`
	}
	if err := decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.UserID == "" || len(req.Content) == 0 {
		return httpapi.Fail(httpapi.MissingParam("user_id and content are required"))
	}
	if !strings.HasSuffix(req.UserID, ":"+a.Cfg.ServerName) {
		return httpapi.Fail(httpapi.BadRequest("server notices can only be sent to local users"))
	}
	ctx := r.Context()
	if ok, err := a.DB.R().UserExists(ctx, req.UserID); err != nil || !ok {
		if err == nil {
			err = httpapi.NotFound("unknown user")
		}
		return httpapi.Fail(err)
	}
	if req.Type == "" {
		req.Type = "m.room.message"
	}
	a.noticeMu.Lock() // one notices room per user, even under concurrent sends
	defer a.noticeMu.Unlock()
	roomID, err := a.noticeRoom(r, req.UserID)
	if err != nil {
		return httpapi.Fail(err)
	}
	// A transaction ID (PUT) makes the send idempotent, per admin device.
	ev := rooms.Event{Sender: a.noticesUser(), Type: req.Type, StateKey: req.StateKey, Content: req.Content}
	if txn := mux.Vars(r)["txnId"]; txn != "" {
		ev.DeviceID, ev.TxnID = dev.DeviceID, rooms.TxnKey("notice", txn)
	}
	eventID, err := a.Rooms.Send(ctx, roomID, ev)
	if err != nil {
		return httpapi.Fail(err)
	}
	if err := a.record(ctx, dev, "send_server_notice", req.UserID, ""); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]string{"event_id": eventID})
}

func (a *API) noticesUser() string {
	return "@" + a.Cfg.ServerNotices.Localpart + ":" + a.Cfg.ServerName
}

// noticeRoom returns the user's notices room, creating the notices account
// and the room as needed, and inviting the user again if they left it.
func (a *API) noticeRoom(r *http.Request, userID string) (string, error) {
	ctx := r.Context()
	from := a.noticesUser()
	if ok, err := a.DB.R().UserExists(ctx, from); err != nil {
		return "", err
	} else if !ok {
		if err := a.Auth.CreateUser(ctx, from, "", false); err != nil {
			return "", err
		}
		name := a.Cfg.ServerNotices.DisplayName
		if err := a.Rooms.SetProfile(ctx, from, &name, nil); err != nil {
			return "", err
		}
	}
	roomID, err := a.DB.R().NoticeRoom(ctx, userID)
	if err != nil {
		return "", err
	}
	if roomID == "" {
		name := a.Cfg.ServerNotices.RoomName
		roomID, err = a.Rooms.CreateRoom(ctx, rooms.CreateRequest{Creator: from, Preset: "private_chat", Name: &name,
			Invite: []string{userID}, PowerLevelOverride: json.RawMessage(`{"events_default": 100}`)})
		if err != nil {
			return "", err
		}
		tag := []byte(`{"tags":{"m.server_notice":{"order":0.5}}}`)
		err = a.DB.Write(ctx, func(q Store) error {
			if err := q.SetNoticeRoom(ctx, userID, roomID); err != nil {
				return err
			}
			_, err := q.SetAccountData(ctx, userID, roomID, "m.tag", tag)
			return err
		})
		if err != nil {
			return "", err
		}
		a.Notifier.Wake(userID)
		return roomID, nil
	}
	if m, _, err := a.DB.R().Membership(ctx, roomID, userID); err != nil {
		return "", err
	} else if m != "join" && m != "invite" {
		if err := a.Rooms.Invite(ctx, roomID, from, userID, ""); err != nil {
			return "", err
		}
	}
	return roomID, nil
}
