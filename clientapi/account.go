package clientapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/redoubt-systems/redoubt/auth"
	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
)

// GET /_matrix/client/versions
func (a *API) versions(*http.Request) httpapi.Response {
	return httpapi.OK(map[string]any{
		"versions":          []string{"v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12"},
		"unstable_features": a.unstableFeatures(),
	})
}

// unstableFeatures are the flags clients check before using what an MSC
// added: each names something this server does (and only then, where a
// setting turns it off). Flags for what is missing are left out, which
// clients read as false: org.matrix.msc3440.stable among them, as the
// related_by_* thread filters are not implemented (v1.3 gives clients
// threads).
func (a *API) unstableFeatures() map[string]bool {
	f := map[string]bool{
		"org.matrix.e2e_cross_signing":  true, // MSC1756; Element Web offers cross-signing only with it
		"org.matrix.msc2285.stable":     true, // private read receipts
		"org.matrix.msc3771":            true, // threaded read receipts
		"org.matrix.msc3773":            true, // per-thread notification counts
		"org.matrix.msc3916.stable":     true, // authenticated media
		"org.matrix.msc3266":            true, // room summaries
		"org.matrix.msc3391":            true, // deleting account data
		"org.matrix.msc3874":            true, // relation type filters on /messages
		"org.matrix.msc3814":            true, // dehydrated devices
		"org.matrix.simplified_msc3575": true, // sliding sync (MSC4186); Element X needs it
	}
	if a.Cfg.DelayedEvents.MaxDelay > 0 {
		f["org.matrix.msc4140"] = true // delayed events (Element Call)
	}
	if a.Cfg.Push.ThreadSubscriptions {
		f["org.matrix.msc4306"] = true // thread subscriptions
	}
	return f
}

func (a *API) wellKnownBody() map[string]any {
	body := map[string]any{"m.homeserver": map[string]string{"base_url": a.Cfg.PublicBaseURL}}
	if t := a.Calls.Transports(); len(t) > 0 {
		body["org.matrix.msc4143.rtc_foci"] = t // where Element Call gets LiveKit tokens
	}
	return body
}

// GET /.well-known/matrix/client
func (a *API) wellKnown(*http.Request) httpapi.Response { return httpapi.OK(a.wellKnownBody()) }

// GET /_matrix/client/v3/capabilities
func (a *API) capabilities(*http.Request, *httpapi.Device) httpapi.Response {
	available := map[string]string{}
	for _, v := range config.SupportedRoomVersions {
		available[v] = "stable"
	}
	return httpapi.OK(map[string]any{"capabilities": map[string]any{
		"m.change_password":                  map[string]bool{"enabled": true},
		"m.room_versions":                    map[string]any{"default": a.Cfg.Rooms.DefaultVersion, "available": available},
		"m.set_displayname":                  map[string]bool{"enabled": true},
		"m.set_avatar_url":                   map[string]bool{"enabled": true},
		"m.3pid_changes":                     map[string]bool{"enabled": false},
		"m.get_login_token":                  map[string]bool{"enabled": false},
		"m.profile_fields":                   map[string]bool{"enabled": false},
		"org.matrix.msc3882.get_login_token": map[string]bool{"enabled": false},
	}})
}

// GET /_matrix/client/v3/login
func (a *API) loginFlows(*http.Request) httpapi.Response {
	flows := []any{}
	if a.Cfg.SSO.PasswordLogin {
		flows = append(flows, map[string]string{"type": "m.login.password"})
	}
	if len(a.SSO.Providers()) > 0 {
		flows = append(flows, map[string]any{"type": "m.login.sso", "identity_providers": a.identityProviders()},
			map[string]string{"type": "m.login.token"})
	}
	return httpapi.OK(map[string]any{"flows": flows})
}

type loginRequest struct {
	Type       string `json:"type"`
	Identifier struct {
		Type string `json:"type"`
		User string `json:"user"`
	} `json:"identifier"`
	User                     string `json:"user"`
	Password                 string `json:"password"`
	Token                    string `json:"token"`
	DeviceID                 string `json:"device_id"`
	InitialDeviceDisplayName string `json:"initial_device_display_name"`
	RefreshToken             bool   `json:"refresh_token"`
}

