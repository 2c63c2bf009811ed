package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// The user pages of Synapse's admin tools: what a user is in, has set up
// and may do. Shapes and errors are Synapse's.

// GET /_synapse/admin/v1/username_available?username=
func (a *API) usernameAvailable(r *http.Request, _ *httpapi.Device) httpapi.Response {
	if err := a.Auth.Available(r.Context(), r.URL.Query().Get("username")); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]bool{"available": true})
}

// GET /_synapse/admin/v1/users/{userId}/joined_rooms
func (a *API) joinedRooms(r *http.Request, _ *httpapi.Device) httpapi.Response {
	userID, err := a.existingUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	rooms, err := a.DB.R().RoomsWithMembership(r.Context(), userID, spec.Join)
	if err != nil {
		return httpapi.Fail(err)
	}
	if rooms == nil {
		rooms = []string{}
	}
	return httpapi.OK(map[string]any{"joined_rooms": rooms, "total": len(rooms)})
}

// GET /_synapse/admin/v1/users/{userId}/memberships: every room the user
// has a membership in, deleted rooms aside. total is not Synapse's, but
// Ketesa pages with it.
func (a *API) memberships(r *http.Request, _ *httpapi.Device) httpapi.Response {
	userID, err := a.existingUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	q := a.DB.R()
	list, err := q.Memberships(r.Context(), userID)
	if err != nil {
		return httpapi.Fail(err)
	}
	out := map[string]string{}
	for _, m := range list {
		if deleted, err := q.RoomDeleted(r.Context(), m.RoomID); err != nil {
			return httpapi.Fail(err)
		} else if !deleted {
			out[m.RoomID] = m.Membership
		}
	}
	return httpapi.OK(map[string]any{"memberships": out, "total": len(out)})
}

// GET /_synapse/admin/v1/users/{userId}/pushers
func (a *API) userPushers(r *http.Request, _ *httpapi.Device) httpapi.Response {
	userID, err := a.existingUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	pushers, err := a.DB.R().Pushers(r.Context(), userID)
	if err != nil {
		return httpapi.Fail(err)
	}
	out := []map[string]any{}
	for _, p := range pushers {
		out = append(out, map[string]any{"app_id": p.AppID, "pushkey": p.Pushkey, "kind": p.Kind,
			"app_display_name": p.AppDisplayName, "device_display_name": p.DeviceDisplayName,
			"profile_tag": p.ProfileTag, "lang": p.Lang, "data": json.RawMessage(p.Data)})
	}
	return httpapi.OK(map[string]any{"pushers": out, "total": len(out)})
}

// fromTS reads the from_ts query parameter (milliseconds, default 0).
func fromTS(r *http.Request) (int64, error) {
	raw := r.URL.Query().Get("from_ts")
	if raw == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 {
		return 0, httpapi.InvalidParam("from_ts must be a non-negative integer")
	}
	return n, nil
}

// GET /_synapse/admin/v1/users/{userId}/sent_invite_count?from_ts=
func (a *API) sentInviteCount(r *http.Request, _ *httpapi.Device) httpapi.Response {
	userID, err := a.existingUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	from, err := fromTS(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	n, err := a.DB.R().SentInviteCount(r.Context(), userID, from)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]int{"invite_count": n})
}

// GET /_synapse/admin/v1/users/{userId}/cumulative_joined_room_count
func (a *API) cumulativeJoinedRoomCount(r *http.Request, _ *httpapi.Device) httpapi.Response {
	userID, err := a.existingUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	if _, err := fromTS(r); err != nil {
		return httpapi.Fail(err)
	}
	n, err := a.DB.R().CumulativeJoinedRoomCount(r.Context(), userID)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]int{"cumulative_joined_room_count": n})
}

// GET /_synapse/admin/v1/users/{userId}/override_ratelimit: {} when the
// user has none.
func (a *API) getRateLimit(r *http.Request, _ *httpapi.Device) httpapi.Response {
	userID, err := a.existingUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	o, err := a.DB.R().RateLimitOverrideOf(r.Context(), userID)
	if errors.Is(err, storage.ErrNotFound) {
		return httpapi.OK(httpapi.Empty)
	}
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(o)
}

