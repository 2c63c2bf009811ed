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