// POST /_matrix/client/v3/login
func (a *API) login(r *http.Request) httpapi.Response {
	var req loginRequest
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	switch {
	case req.Type == "m.login.token":
		if req.Token == "" {
			return httpapi.Fail(httpapi.MissingParam("token is required"))
		}
		if len(req.DeviceID) > 255 || len(req.InitialDeviceDisplayName) > 255 {
			return httpapi.Fail(httpapi.InvalidParam("device_id and initial_device_display_name are limited to 255 bytes"))
		}
		sess, err := a.Auth.LoginWithToken(r.Context(), req.Token, req.DeviceID, req.InitialDeviceDisplayName, req.RefreshToken)
		return a.sessionResponse(sess, err)
	case req.Type != "m.login.password" || !a.Cfg.SSO.PasswordLogin:
		return httpapi.Fail(httpapi.BadRequest("unknown login type"))
	}
	user := req.User
	if req.Identifier.Type != "" {
		if req.Identifier.Type != "m.id.user" {
			return httpapi.Fail(httpapi.BadRequest("unknown login identifier type"))
		}
		user = req.Identifier.User
	}
	if user == "" {
		return httpapi.Fail(httpapi.MissingParam("identifier.user is required"))
	}
	if req.Password == "" {
		return httpapi.Fail(httpapi.MissingParam("password is required"))
	}
	userID, err := a.Auth.ResolveUser(user)
	if err != nil {
		return httpapi.Fail(auth.ErrBadLogin)
	}
	if err := a.Auth.VerifyPassword(r.Context(), userID, req.Password); err != nil {
		return httpapi.Fail(err)
	}
	return a.startSession(r, userID, req.DeviceID, req.InitialDeviceDisplayName, req.RefreshToken)
}

func (a *API) startSession(r *http.Request, userID, deviceID, displayName string, refresh bool) httpapi.Response {
	if len(deviceID) > 255 || len(displayName) > 255 {
		return httpapi.Fail(httpapi.InvalidParam("device_id and initial_device_display_name are limited to 255 bytes"))
	}
	sess, err := a.Auth.Login(r.Context(), userID, deviceID, displayName, refresh)
	return a.sessionResponse(sess, err)
}

func (a *API) sessionResponse(sess auth.Session, err error) httpapi.Response {
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(struct {
		auth.Session
		HomeServer string         `json:"home_server"`
		WellKnown  map[string]any `json:"well_known"`
	}{sess, a.Cfg.ServerName, a.wellKnownBody()})
}

// POST /_matrix/client/v3/logout
func (a *API) logout(r *http.Request, dev *httpapi.Device) httpapi.Response {
	if err := a.Auth.Logout(r.Context(), dev); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(httpapi.Empty)
}

// POST /_matrix/client/v3/logout/all
func (a *API) logoutAll(r *http.Request, dev *httpapi.Device) httpapi.Response {
	if err := a.Auth.LogoutAll(r.Context(), dev.UserID); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(httpapi.Empty)
}

// POST /_matrix/client/v3/refresh
func (a *API) refresh(r *http.Request) httpapi.Response {
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.RefreshToken == "" {
		return httpapi.Fail(httpapi.MissingParam("refresh_token is required"))
	}
	sess, err := a.Auth.Refresh(r.Context(), req.RefreshToken)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"access_token": sess.AccessToken, "refresh_token": sess.RefreshToken,
		"expires_in_ms": sess.ExpiresInMS})
}

type registerRequest struct {
	Username                 string         `json:"username"`
	Password                 string         `json:"password"`
	DeviceID                 string         `json:"device_id"`
	InitialDeviceDisplayName string         `json:"initial_device_display_name"`
	InhibitLogin             bool           `json:"inhibit_login"`
	RefreshToken             bool           `json:"refresh_token"`
	Auth                     *auth.AuthDict `json:"auth"`
}

// POST /_matrix/client/v3/register
func (a *API) register(r *http.Request) httpapi.Response {
	if kind := r.URL.Query().Get("kind"); kind == "guest" {
		return httpapi.Fail(httpapi.GuestForbidden("guest access is disabled"))
	} else if kind != "" && kind != "user" {
		return httpapi.Fail(httpapi.InvalidParam("kind must be user or guest"))
	}
	if !a.Cfg.Registration.Open && !a.Cfg.Registration.RequireToken {
		return httpapi.Fail(httpapi.Forbidden("registration is disabled; ask your administrator for an account"))
	}
	var req registerRequest
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	// User IDs are lower case; like Synapse, take a name with capitals as
	// its lower-case form rather than refusing it.
	req.Username = strings.ToLower(req.Username)
	if req.Username == "" {
		req.Username = strings.ToLower(rooms.RandomID(12))
	}
	userID, err := a.Auth.UserID(req.Username)
	if err != nil {
		return httpapi.Fail(err)
	}
	if taken, err := a.DB.R().UserExists(r.Context(), userID); err != nil {
		return httpapi.Fail(err)
	} else if taken {
		return httpapi.Fail(httpapi.UserInUse("user ID already taken"))
	}
	// Without an auth dict the answer is the 401 listing the flows, even
	// for a request with nothing else in it.
	if req.Auth == nil || req.Auth.Type == "" {
		if a.Cfg.Registration.RequireToken {
			return httpapi.Fail(a.Auth.UseRegistrationToken(r.Context(), req.Auth))
		}
		return httpapi.Fail(auth.RequireDummy(req.Auth))
	}
	if req.Password == "" {
		return httpapi.Fail(httpapi.MissingParam("password is required"))
	}
	if err := a.Auth.CheckPasswordPolicy(req.Password); err != nil {
		return httpapi.Fail(err)
	}
	if a.Cfg.Registration.RequireToken {
		// The token is used up in the same step: a registration that then
		// fails gives its use back.
		if err := a.Auth.UseRegistrationToken(r.Context(), req.Auth); err != nil {
			return httpapi.Fail(err)
		}
		if err := a.Auth.CreateUser(r.Context(), userID, req.Password, false); err != nil {
			a.Auth.ReturnRegistrationToken(context.WithoutCancel(r.Context()), req.Auth.Token)
			return httpapi.Fail(err)
		}
	} else {
		if err := auth.RequireDummy(req.Auth); err != nil {
			return httpapi.Fail(err)
		}
		if err := a.Auth.CreateUser(r.Context(), userID, req.Password, false); err != nil {
			return httpapi.Fail(err)
		}
	}
	if req.InhibitLogin {
		return httpapi.OK(map[string]string{"user_id": userID, "home_server": a.Cfg.ServerName})
	}
	return a.startSession(r, userID, req.DeviceID, req.InitialDeviceDisplayName, req.RefreshToken)
}

