package clientapi

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gorilla/mux"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/filter"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/rooms"
)

// roomID reads the {roomId} path parameter.
func roomID(r *http.Request) (string, error) {
	id := mux.Vars(r)["roomId"]
	if !strings.HasPrefix(id, "!") {
		return "", httpapi.InvalidParam("%q is not a room ID", id)
	}
	return id, nil
}

type createRoomRequest struct {
	Visibility                string             `json:"visibility"`
	RoomAliasName             string             `json:"room_alias_name"`
	Name                      *string            `json:"name"`
	Topic                     *string            `json:"topic"`
	Invite                    []string           `json:"invite"`
	RoomVersion               string             `json:"room_version"`
	CreationContent           json.RawMessage    `json:"creation_content"`
	InitialState              []rooms.StateEvent `json:"initial_state"`
	Preset                    string             `json:"preset"`
	IsDirect                  bool               `json:"is_direct"`
	PowerLevelContentOverride json.RawMessage    `json:"power_level_content_override"`
}

// POST /_matrix/client/v3/createRoom
func (a *API) createRoom(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req createRoomRequest
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.Visibility != "" && req.Visibility != "public" && req.Visibility != "private" {
		return httpapi.Fail(httpapi.BadJSON("visibility must be public or private"))
	}
	for _, raw := range []json.RawMessage{req.CreationContent, req.PowerLevelContentOverride} {
		if len(raw) > 0 && !gjson.ParseBytes(raw).IsObject() && string(raw) != "null" {
			return httpapi.Fail(httpapi.BadJSON("creation_content and power_level_content_override must be objects"))
		}
	}
	for _, e := range req.InitialState {
		if e.Type == "" || !gjson.ParseBytes(e.Content).IsObject() {
			return httpapi.Fail(httpapi.BadJSON("each initial_state event needs a type and an object content"))
		}
	}
	id, err := a.Rooms.CreateRoom(r.Context(), rooms.CreateRequest{
		Creator: dev.UserID, Visibility: req.Visibility, Preset: req.Preset, Name: req.Name, Topic: req.Topic,
		Invite: req.Invite, InitialState: req.InitialState, RoomVersion: req.RoomVersion,
		PowerLevelOverride: req.PowerLevelContentOverride, CreationContent: req.CreationContent,
		IsDirect: req.IsDirect, RoomAliasName: req.RoomAliasName,
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	if req.Visibility == "public" { // published in the room directory
		if err := a.DB.Write(r.Context(), func(q Store) error { return q.SetRoomPublished(r.Context(), id, true) }); err != nil {
			return httpapi.Fail(err)
		}
	}
	return httpapi.OK(map[string]string{"room_id": id})
}

// GET /_matrix/client/v3/joined_rooms
func (a *API) joinedRooms(r *http.Request, dev *httpapi.Device) httpapi.Response {
	ids, err := a.Rooms.JoinedRooms(r.Context(), dev.UserID)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"joined_rooms": ids})
}

type membershipRequest struct {
	UserID string `json:"user_id"`
	Reason string `json:"reason"`
}

// POST /_matrix/client/v3/join/{roomIdOrAlias} and /rooms/{roomId}/join
func (a *API) join(r *http.Request, dev *httpapi.Device) httpapi.Response {
	body, err := httpapi.ReadBody(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	var req membershipRequest
	var extra map[string]json.RawMessage
	if err := httpapi.DecodeBytes(body, &req); err != nil {
		return httpapi.Fail(err)
	}
	if err := httpapi.DecodeBytes(body, &extra); err != nil {
		return httpapi.Fail(err)
	}
	target := mux.Vars(r)["roomIdOrAlias"]
	if target == "" {
		target = mux.Vars(r)["roomId"]
	}
	id, err := a.Rooms.ResolveRoom(r.Context(), target)
	if err != nil {
		return httpapi.Fail(err)
	}
	if err := a.Rooms.Join(r.Context(), id, dev.UserID, req.Reason, extra); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]string{"room_id": id})
}

// decodeMembership reads a membership request on {roomId}; needTarget
// requires user_id.
func decodeMembership(r *http.Request, needTarget bool) (string, membershipRequest, error) {
	var req membershipRequest
	id, err := roomID(r)
	if err != nil {
		return "", req, err
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return "", req, err
	}
	if needTarget && req.UserID == "" {
		return "", req, httpapi.MissingParam("user_id is required")
	}
	return id, req, nil
}

// POST /_matrix/client/v3/rooms/{roomId}/invite
func (a *API) invite(r *http.Request, dev *httpapi.Device) httpapi.Response {
	id, req, err := decodeMembership(r, true)
	if err == nil {
		err = a.Rooms.Invite(r.Context(), id, dev.UserID, req.UserID, req.Reason)
	}
	return httpapi.EmptyOr(err)
}

// POST /_matrix/client/v3/rooms/{roomId}/leave
func (a *API) leave(r *http.Request, dev *httpapi.Device) httpapi.Response {
	id, req, err := decodeMembership(r, false)
	if err == nil {
		err = a.Rooms.Leave(r.Context(), id, dev.UserID, req.Reason)
	}
	return httpapi.EmptyOr(err)
}

