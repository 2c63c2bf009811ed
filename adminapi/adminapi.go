// Package adminapi is the tenant administrator's API: the commonly used
// subset of Synapse's admin API (same paths, fields and paging, so tools
// written for Synapse work), Redoubt's own /_redoubt/admin/v1 endpoints,
// and the embedded admin panel at /admin. Only users with the admin flag
// may call it; every action is recorded in the audit log.
package adminapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/auth"
	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/media"
	"github.com/redoubt-systems/redoubt/notifier"
	"github.com/redoubt-systems/redoubt/retention"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
)

// Store is the part of storage.Q the admin API uses: what it reads
// and writes.
type Store interface {
	rooms.EventReader
	AccountDataBetween(ctx context.Context, userID string, from, to int64) ([]storage.AccountDataEntry, error)
	AddAudit(ctx context.Context, e storage.AuditEntry) error
	Audit(ctx context.Context, from, limit int) ([]storage.AuditEntry, int, error)
	BlockRoom(ctx context.Context, roomID, by string, ts int64) error
	CreateRegistrationToken(ctx context.Context, t storage.RegistrationToken) error
	CumulativeJoinedRoomCount(ctx context.Context, userID string) (int, error)
	CurrentState(ctx context.Context, roomID string) ([]storage.Event, error)
	DeleteEventReport(ctx context.Context, id int64) error
	DeleteRateLimitOverride(ctx context.Context, userID string) error
	DeleteRegistrationToken(ctx context.Context, token string) error
	Devices(ctx context.Context, userID string) ([]storage.Device, error)
	Event(ctx context.Context, eventID string) (storage.Event, error)
	EventReportByID(ctx context.Context, id int64) (storage.EventReport, error)
	EventReports(ctx context.Context, from, limit int) ([]storage.EventReport, int, error)
	ExternalIDs(ctx context.Context, userID string) ([]storage.ExternalID, error)
	InstanceCounts(ctx context.Context) (storage.Counts, error)
	InstanceState(ctx context.Context, key string) (int64, error)
	ListRooms(ctx context.Context, search, orderBy string, backwards bool, from, limit int) ([]storage.RoomListing, int, error)
	ListUsers(ctx context.Context, f storage.UserFilter) ([]storage.UserListing, int, error)
	Media(ctx context.Context, mediaID string) (storage.Media, error)
	MediaOf(ctx context.Context, userID string, limit int) ([]storage.Media, error)
	MediaPage(ctx context.Context, userID string, from, limit int) ([]storage.Media, int, error)
	MediaStats(ctx context.Context, fromTS, untilTS int64, search, orderBy string, backwards bool, from, limit int) ([]storage.UserMediaStats, int, error)
	Membership(ctx context.Context, roomID, userID string) (string, int64, error)
	Memberships(ctx context.Context, userID string) ([]storage.RoomMembership, error)
	NoticeRoom(ctx context.Context, userID string) (string, error)
	Pushers(ctx context.Context, userID string) ([]storage.Pusher, error)
	QuarantineMedia(ctx context.Context, mediaID, by string) error
	RateLimitOverrideOf(ctx context.Context, userID string) (storage.RateLimitOverride, error)
	ReactivateUser(ctx context.Context, userID string) error
	RegistrationTokenByName(ctx context.Context, token string) (storage.RegistrationToken, error)
	RegistrationTokens(ctx context.Context, valid *bool, now int64) ([]storage.RegistrationToken, error)
	Room(ctx context.Context, roomID string) (storage.Room, error)
	RoomBlock(ctx context.Context, roomID string) (blocked bool, by string, err error)
	RoomDeleted(ctx context.Context, roomID string) (bool, error)
	RoomListingOf(ctx context.Context, roomID string) (storage.RoomListing, error)
	RoomMedia(ctx context.Context, roomID string) ([]string, error)
	RoomMembers(ctx context.Context, roomID string, memberships ...string) ([]string, error)
	RoomSizes(ctx context.Context) ([]storage.RoomSize, error)
	RoomsWithMembership(ctx context.Context, userID string, memberships ...string) ([]string, error)
	SentInviteCount(ctx context.Context, userID string, fromTS int64) (int, error)
	SetAccountData(ctx context.Context, userID, roomID, typ string, content []byte) (int64, error)
	SetAdmin(ctx context.Context, userID string, admin bool) error
	SetExternalIDs(ctx context.Context, userID string, ids []storage.ExternalID, ts int64) error
	SetNoticeRoom(ctx context.Context, userID, roomID string) error
	SetRateLimitOverride(ctx context.Context, userID string, o storage.RateLimitOverride) error
	SetSuspended(ctx context.Context, userID string, suspended bool) error
	UnblockRoom(ctx context.Context, roomID string) error
	UpdateRegistrationToken(ctx context.Context, t storage.RegistrationToken) error
	User(ctx context.Context, userID string) (storage.User, error)
	UserByExternalID(ctx context.Context, provider, externalID string) (string, error)
	UserExists(ctx context.Context, userID string) (bool, error)
	UserListingOf(ctx context.Context, userID string) (storage.UserListing, error)
}

