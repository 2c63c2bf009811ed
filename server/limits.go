package server

import (
	"errors"
	"net"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/ratelimit"
	"github.com/redoubt-systems/redoubt/storage"
)

// limitedRoutes names the rate limit bucket of each limited endpoint
// (method and route template); perUser buckets count per user, the others
// per IP address.
var limitedRoutes = map[string]string{
	"POST /_matrix/client/v3/login":                                         "login",
	"GET /_matrix/client/v3/login/sso/redirect":                             "login",
	"GET /_matrix/client/v3/login/sso/redirect/{idpId}":                     "login",
	"GET /_matrix/client/v3/auth/m.login.sso/fallback/web":                  "login",
	"GET /_synapse/client/oidc/callback":                                    "login",
	"POST /_matrix/client/v3/auth/m.login.sso/fallback/web":                 "login",
	"POST /_redoubt/oauth/login":                                            "login",
	"GET /_redoubt/oauth/sso":                                               "login",
	"POST /_redoubt/oauth/register":                                         "register",
	"POST /_matrix/client/v3/register":                                      "register",
	"POST /_synapse/admin/v1/register":                                      "shared_secret_register",
	"GET /_synapse/admin/v1/register":                                       "registration_nonce",
	"PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}":        "send",
	"PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}":               "send",
	"PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey:.*}": "send",
	"PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}":        "send",
	"POST /_matrix/client/v3/createRoom":                                    "create_room",
	"POST /_matrix/media/v3/upload":                                         "media",
	"PUT /_matrix/media/v3/upload/{serverName}/{mediaId}":                   "media",
	"POST /_matrix/media/v1/create":                                         "media",
	"PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}":               "to_device",
}

// limit is the HTTP layer's rate limit check. A user's override (the admin
// API's override_ratelimit) replaces the rule of the per-user buckets:
// 0 and 0 lifts them.
func limit(l *ratelimit.Limiter, db *storage.DB) func(r *http.Request, dev *httpapi.Device) error {
	return func(r *http.Request, dev *httpapi.Device) error {
		route := mux.CurrentRoute(r)
		if route == nil {
			return nil
		}
		tmpl, err := route.GetPathTemplate()
		if err != nil {
			return nil
		}
		bucket, ok := limitedRoutes[r.Method+" "+tmpl]
		if !ok {
			return nil
		}
		key := r.RemoteAddr
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			key = host
		}
		rule := l.Rules[bucket]
		if dev != nil {
			key = dev.UserID
			o, err := db.R().RateLimitOverrideOf(r.Context(), dev.UserID)
			switch {
			case err == nil:
				rule = ratelimit.Rule{PerSecond: o.MessagesPerSecond, Burst: float64(o.BurstCount)}
			case !errors.Is(err, storage.ErrNotFound):
				return err
			}
		}
		if ok, wait := l.AllowWith(rule, bucket, key); !ok {
			return httpapi.LimitExceeded(wait, "too many requests; try again later")
		}
		return nil
	}
}
