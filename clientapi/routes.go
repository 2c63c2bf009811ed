// Package clientapi serves the Matrix Client-Server API: accounts, devices,
// profiles, account data, filters, rooms and events. Handlers parse the
// request, call one service method and return a value; httpapi does the rest.
package clientapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/auth"
	"github.com/redoubt-systems/redoubt/calls"
	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/delayed"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/notifier"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/sso"
	"github.com/redoubt-systems/redoubt/storage"
	"github.com/redoubt-systems/redoubt/threads"
)

// Store is the part of storage.Q the client API's handlers uses: what it reads
// and writes.
type Store interface {
	AccountData(ctx context.Context, userID, roomID, typ string) ([]byte, error)
	AddEventReport(ctx context.Context, r storage.EventReport) error
	AddFilter(ctx context.Context, userID string, filter []byte) (int64, error)
	Device(ctx context.Context, userID, deviceID string) (storage.Device, error)
	Devices(ctx context.Context, userID string) ([]storage.Device, error)
	Filter(ctx context.Context, userID string, filterID int64) ([]byte, error)
	RegistrationTokenByName(ctx context.Context, token string) (storage.RegistrationToken, error)
	SetAccountData(ctx context.Context, userID, roomID, typ string, content []byte) (int64, error)
	SetDeviceName(ctx context.Context, userID, deviceID, name string) error
	SetRoomPublished(ctx context.Context, roomID string, published bool) error
	User(ctx context.Context, userID string) (storage.User, error)
	UserExists(ctx context.Context, userID string) (bool, error)
	UserSuspended(ctx context.Context, userID string) (bool, error)
}

var _ Store = storage.Q{}

// API holds what the client API's handlers call.
type API struct {
	Cfg   *config.Config
	DB    storage.View[Store]
	Auth  *auth.Service
	Rooms *rooms.Service
	// Notifier wakes the user's /sync after account data changes.
	Notifier *notifier.Notifier
	// Erase deletes a deactivated account's data (deactivate with erase).
	Erase func(ctx context.Context, userID string) error
	// Delayed schedules the events sent with a delay (MSC4140).
	Delayed *delayed.Service
	// Threads are thread subscriptions (MSC4306).
	Threads *threads.Service
	// SSO signs people in with the organisation's identity providers.
	SSO *sso.Service
	// Calls issues OpenID tokens and LiveKit tokens for group calls.
	Calls *calls.Service
}

