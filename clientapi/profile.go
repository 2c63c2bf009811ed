package clientapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/filter"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
)

// profileOf loads a user's profile; deactivated users have none.
func (a *API) profileOf(r *http.Request) (storage.User, error) {
	u, err := a.DB.R().User(r.Context(), mux.Vars(r)["userId"])
	if errors.Is(err, storage.ErrNotFound) || (err == nil && u.Deactivated) {
		return u, httpapi.NotFound("unknown user")
	}
	return u, err
}

func profileBody(u storage.User) map[string]string {
	b := map[string]string{}
	if u.DisplayName != "" {
		b["displayname"] = u.DisplayName
	}
	if u.AvatarURL != "" {
		b["avatar_url"] = u.AvatarURL
	}
	return b
}

// GET /_matrix/client/v3/profile/{userId}
func (a *API) getProfile(r *http.Request, _ *httpapi.Device) httpapi.Response {
	u, err := a.profileOf(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(profileBody(u))
}

// GET /_matrix/client/v3/profile/{userId}/{displayname|avatar_url}
func (a *API) getProfileField(r *http.Request, _ *httpapi.Device) httpapi.Response {
	u, err := a.profileOf(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	field := mux.Vars(r)["field"]
	v, ok := profileBody(u)[field]
	if !ok {
		return httpapi.Fail(httpapi.NotFound("%s is not set", field))
	}
	return httpapi.OK(map[string]string{field: v})
}

// PUT /_matrix/client/v3/profile/{userId}/{displayname|avatar_url}
func (a *API) setProfileField(r *http.Request, dev *httpapi.Device) httpapi.Response {
	if mux.Vars(r)["userId"] != dev.UserID {
		return httpapi.Fail(httpapi.Forbidden("you may only change your own profile"))
	}
	field := mux.Vars(r)["field"]
	var req map[string]json.RawMessage
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	raw, ok := req[field]
	if !ok {
		return httpapi.Fail(httpapi.MissingParam("%s is required", field))
	}
	var value string
	if string(raw) != "null" {
		if err := json.Unmarshal(raw, &value); err != nil {
			return httpapi.Fail(httpapi.BadJSON("%s must be a string", field))
		}
	}
	var dn, av *string
	switch field {
	case "displayname":
		if len([]rune(value)) > 256 {
			return httpapi.Fail(httpapi.InvalidParam("displayname is limited to 256 characters"))
		}
		dn = &value
	case "avatar_url":
		// Any string, as Synapse takes it: clients load only mxc:// URIs,
		// so anything else is shown as no avatar, never fetched.
		if len(value) > 1000 {
			return httpapi.Fail(httpapi.InvalidParam("avatar_url is limited to 1000 bytes"))
		}
		av = &value
	}
	if suspended, err := a.DB.R().UserSuspended(r.Context(), dev.UserID); err != nil || suspended {
		if err == nil {
			err = rooms.ErrSuspended
		}
		return httpapi.Fail(err)
	}
	if err := a.Rooms.SetProfile(r.Context(), dev.UserID, dn, av); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(httpapi.Empty)
}

// ownUser rejects requests about another user's private data.
func ownUser(r *http.Request, dev *httpapi.Device) error {
	if mux.Vars(r)["userId"] != dev.UserID {
		return httpapi.Forbidden("you may only access your own data")
	}
	return nil
}

// POST /_matrix/client/v3/user/{userId}/filter
func (a *API) createFilter(r *http.Request, dev *httpapi.Device) httpapi.Response {
	if err := ownUser(r, dev); err != nil {
		return httpapi.Fail(err)
	}
	body, err := httpapi.ReadBody(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	var f filter.Filter
	if err := httpapi.DecodeBytes(body, &f); err != nil {
		return httpapi.Fail(err)
	}
	if err := f.Validate(); err != nil {
		return httpapi.Fail(httpapi.BadJSON("%v", err))
	}
	var id int64
	err = a.DB.Write(r.Context(), func(q Store) error {
		id, err = q.AddFilter(r.Context(), dev.UserID, body)
		return err
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]string{"filter_id": strconv.FormatInt(id, 10)})
}

// GET /_matrix/client/v3/user/{userId}/filter/{filterId}
func (a *API) getFilter(r *http.Request, dev *httpapi.Device) httpapi.Response {
	if err := ownUser(r, dev); err != nil {
		return httpapi.Fail(err)
	}
	id, err := strconv.ParseInt(mux.Vars(r)["filterId"], 10, 64)
	if err != nil {
		return httpapi.Fail(httpapi.NotFound("unknown filter"))
	}
	f, err := a.DB.R().Filter(r.Context(), dev.UserID, id)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(json.RawMessage(f))
}

// accountDataKey returns the room ("" for global) and type of an account
// data request.
func accountDataKey(r *http.Request) (roomID, typ string, err error) {
	v := mux.Vars(r)
	if roomID = v["roomId"]; roomID != "" && !strings.HasPrefix(roomID, "!") {
		return "", "", httpapi.InvalidParam("%q is not a room ID", roomID)
	}
	return roomID, v["type"], nil
}

// GET /_matrix/client/v3/user/{userId}[/rooms/{roomId}]/account_data/{type}
func (a *API) getAccountData(r *http.Request, dev *httpapi.Device) httpapi.Response {
	if err := ownUser(r, dev); err != nil {
		return httpapi.Fail(err)
	}
	roomID, typ, err := accountDataKey(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	c, err := a.DB.R().AccountData(r.Context(), dev.UserID, roomID, typ)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && deleted(c)) {
		return httpapi.Fail(httpapi.NotFound("account data not found"))
	}
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(json.RawMessage(c))
}

// Deleted account data (MSC3391) is stored as {}: an incremental sync
// tells clients of the deletion with the empty content; initial syncs and
// GET see nothing.
func deleted(content []byte) bool { return string(content) == "{}" }

// DELETE /_matrix/client/unstable/org.matrix.msc3391/user/{userId}[/rooms/{roomId}]/account_data/{type}
func (a *API) deleteAccountData(r *http.Request, dev *httpapi.Device) httpapi.Response {
	return a.putAccountData(r, dev, []byte("{}"))
}

// PUT /_matrix/client/v3/user/{userId}[/rooms/{roomId}]/account_data/{type}
// ({} deletes it, as MSC3391 has it)
func (a *API) setAccountData(r *http.Request, dev *httpapi.Device) httpapi.Response {
	body, err := httpapi.ReadBody(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	var obj map[string]json.RawMessage
	if err := httpapi.DecodeBytes(body, &obj); err != nil {
		return httpapi.Fail(err)
	}
	if len(obj) == 0 {
		body = []byte("{}")
	}
	return a.putAccountData(r, dev, body)
}

func (a *API) putAccountData(r *http.Request, dev *httpapi.Device, body []byte) httpapi.Response {
	if err := ownUser(r, dev); err != nil {
		return httpapi.Fail(err)
	}
	roomID, typ, err := accountDataKey(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	// These two are managed through their own endpoints.
	if typ == "m.fully_read" || typ == "m.push_rules" {
		return httpapi.Fail(&httpapi.Error{Kind: matrixerr.KindMethodNotAllowed, Code: "M_BAD_JSON",
			Message: "cannot set " + typ + " through this API"})
	}
	err = a.DB.Write(r.Context(), func(q Store) error {
		_, err := q.SetAccountData(r.Context(), dev.UserID, roomID, typ, body)
		return err
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	a.Notifier.Wake(dev.UserID)
	return httpapi.OK(httpapi.Empty)
}
