package clientapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/storage"
)

// POST /_matrix/client/v3/knock/{roomIdOrAlias}
func (a *API) knock(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req membershipRequest
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	id, err := a.Rooms.ResolveRoom(r.Context(), mux.Vars(r)["roomIdOrAlias"])
	if err != nil {
		return httpapi.Fail(err)
	}
	if err := a.Rooms.Knock(r.Context(), id, dev.UserID, req.Reason); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]string{"room_id": id})
}

// POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}: kept for the
// administrators (GET /_synapse/admin/v1/event_reports).
func (a *API) report(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		Reason string `json:"reason"`
		Score  *int64 `json:"score"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.Score != nil && (*req.Score < -100 || *req.Score > 0) {
		return httpapi.Fail(httpapi.InvalidParam("score must be between -100 and 0"))
	}
	v := mux.Vars(r)
	// One can report only what one can see.
	if _, err := a.Rooms.Event(r.Context(), dev, v["roomId"], v["eventId"]); err != nil {
		var he *httpapi.Error
		if errors.As(err, &he) && he.Kind == matrixerr.KindForbidden {
			return httpapi.Fail(httpapi.NotFound("event not found"))
		}
		return httpapi.Fail(err)
	}
	err := a.DB.Write(r.Context(), func(q Store) error {
		return q.AddEventReport(r.Context(), storage.EventReport{TS: a.Auth.Now().UnixMilli(), Reporter: dev.UserID,
			RoomID: v["roomId"], EventID: v["eventId"], Reason: req.Reason, Score: req.Score})
	})
	return httpapi.EmptyOr(err)
}

// GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event
func (a *API) timestampToEvent(r *http.Request, dev *httpapi.Device) httpapi.Response {
	q := r.URL.Query()
	ts, err := strconv.ParseInt(q.Get("ts"), 10, 64)
	if err != nil {
		return httpapi.Fail(httpapi.InvalidParam("ts must be a timestamp in milliseconds"))
	}
	var forwards bool
	switch q.Get("dir") {
	case "f":
		forwards = true
	case "b":
	default:
		return httpapi.Fail(httpapi.InvalidParam("dir must be f or b"))
	}
	e, err := a.Rooms.EventNear(r.Context(), dev, mux.Vars(r)["roomId"], ts, forwards)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"event_id": e.EventID, "origin_server_ts": e.OriginTS})
}

// POST /_matrix/client/v3/rooms/{roomId}/upgrade
func (a *API) upgrade(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		NewVersion string `json:"new_version"`
		// From version 12, who else creates the new room (MSC4289).
		AdditionalCreators []string `json:"additional_creators"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.NewVersion == "" {
		return httpapi.Fail(httpapi.MissingParam("new_version is required"))
	}
	id, err := a.Rooms.Upgrade(r.Context(), mux.Vars(r)["roomId"], dev.UserID, req.NewVersion, req.AdditionalCreators)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]string{"replacement_room": id})
}