// Register adds the client API's routes, one a line, grouped as the spec's
// table of contents.
func (a *API) Register(r *mux.Router, h *httpapi.API) {
	rt := httpapi.Routes{R: r, API: h}
	pub, authed := rt.Public, rt.Authed
	const c = "/_matrix/client/v3"

	// Server discovery and capabilities
	pub("/_matrix/client/versions", a.versions, "GET")
	pub("/.well-known/matrix/client", a.wellKnown, "GET")
	authed(c+"/capabilities", a.capabilities, "GET")

	// Login, registration, sessions
	pub(c+"/login", a.loginFlows, "GET")
	pub(c+"/login", a.login, "POST")
	pub(c+"/login/sso/redirect", a.ssoRedirect, "GET")
	pub(c+"/login/sso/redirect/{idpId}", a.ssoRedirectIdP, "GET")
	pub(c+"/auth/m.login.sso/fallback/web", a.ssoFallback, "GET")
	pub(c+"/auth/m.login.sso/fallback/web", a.ssoFallbackStart, "POST")
	pub(sso.CallbackPath, a.ssoCallback, "GET")
	pub(sso.BackchannelLogoutPath, a.ssoBackchannelLogout, "POST")

	// Group calls: OpenID tokens, RTC transports (MSC4143), the LiveKit
	// token service (lk-jwt-service's API)
	authed(c+"/user/{userId}/openid/request_token", a.openIDToken, "POST")
	authed("/_matrix/client/unstable/org.matrix.msc4143/rtc/transports", a.rtcTransports, "GET")
	pub(calls.ServicePath+"/sfu/get", a.sfuGet, "POST")
	pub(calls.ServicePath+"/get_token", a.getToken, "POST")
	pub(calls.ServicePath+"/healthz", a.livekitHealth, "GET")
	authed(c+"/logout", a.logout, "POST")
	authed(c+"/logout/all", a.logoutAll, "POST")
	pub(c+"/refresh", a.refresh, "POST")
	pub(c+"/register", a.register, "POST")
	pub(c+"/register/available", a.registerAvailable, "GET")
	pub("/_matrix/client/v1/register/m.login.registration_token/validity", a.registrationTokenValidity, "GET")
	pub("/_synapse/admin/v1/register", a.sharedSecretNonce, "GET")
	pub("/_synapse/admin/v1/register", a.sharedSecretRegister, "POST")

	// Account management
	authed(c+"/account/whoami", a.whoami, "GET")
	authed(c+"/account/password", a.changePassword, "POST")
	authed(c+"/account/deactivate", a.deactivate, "POST")

	// Devices
	authed(c+"/devices", a.listDevices, "GET")
	authed(c+"/devices/{deviceId}", a.getDevice, "GET")
	authed(c+"/devices/{deviceId}", a.updateDevice, "PUT")
	authed(c+"/devices/{deviceId}", a.deleteDevice, "DELETE")
	authed(c+"/delete_devices", a.deleteDevices, "POST")

	// Profiles: readable without a token only if privacy.public_profiles.
	readProfile := authed
	if a.Cfg.Privacy.PublicProfiles {
		readProfile = rt.Optional
	}
	readProfile(c+"/profile/{userId}", a.getProfile, "GET")
	readProfile(c+"/profile/{userId}/{field:displayname|avatar_url}", a.getProfileField, "GET")
	authed(c+"/profile/{userId}/{field:displayname|avatar_url}", a.setProfileField, "PUT")

	// Filters and account data
	authed(c+"/user/{userId}/filter", a.createFilter, "POST")
	authed(c+"/user/{userId}/filter/{filterId}", a.getFilter, "GET")
	authed(c+"/user/{userId}/account_data/{type}", a.getAccountData, "GET")
	authed(c+"/user/{userId}/account_data/{type}", a.setAccountData, "PUT")
	authed(c+"/user/{userId}/rooms/{roomId}/account_data/{type}", a.getAccountData, "GET")
	authed(c+"/user/{userId}/rooms/{roomId}/account_data/{type}", a.setAccountData, "PUT")
	const msc3391 = "/_matrix/client/unstable/org.matrix.msc3391"
	authed(msc3391+"/user/{userId}/account_data/{type}", a.deleteAccountData, "DELETE")
	authed(msc3391+"/user/{userId}/rooms/{roomId}/account_data/{type}", a.deleteAccountData, "DELETE")

	// Rooms: creation and membership
	authed(c+"/createRoom", a.createRoom, "POST")
	authed(c+"/joined_rooms", a.joinedRooms, "GET")
	authed(c+"/join/{roomIdOrAlias}", a.join, "POST")
	authed(c+"/rooms/{roomId}/join", a.join, "POST")
	authed(c+"/rooms/{roomId}/invite", a.invite, "POST")
	authed(c+"/rooms/{roomId}/leave", a.leave, "POST")
	authed(c+"/rooms/{roomId}/forget", a.forget, "POST")
	authed(c+"/rooms/{roomId}/{action:kick|ban|unban}", a.moderate, "POST")
	authed(c+"/knock/{roomIdOrAlias}", a.knock, "POST")
	authed(c+"/rooms/{roomId}/upgrade", a.upgrade, "POST")
	authed(c+"/rooms/{roomId}/report/{eventId}", a.report, "POST")
	authed("/_matrix/client/v1/rooms/{roomId}/timestamp_to_event", a.timestampToEvent, "GET")

	// Rooms: state and events
	authed(c+"/rooms/{roomId}/state", a.getState, "GET")
	authed(c+"/rooms/{roomId}/state/{eventType}", a.getStateEvent, "GET")
	authed(c+"/rooms/{roomId}/state/{eventType}/{stateKey:.*}", a.getStateEvent, "GET")
	authed(c+"/rooms/{roomId}/state/{eventType}", a.putStateEvent, "PUT")
	authed(c+"/rooms/{roomId}/state/{eventType}/{stateKey:.*}", a.putStateEvent, "PUT")
	authed(c+"/rooms/{roomId}/send/{eventType}/{txnId}", a.sendEvent, "PUT")
	authed(c+"/rooms/{roomId}/redact/{eventId}/{txnId}", a.redact, "PUT")
	authed(c+"/rooms/{roomId}/event/{eventId}", a.getEvent, "GET")
	authed(c+"/rooms/{roomId}/messages", a.messages, "GET")
	authed(c+"/rooms/{roomId}/context/{eventId}", a.context, "GET")
	authed(c+"/rooms/{roomId}/members", a.members, "GET")
	authed(c+"/rooms/{roomId}/joined_members", a.joinedMembers, "GET")

	// Relations and threads
	const v1 = "/_matrix/client/v1"
	authed(v1+"/rooms/{roomId}/relations/{eventId}", a.relations, "GET")
	authed(v1+"/rooms/{roomId}/relations/{eventId}/{relType}", a.relations, "GET")
	authed(v1+"/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}", a.relations, "GET")
	authed(v1+"/rooms/{roomId}/threads", a.threads, "GET")
	authed(v1+"/rooms/{roomId}/hierarchy", a.hierarchy, "GET")
	authed(v1+"/room_summary/{roomIdOrAlias}", a.roomSummary, "GET")
	authed("/_matrix/client/unstable/im.nheko.summary/rooms/{roomIdOrAlias}/summary", a.roomSummary, "GET")

	// Search
	authed(c+"/search", a.search, "POST")

	// Room aliases
	authed(c+"/directory/room/{roomAlias}", a.getAlias, "GET")
	authed(c+"/directory/room/{roomAlias}", a.putAlias, "PUT")
	authed(c+"/directory/room/{roomAlias}", a.deleteAlias, "DELETE")
	authed(c+"/rooms/{roomId}/aliases", a.roomAliases, "GET")

	// Room tags, and what has little to do here
	authed(c+"/user/{userId}/rooms/{roomId}/tags", a.getTags, "GET")
	authed(c+"/user/{userId}/rooms/{roomId}/tags/{tag}", a.setTag, "PUT", "DELETE")
	authed(c+"/thirdparty/protocols", a.thirdPartyProtocols, "GET")
	authed(c+"/account/3pid", a.threePIDs, "GET")
	authed(c+"/voip/turnServer", a.turnServer, "GET")

	// Thread subscriptions (MSC4306, MSC4308), when on
	if a.Cfg.Push.ThreadSubscriptions {
		const t = "/_matrix/client/unstable/io.element.msc4306/rooms/{roomId}/thread/{threadRootId}/subscription"
		authed(t, a.threadSubscription, "GET")
		authed(t, a.subscribeThread, "PUT")
		authed(t, a.unsubscribeThread, "DELETE")
		authed("/_matrix/client/unstable/io.element.msc4308/thread_subscriptions", a.threadSubscriptions, "GET")
	}

	// Retention (MSC1763): the server's limits
	authed("/_matrix/client/unstable/org.matrix.msc1763/retention/configuration", a.retentionConfiguration, "GET")

	// Delayed events (MSC4140), when the server offers them
	if a.Cfg.DelayedEvents.MaxDelay > 0 {
		const d = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events"
		authed(d, a.delayedEvents, "GET")
		pub(d+"/{delayId}/{action:cancel|restart|send}", a.manageDelayed, "POST")
		pub(d+"/{delayId}", a.manageDelayed, "POST")
	}

	// Synapse's admin API reads a room's history with these same handlers,
	// over the whole of it, for admins only (rooms.AsAdmin).
	const admin = "/_synapse/admin/v1/rooms/{roomId}"
	authed(admin+"/messages", asAdmin(a.messages), "GET")
	authed(admin+"/context/{eventId}", asAdmin(a.context), "GET")
	authed(admin+"/timestamp_to_event", asAdmin(a.timestampToEvent), "GET")
}

// asAdmin lets only admins through, with a context that reads as the
// admin API does.
func asAdmin(fn httpapi.AuthHandler) httpapi.AuthHandler {
	return func(r *http.Request, dev *httpapi.Device) httpapi.Response {
		if !dev.IsAdmin {
			return httpapi.Fail(httpapi.Forbidden("you are not a server admin"))
		}
		return fn(r.WithContext(rooms.AsAdmin(r.Context())), dev)
	}
}

// queryInt reads an optional non-negative integer query parameter.
func queryInt(r *http.Request, name string, def int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, httpapi.InvalidParam("%s must be a non-negative integer", name)
	}
	return n, nil
}
