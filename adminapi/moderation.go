package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// Rooms, media and reports as Synapse's admin tools manage them: blocking,
// quarantine, statistics, single reports; and the federation and task
// pages, which have nothing to show here.

// roomIDParam is the path's room ID, checked for shape only (a room may be
// blocked before it exists).
func roomIDParam(r *http.Request) (string, error) {
	id := mux.Vars(r)["roomId"]
	if !strings.HasPrefix(id, "!") {
		return "", httpapi.InvalidParam("%q is not a room ID", id)
	}
	return id, nil
}

// GET /_synapse/admin/v1/room/{roomId}/media: the media the room's
// unencrypted events point to (the server cannot look into encrypted
// ones). total is not Synapse's; Ketesa pages with it.
func (a *API) roomMedia(r *http.Request, _ *httpapi.Device) httpapi.Response {
	l, err := a.room(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	uris, err := a.DB.R().RoomMedia(r.Context(), l.RoomID)
	if err != nil {
		return httpapi.Fail(err)
	}
	local, remote := []string{}, []string{}
	for _, u := range uris {
		if strings.HasPrefix(u, "mxc://"+a.Cfg.ServerName+"/") {
			local = append(local, u)
		} else {
			remote = append(remote, u)
		}
	}
	return httpapi.OK(map[string]any{"local": local, "remote": remote, "total": len(local) + len(remote)})
}

// GET /_synapse/admin/v1/rooms/{roomId}/block
func (a *API) getBlock(r *http.Request, _ *httpapi.Device) httpapi.Response {
	id, err := roomIDParam(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	blocked, by, err := a.DB.R().RoomBlock(r.Context(), id)
	if err != nil {
		return httpapi.Fail(err)
	}
	if !blocked {
		return httpapi.OK(map[string]bool{"block": false})
	}
	return httpapi.OK(map[string]any{"block": true, "user_id": by})
}

// PUT /_synapse/admin/v1/rooms/{roomId}/block {"block": bool}: a blocked
// room takes no new members (joins, knocks, invites); those in it stay.
func (a *API) setBlock(r *http.Request, dev *httpapi.Device) httpapi.Response {
	id, err := roomIDParam(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	var req struct {
		Block *bool `json:"block"`
	}
	if err := decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.Block == nil {
		return httpapi.Fail(httpapi.MissingParam("block is required"))
	}
	err = a.audited(r.Context(), dev, map[bool]string{true: "block_room", false: "unblock_room"}[*req.Block], id, "", func(ctx context.Context) error {
		return a.DB.Write(ctx, func(q Store) error {
			if *req.Block {
				return q.BlockRoom(ctx, id, dev.UserID, a.Now().UnixMilli())
			}
			return q.UnblockRoom(ctx, id)
		})
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]bool{"block": *req.Block})
}

// GET /_synapse/admin/v1/rooms/{roomId}/forward_extremities: history is a
// line here, so a room has one, its latest event.
func (a *API) forwardExtremities(r *http.Request, _ *httpapi.Device) httpapi.Response {
	l, err := a.room(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	q := a.DB.R()
	room, err := q.Room(r.Context(), l.RoomID)
	if err != nil {
		return httpapi.Fail(err)
	}
	latest, err := q.Event(r.Context(), room.LatestEventID)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"count": 1, "results": []map[string]any{{"event_id": latest.EventID,
		"state_group": nil, "depth": room.Depth, "received_ts": latest.OriginTS}}})
}

// DELETE /_synapse/admin/v1/rooms/{roomId}/forward_extremities: there are
// never extra ones to delete.
func (a *API) deleteForwardExtremities(r *http.Request, _ *httpapi.Device) httpapi.Response {
	if _, err := a.room(r); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]int{"deleted": 0})
}

// reportID reads the path's report ID.
func reportID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(mux.Vars(r)["reportId"], 10, 64)
	if err != nil || id < 0 {
		return 0, httpapi.InvalidParam("the report_id parameter must be a string representing a positive integer")
	}
	return id, nil
}