// POST /_matrix/client/v3/rooms/{roomId}/forget
func (a *API) forget(r *http.Request, dev *httpapi.Device) httpapi.Response {
	id, _, err := decodeMembership(r, false)
	if err == nil {
		err = a.Rooms.Forget(r.Context(), id, dev.UserID)
	}
	return httpapi.EmptyOr(err)
}

// POST /_matrix/client/v3/rooms/{roomId}/{kick|ban|unban}
func (a *API) moderate(r *http.Request, dev *httpapi.Device) httpapi.Response {
	id, req, err := decodeMembership(r, true)
	if err != nil {
		return httpapi.Fail(err)
	}
	switch mux.Vars(r)["action"] {
	case "kick":
		err = a.Rooms.Kick(r.Context(), id, dev.UserID, req.UserID, req.Reason)
	case "ban":
		err = a.Rooms.Ban(r.Context(), id, dev.UserID, req.UserID, req.Reason)
	default:
		err = a.Rooms.Unban(r.Context(), id, dev.UserID, req.UserID, req.Reason)
	}
	return httpapi.EmptyOr(err)
}

// GET /_matrix/client/v3/rooms/{roomId}/state
func (a *API) getState(r *http.Request, dev *httpapi.Device) httpapi.Response {
	id, err := roomID(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	state, err := a.Rooms.State(r.Context(), dev, id)
	if err != nil {
		return httpapi.Fail(err)
	}
	if state == nil {
		state = []json.RawMessage{}
	}
	return httpapi.OK(state)
}

// GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}
func (a *API) getStateEvent(r *http.Request, dev *httpapi.Device) httpapi.Response {
	id, err := roomID(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	v := mux.Vars(r)
	ev, err := a.Rooms.StateEvent(r.Context(), dev, id, v["eventType"], v["stateKey"])
	if err != nil {
		return httpapi.Fail(err)
	}
	if r.URL.Query().Get("format") == "event" {
		return httpapi.OK(ev)
	}
	return httpapi.OK(json.RawMessage(gjson.GetBytes(ev, "content").Raw))
}

// PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}
func (a *API) putStateEvent(r *http.Request, dev *httpapi.Device) httpapi.Response {
	v := mux.Vars(r)
	stateKey := v["stateKey"]
	return a.send(r, dev, rooms.Event{Type: v["eventType"], StateKey: &stateKey})
}

// PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}
func (a *API) sendEvent(r *http.Request, dev *httpapi.Device) httpapi.Response {
	v := mux.Vars(r)
	return a.send(r, dev, rooms.Event{Type: v["eventType"], TxnID: rooms.TxnKey("s", v["txnId"])})
}

// PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}
func (a *API) redact(r *http.Request, dev *httpapi.Device) httpapi.Response {
	v := mux.Vars(r)
	if !strings.HasPrefix(v["eventId"], "$") {
		return httpapi.Fail(httpapi.InvalidParam("%q is not an event ID", v["eventId"]))
	}
	return a.send(r, dev, rooms.Event{Type: spec.MRoomRedaction, Redacts: v["eventId"], TxnID: rooms.TxnKey("r", v["txnId"])})
}

// send completes an event from the request and sends it.
func (a *API) send(r *http.Request, dev *httpapi.Device, ev rooms.Event) httpapi.Response {
	id, err := roomID(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	if ev.Type == "" || len(ev.Type) > 255 {
		return httpapi.Fail(httpapi.InvalidParam("invalid event type"))
	}
	body, err := httpapi.ReadBody(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	var content map[string]json.RawMessage
	if err := httpapi.DecodeBytes(body, &content); err != nil {
		return httpapi.Fail(err)
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	if ev.Redacts != "" {
		var reason struct {
			Reason *string `json:"reason"`
		}
		if err := httpapi.DecodeBytes(body, &reason); err != nil {
			return httpapi.Fail(err)
		}
		// Room version 11 moved redacts into content; servers set both.
		content["redacts"], _ = json.Marshal(ev.Redacts)
		if body, err = json.Marshal(content); err != nil {
			return httpapi.Fail(err)
		}
	}
	ev.Sender, ev.DeviceID, ev.Content = dev.UserID, dev.DeviceID, body
	// With a delay (MSC4140), the event is scheduled, not sent.
	if delay := r.URL.Query(); delay.Has("org.matrix.msc4140.delay") && ev.Redacts == "" {
		if ev.TxnID != "" {
			ev.TxnID = rooms.TxnKey("d", ev.TxnID)
		}
		delayID, err := a.Delayed.Schedule(r.Context(), dev, id, ev, delay.Get("org.matrix.msc4140.delay"))
		if err != nil {
			return httpapi.Fail(err)
		}
		return httpapi.OK(map[string]string{"delay_id": delayID})
	}
	if ev.TxnID == "" {
		ev.DeviceID = ""
	}
	eventID, err := a.Rooms.Send(r.Context(), id, ev)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]string{"event_id": eventID})
}

// GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}
func (a *API) getEvent(r *http.Request, dev *httpapi.Device) httpapi.Response {
	id, err := roomID(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	ev, err := a.Rooms.Event(r.Context(), dev, id, mux.Vars(r)["eventId"])
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(ev)
}

// roomEventFilter reads the filter query parameter.
func roomEventFilter(r *http.Request) (filter.RoomEventFilter, error) {
	var f filter.RoomEventFilter
	if s := r.URL.Query().Get("filter"); s != "" {
		if err := httpapi.DecodeBytes([]byte(s), &f); err != nil {
			return f, httpapi.InvalidParam("filter is not a valid RoomEventFilter")
		}
	}
	return f, nil
}

// GET /_matrix/client/v3/rooms/{roomId}/messages
func (a *API) messages(r *http.Request, dev *httpapi.Device) httpapi.Response {
	id, err := roomID(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	q := r.URL.Query()
	// dir is required by the spec; Synapse takes its absence as forwards,
	// and clients written against it may leave it out.
	dir := q.Get("dir")
	if dir == "" {
		dir = "f"
	}
	if dir != "b" && dir != "f" {
		return httpapi.Fail(httpapi.InvalidParam("dir must be b or f"))
	}
	limit, err := queryInt(r, "limit", 10)
	if err != nil {
		return httpapi.Fail(err)
	}
	f, err := roomEventFilter(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	res, err := a.Rooms.Messages(r.Context(), dev, rooms.MessagesRequest{
		RoomID: id, From: q.Get("from"), To: q.Get("to"), Backwards: dir == "b",
		Limit: min(max(limit, 1), 1000), Filter: f,
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	if res.Chunk == nil {
		res.Chunk = []json.RawMessage{}
	}
	return httpapi.OK(res)
}

// GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}
func (a *API) context(r *http.Request, dev *httpapi.Device) httpapi.Response {
	id, err := roomID(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	limit, err := queryInt(r, "limit", 10)
	if err != nil {
		return httpapi.Fail(err)
	}
	f, err := roomEventFilter(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	res, err := a.Rooms.Context(r.Context(), dev, id, mux.Vars(r)["eventId"], min(limit, 100), f)
	if err != nil {
		return httpapi.Fail(err)
	}
	for _, list := range []*[]json.RawMessage{&res.EventsBefore, &res.EventsAfter, &res.State} {
		if *list == nil {
			*list = []json.RawMessage{}
		}
	}
	return httpapi.OK(res)
}

// GET /_matrix/client/v3/rooms/{roomId}/members
func (a *API) members(r *http.Request, dev *httpapi.Device) httpapi.Response {
	id, err := roomID(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	q := r.URL.Query()
	for _, m := range []string{q.Get("membership"), q.Get("not_membership")} {
		switch m {
		case "", spec.Join, spec.Invite, spec.Leave, spec.Ban, spec.Knock:
		default:
			return httpapi.Fail(httpapi.InvalidParam("unknown membership %q", m))
		}
	}
	chunk, err := a.Rooms.Members(r.Context(), dev, id, q.Get("at"), q.Get("membership"), q.Get("not_membership"))
	if err != nil {
		return httpapi.Fail(err)
	}
	if chunk == nil {
		chunk = []json.RawMessage{}
	}
	return httpapi.OK(map[string]any{"chunk": chunk})
}

// GET /_matrix/client/v3/rooms/{roomId}/joined_members
func (a *API) joinedMembers(r *http.Request, dev *httpapi.Device) httpapi.Response {
	id, err := roomID(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	joined, err := a.Rooms.JoinedMembers(r.Context(), dev.UserID, id)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"joined": joined})
}

// GET /_matrix/client/v3/directory/room/{roomAlias}
func (a *API) getAlias(r *http.Request, _ *httpapi.Device) httpapi.Response {
	id, err := a.Rooms.Alias(r.Context(), mux.Vars(r)["roomAlias"])
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"room_id": id, "servers": []string{a.Cfg.ServerName}})
}

// PUT /_matrix/client/v3/directory/room/{roomAlias}
func (a *API) putAlias(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		RoomID string `json:"room_id"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.RoomID == "" {
		return httpapi.Fail(httpapi.MissingParam("room_id is required"))
	}
	return httpapi.EmptyOr(a.Rooms.AddAlias(r.Context(), dev.UserID, mux.Vars(r)["roomAlias"], req.RoomID))
}

// DELETE /_matrix/client/v3/directory/room/{roomAlias}
func (a *API) deleteAlias(r *http.Request, dev *httpapi.Device) httpapi.Response {
	return httpapi.EmptyOr(a.Rooms.DeleteAlias(r.Context(), dev, mux.Vars(r)["roomAlias"]))
}

// GET /_matrix/client/v3/rooms/{roomId}/aliases
func (a *API) roomAliases(r *http.Request, dev *httpapi.Device) httpapi.Response {
	id, err := roomID(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	aliases, err := a.Rooms.RoomAliases(r.Context(), dev.UserID, id)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"aliases": aliases})
}
