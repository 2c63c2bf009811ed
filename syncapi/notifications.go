package syncapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// GET /notifications: what push rules said notified the user.

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
	err := s.DB.Read(r.Context(), func(sq Store) error {
		list, after, err := sq.Notifications(r.Context(), dev.UserID, from, limit, only == "highlight")
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
		if after > 0 {
			next = strconv.FormatInt(after, 10)
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
