package clientapi

import (
	"net/http"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/httpapi"
)

// GET /_matrix/client/unstable/org.matrix.msc1763/retention/configuration:
// the lifetimes the server enforces. A limit that is not set is left out
// rather than sent as null.
func (a *API) retentionConfiguration(*http.Request, *httpapi.Device) httpapi.Response {
	out := map[string]any{}
	r := a.Cfg.Retention
	for k, d := range map[string]config.Duration{"default_max_lifetime": r.DefaultMaxLifetime, "min_lifetime": r.MinLifetime,
		"max_lifetime": r.MaxLifetime, "media_max_lifetime": r.MediaMaxLifetime} {
		if d != 0 {
			out[k] = d.D().Milliseconds()
		}
	}
	return httpapi.OK(out)
}
