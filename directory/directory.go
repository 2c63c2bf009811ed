// Package directory finds people and rooms: the user directory (in one
// organisation, everyone is findable by default) and the room directory
// of rooms their admins published.
package directory

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
)

// Store is the part of storage.Q the directory uses: what it reads
// and writes.
type Store interface {
	rooms.StateReader
	Membership(ctx context.Context, roomID, userID string) (string, int64, error)
	PublishedRooms(ctx context.Context) ([]storage.RoomListing, error)
	Room(ctx context.Context, roomID string) (storage.Room, error)
	RoomPublished(ctx context.Context, roomID string) (bool, error)
	SearchUsers(ctx context.Context, searcher, term string, sharedOnly bool, limit int) ([]storage.DirectoryUser, error)
	SetRoomPublished(ctx context.Context, roomID string, published bool) error
}

var _ Store = storage.Q{}

// API serves the directory endpoints.
type API struct {
	Cfg *config.Config
	DB  storage.View[Store]
}

// Register adds the routes.
func (a *API) Register(r *mux.Router, h *httpapi.API) {
	authed := httpapi.Routes{R: r, API: h}.Authed
	const c = "/_matrix/client/v3"
	authed(c+"/user_directory/search", a.searchUsers, "POST")
	authed(c+"/publicRooms", a.publicRooms, "GET", "POST")
	authed(c+"/directory/list/room/{roomId}", a.getVisibility, "GET")
	authed(c+"/directory/list/room/{roomId}", a.setVisibility, "PUT")
}

// POST /_matrix/client/v3/user_directory/search
func (a *API) searchUsers(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		SearchTerm *string `json:"search_term"`
		Limit      *int    `json:"limit"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.SearchTerm == nil {
		return httpapi.Fail(httpapi.MissingParam("search_term is required"))
	}
	limit := 10
	if req.Limit != nil {
		if *req.Limit < 0 {
			return httpapi.Fail(httpapi.InvalidParam("limit must not be negative"))
		}
		limit = min(*req.Limit, 100)
	}
	// One more than asked, to tell whether the answer was limited.
	users, err := a.DB.R().SearchUsers(r.Context(), dev.UserID, *req.SearchTerm, !a.Cfg.UserDirectory.SearchAllUsers, limit+1)
	if err != nil {
		return httpapi.Fail(err)
	}
	limited := len(users) > limit
	results := []map[string]any{}
	for _, u := range users[:min(len(users), limit)] {
		m := map[string]any{"user_id": u.UserID}
		if u.DisplayName != "" {
			m["display_name"] = u.DisplayName
		}
		if u.AvatarURL != "" {
			m["avatar_url"] = u.AvatarURL
		}
		results = append(results, m)
	}
	return httpapi.OK(map[string]any{"results": results, "limited": limited})
}

// GET and POST /_matrix/client/v3/publicRooms
func (a *API) publicRooms(r *http.Request, _ *httpapi.Device) httpapi.Response {
	var req struct {
		Limit  *int   `json:"limit"`
		Since  string `json:"since"`
		Server string `json:"server"`
		Filter struct {
			Term string `json:"generic_search_term"`
		} `json:"filter"`
	}
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		if err := httpapi.Decode(r, &req); err != nil {
			return httpapi.Fail(err)
		}
	} else {
		req.Since = q.Get("since")
		if l := q.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil {
				return httpapi.Fail(httpapi.InvalidParam("limit must be an integer"))
			}
			req.Limit = &n
		}
	}
	if server := q.Get("server"); server != "" {
		req.Server = server
	}
	if req.Server != "" && req.Server != a.Cfg.ServerName {
		// No federation: other servers' directories are out of reach.
		return httpapi.Fail(httpapi.NotFound("unknown server %q", req.Server))
	}
	from := 0
	if req.Since != "" {
		n, err := strconv.Atoi(req.Since)
		if err != nil || n < 0 {
			return httpapi.Fail(httpapi.InvalidParam("invalid since token"))
		}
		from = n
	}
	limit := 100
	if req.Limit != nil && *req.Limit > 0 {
		limit = min(*req.Limit, 500)
	}
	all, err := a.DB.R().PublishedRooms(r.Context())
	if err != nil {
		return httpapi.Fail(err)
	}
	var matched []storage.RoomListing
	for _, l := range all {
		if req.Filter.Term == "" || containsFold(l.Name, req.Filter.Term) || containsFold(l.Topic, req.Filter.Term) ||
			containsFold(l.CanonicalAlias, req.Filter.Term) || containsFold(l.RoomID, req.Filter.Term) {
			matched = append(matched, l)
		}
	}
	chunk := []map[string]any{}
	for _, l := range matched[min(from, len(matched)):min(from+limit, len(matched))] {
		room := map[string]any{"room_id": l.RoomID, "num_joined_members": l.JoinedMembers,
			"world_readable": l.HistoryVisible == "world_readable", "guest_can_join": l.GuestAccess == "can_join",
			"join_rule": l.JoinRules}
		for k, v := range map[string]string{"name": l.Name, "topic": l.Topic, "canonical_alias": l.CanonicalAlias,
			"avatar_url": l.Avatar, "room_type": l.RoomType} {
			if v != "" {
				room[k] = v
			}
		}
		chunk = append(chunk, room)
	}
	body := map[string]any{"chunk": chunk, "total_room_count_estimate": len(matched)}
	if from+limit < len(matched) {
		body["next_batch"] = strconv.Itoa(from + limit)
	}
	if from > 0 {
		body["prev_batch"] = strconv.Itoa(max(0, from-limit))
	}
	return httpapi.OK(body)
}

func (a *API) room(r *http.Request) (storage.Room, error) {
	room, err := a.DB.R().Room(r.Context(), mux.Vars(r)["roomId"])
	if errors.Is(err, storage.ErrNotFound) {
		return room, httpapi.NotFound("unknown room")
	}
	return room, err
}

// GET /_matrix/client/v3/directory/list/room/{roomId}
func (a *API) getVisibility(r *http.Request, _ *httpapi.Device) httpapi.Response {
	room, err := a.room(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	published, err := a.DB.R().RoomPublished(r.Context(), room.RoomID)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]string{"visibility": map[bool]string{true: "public", false: "private"}[published]})
}

// PUT /_matrix/client/v3/directory/list/room/{roomId}: by a member who may
// change the room's published addresses (m.room.canonical_alias), or an
// admin.
func (a *API) setVisibility(r *http.Request, dev *httpapi.Device) httpapi.Response {
	room, err := a.room(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	var req struct {
		Visibility string `json:"visibility"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.Visibility != "public" && req.Visibility != "private" {
		return httpapi.Fail(httpapi.InvalidParam("visibility must be public or private"))
	}
	err = a.DB.Write(r.Context(), func(q Store) error {
		if !dev.IsAdmin {
			membership, _, err := q.Membership(r.Context(), room.RoomID, dev.UserID)
			if err != nil {
				return err
			}
			if membership != spec.Join {
				return httpapi.Forbidden("you are not in this room")
			}
			level, pl, err := rooms.PowerOf(r.Context(), q, &room, dev.UserID)
			if err != nil {
				return err
			}
			if level < pl.EventLevel(spec.MRoomCanonicalAlias, true) {
				return httpapi.Forbidden("you may not publish this room")
			}
		}
		return q.SetRoomPublished(r.Context(), room.RoomID, req.Visibility == "public")
	})
	return httpapi.EmptyOr(err)
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