// GET /_synapse/admin/v1/event_reports/{reportId}: the report with the
// reported event as stored (redacted if it was).
func (a *API) eventReport(r *http.Request, _ *httpapi.Device) httpapi.Response {
	id, err := reportID(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	q := a.DB.R()
	rep, err := q.EventReportByID(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return httpapi.Fail(httpapi.NotFound("event report not found"))
	}
	if err != nil {
		return httpapi.Fail(err)
	}
	b, _ := json.Marshal(rep)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	body["event_json"] = nil
	if e, err := q.Event(r.Context(), rep.EventID); err == nil {
		body["event_json"] = json.RawMessage(e.JSON)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return httpapi.Fail(err)
	}
	return httpapi.OK(body)
}

// DELETE /_synapse/admin/v1/event_reports/{reportId}
func (a *API) deleteEventReport(r *http.Request, dev *httpapi.Device) httpapi.Response {
	id, err := reportID(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	err = a.audited(r.Context(), dev, "delete_event_report", strconv.FormatInt(id, 10), "", func(ctx context.Context) error {
		return a.DB.Write(ctx, func(q Store) error { return q.DeleteEventReport(ctx, id) })
	})
	if errors.Is(err, storage.ErrNotFound) {
		return httpapi.Fail(httpapi.NotFound("event report not found"))
	}
	return httpapi.EmptyOr(err)
}

// POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId} and
// .../unquarantine/...: quarantined media is answered 404 to everyone
// until lifted. As on Synapse, unknown media is not an error.
func (a *API) quarantine(on bool) httpapi.AuthHandler {
	return func(r *http.Request, dev *httpapi.Device) httpapi.Response {
		vars := mux.Vars(r)
		if vars["serverName"] != a.Cfg.ServerName {
			return httpapi.OK(httpapi.Empty) // never here: there is no remote media
		}
		by := map[bool]string{true: dev.UserID, false: ""}[on]
		action := map[bool]string{true: "quarantine_media", false: "unquarantine_media"}[on]
		err := a.audited(r.Context(), dev, action, "mxc://"+a.Cfg.ServerName+"/"+vars["mediaId"], "", func(ctx context.Context) error {
			return a.DB.Write(ctx, func(q Store) error { return q.QuarantineMedia(ctx, vars["mediaId"], by) })
		})
		if errors.Is(err, storage.ErrNotFound) {
			return httpapi.OK(httpapi.Empty)
		}
		return httpapi.EmptyOr(err)
	}
}

// GET /_synapse/admin/v1/statistics/users/media
func (a *API) mediaStatistics(r *http.Request, _ *httpapi.Device) httpapi.Response {
	l, err := readListing(r, storage.UserMediaOrders)
	if err != nil {
		return httpapi.Fail(err)
	}
	q := r.URL.Query()
	since, until := int64(0), int64(1<<62)
	for _, p := range []struct {
		name string
		v    *int64
	}{{"from_ts", &since}, {"until_ts", &until}} {
		if raw := q.Get(p.name); raw != "" {
			n, err := strconv.ParseInt(raw, 10, 64)
			if err != nil || n < 0 {
				return httpapi.Fail(httpapi.InvalidParam("%s must be a non-negative integer", p.name))
			}
			*p.v = n
		}
	}
	if until <= since {
		return httpapi.Fail(httpapi.InvalidParam("until_ts must be greater than from_ts"))
	}
	if q.Has("search_term") && q.Get("search_term") == "" {
		return httpapi.Fail(httpapi.InvalidParam("search_term cannot be empty"))
	}
	users, total, err := a.DB.R().MediaStats(r.Context(), since, until, q.Get("search_term"), l.order, l.back, l.from, l.limit)
	if err != nil {
		return httpapi.Fail(err)
	}
	body := map[string]any{"users": users, "total": total}
	if l.from+len(users) < total {
		body["next_token"] = l.from + len(users) // an integer here, as on Synapse
	}
	return httpapi.OK(body)
}

// GET /_synapse/admin/v1/statistics/database/rooms: the ten rooms whose
// events take the most space.
func (a *API) roomSizes(r *http.Request, _ *httpapi.Device) httpapi.Response {
	sizes, err := a.DB.R().RoomSizes(r.Context())
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"rooms": sizes[:min(len(sizes), 10)]})
}

// GET /_synapse/admin/v1/federation/destinations: there is no federation,
// so no destinations.
func (a *API) destinations(r *http.Request, _ *httpapi.Device) httpapi.Response {
	if _, _, err := page(r, 100); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"destinations": []any{}, "total": 0})
}

// GET /_synapse/admin/v1/scheduled_tasks: Redoubt's background work (the
// pruner, backups, delayed events) is not kept as tasks, and room deletion
// completes within its request, so there are none to list.
func (a *API) scheduledTasks(*http.Request, *httpapi.Device) httpapi.Response {
	return httpapi.OK(map[string]any{"scheduled_tasks": []any{}})
}
