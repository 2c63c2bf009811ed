package clientapi

import (
	"encoding/json"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/httpapi"
)

// Delayed events (MSC4140) are scheduled with a query parameter of the send
// and state endpoints; these manage them.

// GET /_matrix/client/unstable/org.matrix.msc4140/delayed_events
func (a *API) delayedEvents(r *http.Request, dev *httpapi.Device) httpapi.Response {
	list, err := a.Delayed.List(r.Context(), dev.UserID)
	if err != nil {
		return httpapi.Fail(err)
	}
	out := make([]map[string]any, 0, len(list))
	for _, d := range list {
		e := map[string]any{"delay_id": d.DelayID, "room_id": d.RoomID, "type": d.Type, "content": json.RawMessage(d.Content),
			"delay": d.DelayMS, "running_since": d.SendTS - d.DelayMS}
		if d.StateKey != nil {
			e["state_key"] = *d.StateKey
		}
		out = append(out, e)
	}
	return httpapi.OK(map[string]any{"delayed_events": out})
}

// POST .../delayed_events/{delayId}/{cancel|restart|send}, and the older
// POST .../delayed_events/{delayId} with {"action": ...}. No access token:
// the delay ID is the capability, so that whatever holds it can restart it.
func (a *API) manageDelayed(r *http.Request) httpapi.Response {
	action := mux.Vars(r)["action"]
	if action == "" {
		var req struct {
			Action string `json:"action"`
		}
		if err := httpapi.Decode(r, &req); err != nil {
			return httpapi.Fail(err)
		}
		if req.Action == "" {
			return httpapi.Fail(httpapi.MissingParam("action is required"))
		}
		action = req.Action
	}
	return httpapi.EmptyOr(a.Delayed.Act(r.Context(), mux.Vars(r)["delayId"], action))
}
