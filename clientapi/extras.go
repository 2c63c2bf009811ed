package clientapi

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gorilla/mux"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// Endpoints Element calls that have little to do on a single-tenant server
// without third-party identifiers, bridges or (unless configured) TURN.

// GET /_matrix/client/v3/thirdparty/protocols: no bridges.
func (a *API) thirdPartyProtocols(*http.Request, *httpapi.Device) httpapi.Response {
	return httpapi.OK(httpapi.Empty)
}

// GET /_matrix/client/v3/account/3pid: accounts have no email or phone.
func (a *API) threePIDs(*http.Request, *httpapi.Device) httpapi.Response {
	return httpapi.OK(map[string]any{"threepids": []any{}})
}

// GET /_matrix/client/v3/voip/turnServer: time-limited credentials for the
// configured TURN servers (the TURN REST API scheme coturn implements), or
// an empty answer without them.
func (a *API) turnServer(_ *http.Request, dev *httpapi.Device) httpapi.Response {
	t := a.Cfg.TURN
	if len(t.URIs) == 0 || t.SharedSecret == "" {
		return httpapi.OK(httpapi.Empty)
	}
	ttl := t.Lifetime.D()
	username := fmt.Sprintf("%d:%s", a.Auth.Now().Add(ttl).Unix(), dev.UserID)
	mac := hmac.New(sha1.New, []byte(t.SharedSecret))
	mac.Write([]byte(username))
	return httpapi.OK(map[string]any{"uris": t.URIs, "username": username,
		"password": base64.StdEncoding.EncodeToString(mac.Sum(nil)), "ttl": int64(ttl.Seconds())})
}

// Room tags are the m.tag room account data: {"tags": {tag: {order}}}.

func (a *API) tagsOf(r *http.Request, dev *httpapi.Device) (string, []byte, error) {
	if err := ownUser(r, dev); err != nil {
		return "", nil, err
	}
	roomID := mux.Vars(r)["roomId"]
	if !strings.HasPrefix(roomID, "!") {
		return "", nil, httpapi.InvalidParam("%q is not a room ID", roomID)
	}
	c, err := a.DB.R().AccountData(r.Context(), dev.UserID, roomID, "m.tag")
	if errors.Is(err, storage.ErrNotFound) {
		return roomID, []byte(`{"tags":{}}`), nil
	}
	if err == nil && !gjson.GetBytes(c, "tags").IsObject() {
		c = []byte(`{"tags":{}}`)
	}
	return roomID, c, err
}

// GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags
func (a *API) getTags(r *http.Request, dev *httpapi.Device) httpapi.Response {
	_, c, err := a.tagsOf(r, dev)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(json.RawMessage(c))
}

// PUT and DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}
func (a *API) setTag(r *http.Request, dev *httpapi.Device) httpapi.Response {
	roomID, c, err := a.tagsOf(r, dev)
	if err != nil {
		return httpapi.Fail(err)
	}
	tag := mux.Vars(r)["tag"]
	if tag == "" || len(tag) > 255 {
		return httpapi.Fail(httpapi.InvalidParam("invalid tag"))
	}
	path := "tags." + strings.NewReplacer(".", `\.`, "*", `\*`, "?", `\?`, "|", `\|`, "#", `\#`, "@", `\@`).Replace(tag)
	if r.Method == http.MethodPut {
		var body map[string]any
		if err := httpapi.Decode(r, &body); err != nil {
			return httpapi.Fail(err)
		}
		if o, ok := body["order"]; ok {
			if _, isNum := o.(float64); !isNum {
				return httpapi.Fail(httpapi.BadJSON("order must be a number"))
			}
		}
		c, err = sjson.SetBytes(c, path, body)
	} else {
		c, err = sjson.DeleteBytes(c, path)
	}
	if err != nil {
		return httpapi.Fail(httpapi.InvalidParam("invalid tag"))
	}
	err = a.DB.Write(r.Context(), func(q Store) error {
		_, err := q.SetAccountData(r.Context(), dev.UserID, roomID, "m.tag", c)
		return err
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	a.Notifier.Wake(dev.UserID)
	return httpapi.OK(httpapi.Empty)
}
