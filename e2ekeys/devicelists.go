package e2ekeys

import (
	"net/http"

	"github.com/redoubt-systems/redoubt/devicelists"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/streams"
)

// GET /_matrix/client/v3/keys/changes
func (s *Service) changes(r *http.Request, dev *httpapi.Device) httpapi.Response {
	from, err := streams.ParseToken(r.URL.Query().Get("from"))
	if err != nil {
		return httpapi.Fail(err)
	}
	to, err := streams.ParseToken(r.URL.Query().Get("to"))
	if err != nil {
		return httpapi.Fail(err)
	}
	var changed, left []string
	err = s.DB.Read(r.Context(), func(q Store) error {
		changed, left, err = devicelists.Delta(r.Context(), q, dev.UserID, from, to)
		return err
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	if changed == nil {
		changed = []string{}
	}
	if left == nil {
		left = []string{}
	}
	return httpapi.OK(map[string]any{"changed": changed, "left": left})
}