var _ Store = storage.Q{}

// API serves the admin endpoints.
type API struct {
	Cfg       *config.Config
	DB        storage.View[Store]
	Auth      *auth.Service
	Rooms     *rooms.Service
	Media     *media.Store
	Retention *retention.Service
	Notifier  *notifier.Notifier
	Now       func() time.Time
	Log       *slog.Logger
	// ReplicationLag is how far a destination is behind (continuous backup).
	ReplicationLag func(dest string) (time.Duration, bool)
	mu             sync.Mutex
	exports        map[string]*exportJob
	// running are the export jobs still writing; Close waits for them.
	running  sync.WaitGroup
	deletes  map[string]map[string]any // room deletion results by delete_id
	noticeMu sync.Mutex
}

const (
	v1 = "/_synapse/admin/v1"
	v2 = "/_synapse/admin/v2"
	v3 = "/_synapse/admin/v3"
	rv = "/_redoubt/admin/v1"
)

// Register adds the admin routes and the panel.
func (a *API) Register(r *mux.Router, h *httpapi.API) {
	rt := httpapi.Routes{R: r, API: h}
	admin := func(path string, fn httpapi.AuthHandler, methods ...string) { rt.Authed(path, a.admin(fn), methods...) }
	rt.Public(v1+"/server_version", a.serverVersion, "GET")

	admin(v2+"/users", a.listUsers(false), "GET")
	admin(v3+"/users", a.listUsers(true), "GET")
	admin(v2+"/users/{userId}", a.getUser, "GET")
	admin(v2+"/users/{userId}", a.putUser, "PUT")
	admin(v1+"/deactivate/{userId}", a.deactivate, "POST")
	admin(v1+"/auth_providers/{provider}/users/{externalId}", a.userByExternalID, "GET")
	admin(v1+"/reset_password/{userId}", a.resetPassword, "POST")
	admin(v1+"/whois/{userId}", a.whois, "GET")
	admin(v2+"/users/{userId}/devices", a.listDevices, "GET")
	admin(v2+"/users/{userId}/devices/{deviceId}", a.getDevice, "GET")
	admin(v2+"/users/{userId}/devices/{deviceId}", a.deleteDevice, "DELETE")
	admin(v2+"/users/{userId}/delete_devices", a.deleteDevices, "POST")
	admin(v1+"/users/{userId}/media", a.userMedia, "GET")
	admin(v1+"/users/{userId}/media", a.deleteUserMedia, "DELETE")
	admin(v1+"/media/{serverName}/{mediaId}", a.deleteMedia, "DELETE")
	admin(v1+"/media/quarantine/{serverName}/{mediaId}", a.quarantine(true), "POST")
	admin(v1+"/media/unquarantine/{serverName}/{mediaId}", a.quarantine(false), "POST")
	admin(v1+"/username_available", a.usernameAvailable, "GET")
	admin(v1+"/users/{userId}/joined_rooms", a.joinedRooms, "GET")
	admin(v1+"/users/{userId}/memberships", a.memberships, "GET")
	admin(v1+"/users/{userId}/pushers", a.userPushers, "GET")
	admin(v1+"/users/{userId}/sent_invite_count", a.sentInviteCount, "GET")
	admin(v1+"/users/{userId}/cumulative_joined_room_count", a.cumulativeJoinedRoomCount, "GET")
	admin(v1+"/users/{userId}/override_ratelimit", a.getRateLimit, "GET")
	admin(v1+"/users/{userId}/override_ratelimit", a.setRateLimit, "POST")
	admin(v1+"/users/{userId}/override_ratelimit", a.deleteRateLimit, "DELETE")
	admin(v1+"/users/{userId}/accountdata", a.accountData, "GET")
	admin(v1+"/users/{userId}/login", a.loginAsUser, "POST")
	admin(v1+"/experimental_features/{userId}", a.experimentalFeatures, "GET")
	admin(v1+"/experimental_features/{userId}", a.setExperimentalFeatures, "PUT")
	admin(v1+"/suspend/{userId}", a.suspend, "PUT")

	admin(v1+"/rooms", a.listRooms, "GET")
	admin(v1+"/rooms/{roomId}", a.getRoom, "GET")
	admin(v1+"/rooms/{roomId}/members", a.roomMembers, "GET")
	admin(v1+"/rooms/{roomId}/state", a.roomState, "GET")
	admin(v1+"/rooms/{roomId}", a.deleteRoomV1, "DELETE")
	admin(v2+"/rooms/{roomId}", a.deleteRoomV2, "DELETE")
	admin(v2+"/rooms/delete_status/{deleteId}", a.deleteStatus, "GET")
	admin(v1+"/room/{roomId}/media", a.roomMedia, "GET")
	admin(v1+"/rooms/{roomId}/block", a.getBlock, "GET")
	admin(v1+"/rooms/{roomId}/block", a.setBlock, "PUT")
	admin(v1+"/rooms/{roomId}/forward_extremities", a.forwardExtremities, "GET")
	admin(v1+"/rooms/{roomId}/forward_extremities", a.deleteForwardExtremities, "DELETE")
	// messages, context and timestamp_to_event: the client API's handlers
	// (clientapi, rooms.AsAdmin).

	admin(v1+"/event_reports", a.eventReports, "GET")
	admin(v1+"/event_reports/{reportId}", a.eventReport, "GET")
	admin(v1+"/event_reports/{reportId}", a.deleteEventReport, "DELETE")
	admin(v1+"/statistics/users/media", a.mediaStatistics, "GET")
	admin(v1+"/statistics/database/rooms", a.roomSizes, "GET")
	admin(v1+"/federation/destinations", a.destinations, "GET")
	admin(v1+"/scheduled_tasks", a.scheduledTasks, "GET")
	admin(v1+"/send_server_notice", a.sendServerNotice, "POST")
	admin(v1+"/send_server_notice/{txnId}", a.sendServerNotice, "PUT")

	admin(v1+"/registration_tokens", a.listTokens, "GET")
	admin(v1+"/registration_tokens/new", a.createToken, "POST")
	admin(v1+"/registration_tokens/{token}", a.getToken, "GET")
	admin(v1+"/registration_tokens/{token}", a.updateToken, "PUT")
	admin(v1+"/registration_tokens/{token}", a.deleteToken, "DELETE")

	admin(rv+"/summary", a.summary, "GET")
	admin(rv+"/audit", a.audit, "GET")
	admin(rv+"/export", a.startExport, "POST")
	admin(rv+"/export/{exportId}", a.exportStatus, "GET")
	admin(rv+"/export/{exportId}/download", a.downloadExport, "GET")

	a.registerPanel(r)
}

