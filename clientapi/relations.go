package clientapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/rooms"
)

// GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]
func (a *API) relations(r *http.Request, dev *httpapi.Device) httpapi.Response {
	v, q := mux.Vars(r), r.URL.Query()
	limit, err := queryInt(r, "limit", 50)
	if err != nil {
		return httpapi.Fail(err)
	}
	req := rooms.RelationsRequest{RoomID: v["roomId"], EventID: v["eventId"], RelType: v["relType"], EventType: v["eventType"],
		From: q.Get("from"), To: q.Get("to"), Limit: max(1, min(limit, 1000)), Backwards: true}
	switch q.Get("dir") {
	case "", "b":
	case "f":
		req.Backwards = false
	default:
		return httpapi.Fail(httpapi.InvalidParam("dir must be b or f"))
	}
	switch q.Get("recurse") {
	case "", "false":
	case "true":
		req.Recurse = true
	default:
		return httpapi.Fail(httpapi.InvalidParam("recurse must be true or false"))
	}
	page, err := a.Rooms.Relations(r.Context(), dev, req)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(page)
}

// GET /_matrix/client/v1/rooms/{roomId}/threads
func (a *API) threads(r *http.Request, dev *httpapi.Device) httpapi.Response {
	limit, err := queryInt(r, "limit", 50)
	if err != nil {
		return httpapi.Fail(err)
	}
	participated := false
	switch r.URL.Query().Get("include") {
	case "", "all":
	case "participated":
		participated = true
	default:
		return httpapi.Fail(httpapi.InvalidParam("include must be all or participated"))
	}
	page, err := a.Rooms.Threads(r.Context(), dev, mux.Vars(r)["roomId"], participated, r.URL.Query().Get("from"), max(1, min(limit, 1000)))
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(page)
}

// GET /_matrix/client/v1/rooms/{roomId}/hierarchy
func (a *API) hierarchy(r *http.Request, dev *httpapi.Device) httpapi.Response {
	q := r.URL.Query()
	limit, err := queryInt(r, "limit", 50)
	if err != nil {
		return httpapi.Fail(err)
	}
	depth, err := queryInt(r, "max_depth", -1)
	if err != nil {
		return httpapi.Fail(err)
	}
	if q.Get("max_depth") == "" {
		depth = -1
	}
	req := rooms.HierarchyRequest{RoomID: mux.Vars(r)["roomId"], MaxDepth: depth, Limit: max(1, min(limit, 100)), From: q.Get("from")}
	switch q.Get("suggested_only") {
	case "", "false":
	case "true":
		req.SuggestedOnly = true
	default:
		return httpapi.Fail(httpapi.InvalidParam("suggested_only must be true or false"))
	}
	res, err := a.Rooms.Hierarchy(r.Context(), dev, req)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(res)
}

// GET /_matrix/client/v1/room_summary/{roomIdOrAlias} (and MSC3266's
// unstable path, which Element uses)
func (a *API) roomSummary(r *http.Request, dev *httpapi.Device) httpapi.Response {
	summary, err := a.Rooms.Summary(r.Context(), dev, mux.Vars(r)["roomIdOrAlias"])
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(summary)
}
