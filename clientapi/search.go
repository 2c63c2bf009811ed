package clientapi

import (
	"net/http"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/rooms"
)

// POST /_matrix/client/v3/search
func (a *API) search(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		Categories struct {
			RoomEvents *struct {
				SearchTerm *string  `json:"search_term"`
				Keys       []string `json:"keys"`
				OrderBy    string   `json:"order_by"`
				Filter     struct {
					Rooms []string `json:"rooms"`
					Limit *int     `json:"limit"`
				} `json:"filter"`
				EventContext *struct {
					BeforeLimit    *int `json:"before_limit"`
					AfterLimit     *int `json:"after_limit"`
					IncludeProfile bool `json:"include_profile"`
				} `json:"event_context"`
			} `json:"room_events"`
		} `json:"search_categories"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	re := req.Categories.RoomEvents
	if re == nil {
		return httpapi.OK(map[string]any{"search_categories": map[string]any{}})
	}
	if re.SearchTerm == nil {
		return httpapi.Fail(httpapi.MissingParam("search_term is required"))
	}
	sr := rooms.SearchRequest{Term: *re.SearchTerm, Keys: re.Keys, Rooms: re.Filter.Rooms, Limit: 10, NextBatch: r.URL.Query().Get("next_batch")}
	for _, k := range re.Keys {
		if k != "content.body" && k != "content.name" && k != "content.topic" {
			return httpapi.Fail(httpapi.InvalidParam("unknown search key %q", k))
		}
	}
	switch re.OrderBy {
	case "", "rank":
	case "recent":
		sr.Recent = true
	default:
		return httpapi.Fail(httpapi.InvalidParam("order_by must be rank or recent"))
	}
	if l := re.Filter.Limit; l != nil {
		if *l < 0 {
			return httpapi.Fail(httpapi.InvalidParam("limit must not be negative"))
		}
		sr.Limit = min(*l, 100)
	}
	if c := re.EventContext; c != nil {
		sr.WithContext, sr.WithProfiles, sr.BeforeLimit, sr.AfterLimit = true, c.IncludeProfile, 5, 5
		if c.BeforeLimit != nil {
			sr.BeforeLimit = max(0, min(*c.BeforeLimit, 20))
		}
		if c.AfterLimit != nil {
			sr.AfterLimit = max(0, min(*c.AfterLimit, 20))
		}
	}
	res, err := a.Rooms.Search(r.Context(), dev, sr)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"search_categories": map[string]any{"room_events": res}})
}
