package pushapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/push"
)

// Pushers serves /pushers: the phones and apps push notifications go to.
type Pushers struct {
	Gateway *push.Gateway
}

// Register adds GET /pushers and POST /pushers/set.
func (p *Pushers) Register(r *mux.Router, h *httpapi.API) {
	authed := httpapi.Routes{R: r, API: h}.Authed
	authed("/_matrix/client/v3/pushers", p.list, "GET")
	authed("/_matrix/client/v3/pushers/set", p.set, "POST")
}

// GET /_matrix/client/v3/pushers
func (p *Pushers) list(r *http.Request, dev *httpapi.Device) httpapi.Response {
	pushers, err := p.Gateway.Pushers(r.Context(), dev.UserID)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"pushers": pushers})
}

// POST /_matrix/client/v3/pushers/set
func (p *Pushers) set(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req push.PusherRequest
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.EmptyOr(p.Gateway.SetPusher(r.Context(), dev, req))
}