// admin lets only admins through.
func (a *API) admin(fn httpapi.AuthHandler) httpapi.AuthHandler {
	return func(r *http.Request, dev *httpapi.Device) httpapi.Response {
		if !dev.IsAdmin {
			return httpapi.Fail(httpapi.Forbidden("you are not a server admin"))
		}
		return fn(r, dev)
	}
}

// audited makes a change and records it in the audit log, as one
// transaction (storage.WriteAll): no change without its row, no row
// without its change.
func (a *API) audited(ctx context.Context, dev *httpapi.Device, action, target, detail string, change func(ctx context.Context) error) error {
	return a.DB.WriteAll(ctx, func(ctx context.Context) error {
		if err := change(ctx); err != nil {
			return err
		}
		return a.record(ctx, dev, action, target, detail)
	})
}

// record adds an API action to the audit log.
func (a *API) record(ctx context.Context, dev *httpapi.Device, action, target, detail string) error {
	return a.Record(ctx, dev.UserID, action, target, detail)
}

// Record adds an action to the audit log: who (a user ID, or the operator
// at the command line), what, to whom; never content.
func (a *API) Record(ctx context.Context, actor, action, target, detail string) error {
	return a.DB.Write(context.WithoutCancel(ctx), func(q Store) error {
		return q.AddAudit(ctx, storage.AuditEntry{TS: a.Now().UnixMilli(), Admin: actor, Action: action, Target: target, Detail: detail})
	})
}