// GET /_matrix/client/v1/register/m.login.registration_token/validity
func (a *API) registrationTokenValidity(r *http.Request) httpapi.Response {
	if !a.Cfg.Registration.RequireToken {
		return httpapi.Fail(httpapi.Forbidden("registration with a token is disabled"))
	}
	token := r.URL.Query().Get("token")
	if token == "" {
		return httpapi.Fail(httpapi.MissingParam("token is required"))
	}
	t, err := a.DB.R().RegistrationTokenByName(r.Context(), token)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]bool{"valid": err == nil && t.Valid(a.Auth.Now().UnixMilli())})
}

// GET /_matrix/client/v3/register/available
func (a *API) registerAvailable(r *http.Request) httpapi.Response {
	if err := a.Auth.Available(r.Context(), r.URL.Query().Get("username")); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]bool{"available": true})
}

// GET /_synapse/admin/v1/register
func (a *API) sharedSecretNonce(r *http.Request) httpapi.Response {
	nonce, err := a.Auth.NewRegistrationNonce()
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]string{"nonce": nonce})
}

// POST /_synapse/admin/v1/register
func (a *API) sharedSecretRegister(r *http.Request) httpapi.Response {
	var req auth.SharedSecretRequest
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	sess, err := a.Auth.SharedSecretRegister(r.Context(), req)
	if err != nil {
		return httpapi.Fail(err)
	}
	res := map[string]string{"user_id": sess.UserID, "home_server": a.Cfg.ServerName}
	if sess.AccessToken != "" {
		res["access_token"], res["device_id"] = sess.AccessToken, sess.DeviceID
	}
	return httpapi.OK(res)
}

// GET /_matrix/client/v3/account/whoami
func (a *API) whoami(_ *http.Request, dev *httpapi.Device) httpapi.Response {
	return httpapi.OK(map[string]any{"user_id": dev.UserID, "device_id": dev.DeviceID, "is_guest": false})
}

// POST /_matrix/client/v3/account/password
func (a *API) changePassword(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		NewPassword   string         `json:"new_password"`
		LogoutDevices *bool          `json:"logout_devices"`
		Auth          *auth.AuthDict `json:"auth"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if err := a.Auth.RequireUser(r.Context(), dev.UserID, "change your password", req.Auth); err != nil {
		return httpapi.Fail(err)
	}
	if req.NewPassword == "" {
		return httpapi.Fail(httpapi.MissingParam("new_password is required"))
	}
	logout := req.LogoutDevices == nil || *req.LogoutDevices
	if err := a.Auth.SetPassword(r.Context(), dev.UserID, req.NewPassword, logout, dev.DeviceID); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(httpapi.Empty)
}

// POST /_matrix/client/v3/account/deactivate
func (a *API) deactivate(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		Auth  *auth.AuthDict `json:"auth"`
		Erase bool           `json:"erase"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if err := a.Auth.RequireUser(r.Context(), dev.UserID, "deactivate your account", req.Auth); err != nil {
		return httpapi.Fail(err)
	}
	if err := a.Rooms.LeaveAll(r.Context(), dev.UserID); err != nil {
		return httpapi.Fail(err)
	}
	if err := a.Auth.Deactivate(r.Context(), dev.UserID); err != nil {
		return httpapi.Fail(err)
	}
	if req.Erase {
		// The account is closed already; erasing finishes even if the
		// client goes away.
		if err := a.Erase(context.WithoutCancel(r.Context()), dev.UserID); err != nil {
			return httpapi.Fail(err)
		}
	}
	return httpapi.OK(map[string]string{"id_server_unbind_result": "no-support"})
}