// POST /_synapse/admin/v1/users/{userId}/override_ratelimit: replaces the
// user's per-user rate limits (sending, rooms, uploads, to-device); 0 and
// 0 lifts them.
func (a *API) setRateLimit(r *http.Request, dev *httpapi.Device) httpapi.Response {
	userID, err := a.existingUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	var req struct {
		MessagesPerSecond *int64 `json:"messages_per_second"`
		BurstCount        *int64 `json:"burst_count"`
	}
	if err := decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	var o storage.RateLimitOverride
	if v := req.MessagesPerSecond; v != nil {
		if *v < 0 {
			return httpapi.Fail(httpapi.InvalidParam("messages_per_second must be a non-negative integer"))
		}
		o.MessagesPerSecond = float64(*v)
	}
	if v := req.BurstCount; v != nil {
		if *v < 0 || *v > 1<<31 {
			return httpapi.Fail(httpapi.InvalidParam("burst_count must be a non-negative integer"))
		}
		o.BurstCount = int(*v)
	}
	detail := fmt.Sprintf("messages_per_second=%v,burst_count=%d", o.MessagesPerSecond, o.BurstCount)
	err = a.audited(r.Context(), dev, "override_ratelimit", userID, detail, func(ctx context.Context) error {
		return a.DB.Write(ctx, func(q Store) error { return q.SetRateLimitOverride(ctx, userID, o) })
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(o)
}

// DELETE /_synapse/admin/v1/users/{userId}/override_ratelimit
func (a *API) deleteRateLimit(r *http.Request, dev *httpapi.Device) httpapi.Response {
	userID, err := a.existingUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.EmptyOr(a.audited(r.Context(), dev, "delete_ratelimit_override", userID, "", func(ctx context.Context) error {
		return a.DB.Write(ctx, func(q Store) error { return q.DeleteRateLimitOverride(ctx, userID) })
	}))
}

// GET /_synapse/admin/v1/users/{userId}/accountdata
func (a *API) accountData(r *http.Request, _ *httpapi.Device) httpapi.Response {
	userID, err := a.existingUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	entries, err := a.DB.R().AccountDataBetween(r.Context(), userID, 0, 1<<62)
	if err != nil {
		return httpapi.Fail(err)
	}
	global, rooms := map[string]json.RawMessage{}, map[string]map[string]json.RawMessage{}
	for _, e := range entries {
		if e.RoomID == "" {
			global[e.Type] = e.Content
			continue
		}
		if rooms[e.RoomID] == nil {
			rooms[e.RoomID] = map[string]json.RawMessage{}
		}
		rooms[e.RoomID][e.Type] = e.Content
	}
	return httpapi.OK(map[string]any{"account_data": map[string]any{"global": global, "rooms": rooms}})
}

// GET /_synapse/admin/v1/experimental_features/{userId}: Redoubt has no
// experimental features to switch per user, so the set is empty.
func (a *API) experimentalFeatures(r *http.Request, _ *httpapi.Device) httpapi.Response {
	if _, err := a.existingUser(r); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"features": map[string]bool{}})
}

// PUT /_synapse/admin/v1/experimental_features/{userId}: every feature
// named is unknown here.
func (a *API) setExperimentalFeatures(r *http.Request, _ *httpapi.Device) httpapi.Response {
	if _, err := a.existingUser(r); err != nil {
		return httpapi.Fail(err)
	}
	var req struct {
		Features map[string]bool `json:"features"`
	}
	if err := decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	for name := range req.Features {
		return httpapi.Fail(httpapi.InvalidParam("%q is not an experimental feature of this server", name))
	}
	return httpapi.OK(httpapi.Empty)
}

// PUT /_synapse/admin/v1/suspend/{userId} {"suspend": bool} (MSC3823): a
// suspended user may log in, read, leave rooms and redact their own
// messages; sending, joining, inviting, creating rooms and changing their
// profile answer 403 M_USER_SUSPENDED.
func (a *API) suspend(r *http.Request, dev *httpapi.Device) httpapi.Response {
	userID, err := a.existingUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	var req struct {
		Suspend *bool `json:"suspend"`
	}
	if err := decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.Suspend == nil {
		return httpapi.Fail(httpapi.MissingParam("suspend is required"))
	}
	action := map[bool]string{true: "suspend_user", false: "unsuspend_user"}[*req.Suspend]
	err = a.audited(r.Context(), dev, action, userID, "", func(ctx context.Context) error {
		return a.DB.Write(ctx, func(q Store) error { return q.SetSuspended(ctx, userID, *req.Suspend) })
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]bool{"user_" + userID + "_suspended": *req.Suspend})
}

// POST /_synapse/admin/v1/users/{userId}/login is refused: an admin
// logging in as a user could read their messages through the server, and
// Redoubt gives admins no such power.
func (a *API) loginAsUser(r *http.Request, _ *httpapi.Device) httpapi.Response {
	if _, err := a.existingUser(r); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.Fail(httpapi.Forbidden("logging in as another user is not offered: on Redoubt an admin cannot act as a user or read their messages"))
}