func (a *API) serverVersion(*http.Request) httpapi.Response {
	return httpapi.OK(map[string]string{"server_version": "Redoubt " + config.Version})
}

// page reads the from and limit query parameters (Synapse's paging).
func page(r *http.Request, defaultLimit int) (from, limit int, err error) {
	q := r.URL.Query()
	from, limit = 0, defaultLimit
	for _, p := range []struct {
		name string
		v    *int
	}{{"from", &from}, {"limit", &limit}} {
		raw := q.Get(p.name)
		if raw == "" {
			continue
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 {
			return 0, 0, httpapi.InvalidParam("query parameter %s must be a non-negative integer", p.name)
		}
		*p.v = n
	}
	return from, min(limit, 1000), nil
}

// listing is how a list is asked for: a page, an order (a key of the
// list's orders, or "" for its default) and a direction.
type listing struct {
	from, limit int
	order       string
	back        bool
}

// readListing reads from, limit, order_by and dir.
func readListing(r *http.Request, orders map[string]string) (l listing, err error) {
	if l.from, l.limit, err = page(r, 100); err != nil {
		return l, err
	}
	if l.back, err = direction(r); err != nil {
		return l, err
	}
	l.order = r.URL.Query().Get("order_by")
	if _, ok := orders[l.order]; l.order != "" && !ok {
		return l, httpapi.InvalidParam("unknown order_by %q", l.order)
	}
	return l, nil
}

// direction reads dir: f (default) or b.
func direction(r *http.Request) (backwards bool, err error) {
	switch r.URL.Query().Get("dir") {
	case "", "f":
		return false, nil
	case "b":
		return true, nil
	}
	return false, httpapi.InvalidParam("dir must be f or b")
}

// boolParam reads an optional true/false query parameter.
func boolParam(r *http.Request, name string, def bool) (bool, error) {
	switch r.URL.Query().Get(name) {
	case "":
		return def, nil
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, httpapi.InvalidParam("%s must be true or false", name)
}

// optionalBool reads a true/false query parameter that may be absent (nil).
func optionalBool(r *http.Request, name string) (*bool, error) {
	if r.URL.Query().Get(name) == "" {
		return nil, nil
	}
	b, err := boolParam(r, name, false)
	return &b, err
}

// nextToken is Synapse's next_token: present only when more follow.
func nextToken(body map[string]any, from, n, total int) {
	if from+n < total {
		body["next_token"] = strconv.Itoa(from + n)
	}
}

// localUser returns the path's user ID if it is a user of this server.
func (a *API) localUser(r *http.Request) (string, error) {
	userID := mux.Vars(r)["userId"]
	if !strings.HasPrefix(userID, "@") || !strings.HasSuffix(userID, ":"+a.Cfg.ServerName) {
		return "", httpapi.InvalidParam("%q is not a user of this server", userID)
	}
	return userID, nil
}

// existingUser is localUser for a user that exists.
func (a *API) existingUser(r *http.Request) (string, error) {
	userID, err := a.localUser(r)
	if err != nil {
		return "", err
	}
	ok, err := a.DB.R().UserExists(r.Context(), userID)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", httpapi.NotFound("unknown user")
	}
	return userID, nil
}

func decode(r *http.Request, v any) error { return httpapi.Decode(r, v) }

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullableTS(ts int64) any {
	if ts == 0 {
		return nil
	}
	return ts
}
