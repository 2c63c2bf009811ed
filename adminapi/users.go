package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// listedUser is a user in Synapse's list format (creation_ts in ms).
func listedUser(u storage.UserListing) map[string]any {
	return map[string]any{
		"name": u.UserID, "displayname": nullable(u.DisplayName), "avatar_url": nullable(u.AvatarURL),
		"admin": u.IsAdmin, "deactivated": u.Deactivated, "erased": u.Erased, "is_guest": false,
		"shadow_banned": false, "locked": false, "approved": true, "user_type": nil,
		"creation_ts": u.CreatedTS, "last_seen_ts": nullableTS(u.LastSeenTS),
	}
}

// queriedUser is a user in Synapse's query format (creation_ts in s),
// with their identities at the identity providers.
func (a *API) queriedUser(ctx context.Context, userID string) (map[string]any, error) {
	u, err := a.DB.R().UserListingOf(ctx, userID)
	if err != nil {
		return nil, err
	}
	ids, err := a.DB.R().ExternalIDs(ctx, userID)
	if err != nil {
		return nil, err
	}
	m := listedUser(u)
	m["creation_ts"] = u.CreatedTS / 1000
	m["threepids"], m["external_ids"] = []any{}, ids
	m["appservice_id"], m["consent_server_notice_sent"], m["consent_version"], m["consent_ts"] = nil, nil, nil, nil
	m["suspended"] = u.Suspended
	return m, nil
}

// GET /_synapse/admin/v2/users and GET /_synapse/admin/v3/users: the same
// list, except for deactivated. In v2 it is "also the deactivated" (absent:
// the active only); in v3 it filters: true gives only the deactivated,
// false only the active, absent everyone.
func (a *API) listUsers(v3 bool) httpapi.AuthHandler {
	return func(r *http.Request, _ *httpapi.Device) httpapi.Response {
		l, err := readListing(r, storage.UserOrders)
		if err != nil {
			return httpapi.Fail(err)
		}
		from := l.from
		f := storage.UserFilter{From: from, Limit: l.limit, OrderBy: l.order, Backwards: l.back}
		if f.Deactivated, err = optionalBool(r, "deactivated"); err != nil {
			return httpapi.Fail(err)
		}
		if !v3 {
			if f.Deactivated == nil || !*f.Deactivated {
				f.Deactivated = new(false)
			} else {
				f.Deactivated = nil
			}
		}
		if f.Admins, err = optionalBool(r, "admins"); err != nil {
			return httpapi.Fail(err)
		}
		// There are no guests, locked users or user types here: those
		// filters are checked and leave everyone in.
		for _, p := range []string{"guests", "locked"} {
			if _, err := boolParam(r, p, true); err != nil {
				return httpapi.Fail(err)
			}
		}
		if f.Name = r.URL.Query().Get("name"); f.Name == "" {
			f.Name = r.URL.Query().Get("user_id")
		}
		users, total, err := a.DB.R().ListUsers(r.Context(), f)
		if err != nil {
			return httpapi.Fail(err)
		}
		list := make([]map[string]any, 0, len(users))
		for _, u := range users {
			list = append(list, listedUser(u))
		}
		body := map[string]any{"users": list, "total": total}
		nextToken(body, from, len(users), total)
		return httpapi.OK(body)
	}
}

// GET /_synapse/admin/v2/users/{userId}
func (a *API) getUser(r *http.Request, _ *httpapi.Device) httpapi.Response {
	userID, err := a.existingUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	u, err := a.queriedUser(r.Context(), userID)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(u)
}

// GET /_synapse/admin/v1/auth_providers/{provider}/users/{externalId}
func (a *API) userByExternalID(r *http.Request, _ *httpapi.Device) httpapi.Response {
	v := mux.Vars(r) // unescaped by httpapi
	userID, err := a.DB.R().UserByExternalID(r.Context(), v["provider"], v["externalId"])
	if errors.Is(err, storage.ErrNotFound) {
		return httpapi.Fail(httpapi.NotFound("no user with that external ID"))
	}
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]string{"user_id": userID})
}

// userEdit is a PUT /_synapse/admin/v2/users/{userId} body.
type userEdit struct {
	Password      *string `json:"password"`
	LogoutDevices *bool   `json:"logout_devices"`
	DisplayName   *string `json:"displayname"`
	AvatarURL     *string `json:"avatar_url"`
	Admin         *bool   `json:"admin"`
	Deactivated   *bool   `json:"deactivated"`
	// ExternalIDs replaces the user's identities at the providers.
	ExternalIDs *[]storage.ExternalID `json:"external_ids"`
}

// PUT /_synapse/admin/v2/users/{userId}: create (201) or modify (200). All
// the changes and their audit row are one transaction: a failure midway
// leaves the user as they were. The password is hashed before it.
func (a *API) putUser(r *http.Request, dev *httpapi.Device) httpapi.Response {
	userID, err := a.localUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	var req userEdit
	if err := decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	ctx := r.Context()
	edit, err := a.prepareEdit(ctx, userID, req)
	if err != nil {
		return httpapi.Fail(err)
	}
	if err := a.applyEdit(ctx, dev, edit); err != nil {
		return httpapi.Fail(err)
	}
	u, err := a.queriedUser(ctx, userID)
	if err != nil {
		return httpapi.Fail(err)
	}
	res := httpapi.OK(u)
	if edit.created {
		res.Code = http.StatusCreated
	}
	return res
}

// preparedEdit is an edit checked against the user as they are, with its
// password hashed and the fields a tool sent back unchanged dropped.
type preparedEdit struct {
	userEdit
	userID   string
	existing storage.User
	created  bool
	hash     string
}

// prepareEdit checks an edit and does its slow part (hashing) before the
// transaction.
func (a *API) prepareEdit(ctx context.Context, userID string, req userEdit) (preparedEdit, error) {
	e := preparedEdit{userEdit: req, userID: userID}
	if _, err := a.Auth.UserID(localpart(userID)); err != nil {
		return e, err
	}
	var err error
	e.existing, err = a.DB.R().User(ctx, userID)
	e.created = errors.Is(err, storage.ErrNotFound)
	if err != nil && !e.created {
		return e, err
	}
	switch {
	case e.created && req.Deactivated != nil && *req.Deactivated:
		return e, httpapi.InvalidParam("a new user cannot be deactivated")
	case !e.created && req.Deactivated != nil && !*req.Deactivated && e.existing.Deactivated && req.Password == nil:
		return e, httpapi.InvalidParam("reactivating a user needs a password")
	}
	if req.Password != nil {
		if e.hash, err = a.Auth.NewPasswordHash(*req.Password); err != nil {
			return e, err
		}
	}
	if req.ExternalIDs != nil {
		if err := a.checkExternalIDs(ctx, e); err != nil {
			return e, err
		}
		// Sorted and without repeats, as they are stored and read back.
		want := slices.Clone(*req.ExternalIDs)
		slices.SortFunc(want, func(x, y storage.ExternalID) int {
			return strings.Compare(x.AuthProvider+"\x00"+x.ExternalID, y.AuthProvider+"\x00"+y.ExternalID)
		})
		want = slices.Compact(want)
		e.ExternalIDs = &want
		if !e.created {
			had, err := a.DB.R().ExternalIDs(ctx, userID)
			if err != nil {
				return e, err
			}
			if slices.Equal(had, want) {
				e.ExternalIDs = nil
			}
		}
	}
	// Tools send the whole record back: only what changed is changed.
	if req.DisplayName != nil && !e.created && *req.DisplayName == e.existing.DisplayName {
		e.DisplayName = nil
	}
	if req.AvatarURL != nil && !e.created && *req.AvatarURL == e.existing.AvatarURL {
		e.AvatarURL = nil
	}
	return e, nil
}

// checkExternalIDs checks the identities an edit links: each of a
// configured provider, named, and not another user's.
func (a *API) checkExternalIDs(ctx context.Context, e preparedEdit) error {
	for _, id := range *e.ExternalIDs {
		if id.AuthProvider == "" || id.ExternalID == "" || len(id.ExternalID) > 255 {
			return httpapi.InvalidParam("each external ID needs an auth_provider and an external_id (up to 255 bytes)")
		}
		if !slices.ContainsFunc(a.Cfg.SSO.Providers, func(p config.Provider) bool { return p.ID == id.AuthProvider }) {
			return httpapi.InvalidParam("%q is not a configured identity provider", id.AuthProvider)
		}
		owner, err := a.DB.R().UserByExternalID(ctx, id.AuthProvider, id.ExternalID)
		if err == nil && owner != e.userID {
			return httpapi.Conflict("%s's ID %q is %s's", id.AuthProvider, id.ExternalID, owner)
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return nil
}

// applyEdit makes an edit's changes and writes its audit row, in one
// transaction.
func (a *API) applyEdit(ctx context.Context, dev *httpapi.Device, e preparedEdit) error {
	return a.DB.WriteAll(ctx, func(ctx context.Context) error {
		var changes []string
		var err error
		if e.created {
			u, _ := a.Auth.NewUser(e.userID, "", e.Admin != nil && *e.Admin) // no password given: nothing to hash
			u.PasswordHash = e.hash
			changes, err = []string{"created"}, a.Auth.AddUser(ctx, u)
		} else {
			changes, err = a.modifyUser(ctx, e.userID, e.existing, e.userEdit, e.hash)
		}
		if err != nil {
			return err
		}
		if e.ExternalIDs != nil {
			err := a.DB.Write(ctx, func(q Store) error { return q.SetExternalIDs(ctx, e.userID, *e.ExternalIDs, a.Now().UnixMilli()) })
			if errors.Is(err, storage.ErrConflict) {
				return httpapi.Conflict("an external ID is another user's")
			}
			if err != nil {
				return err
			}
			changes = append(changes, "external_ids")
		}
		if e.DisplayName != nil || e.AvatarURL != nil {
			if err := a.Rooms.SetProfile(ctx, e.userID, e.DisplayName, e.AvatarURL); err != nil {
				return err
			}
			changes = append(changes, "profile")
		}
		return a.record(ctx, dev, map[bool]string{true: "create_user", false: "modify_user"}[e.created], e.userID, strings.Join(changes, ","))
	})
}

// modifyUser makes an existing user's changes of an edit, inside its
// transaction, and names them for the audit log.
func (a *API) modifyUser(ctx context.Context, userID string, existing storage.User, req userEdit, hash string) ([]string, error) {
	var changes []string
	if req.Deactivated != nil && *req.Deactivated && !existing.Deactivated {
		if err := a.DeactivateUser(ctx, userID, false); err != nil {
			return nil, err
		}
		changes = append(changes, "deactivated")
	}
	if req.Deactivated != nil && !*req.Deactivated && existing.Deactivated {
		if err := a.DB.Write(ctx, func(q Store) error { return q.ReactivateUser(ctx, userID) }); err != nil {
			return nil, err
		}
		changes = append(changes, "reactivated")
	}
	if hash != "" {
		logout := req.LogoutDevices == nil || *req.LogoutDevices
		if err := a.Auth.StorePassword(ctx, userID, hash, logout, ""); err != nil {
			return nil, err
		}
		changes = append(changes, "password")
	}
	if req.Admin != nil && *req.Admin != existing.IsAdmin {
		if err := a.DB.Write(ctx, func(q Store) error { return q.SetAdmin(ctx, userID, *req.Admin) }); err != nil {
			return nil, err
		}
		changes = append(changes, fmt.Sprintf("admin=%v", *req.Admin))
	}
	return changes, nil
}

func localpart(userID string) string {
	for i := 1; i < len(userID); i++ {
		if userID[i] == ':' {
			return userID[1:i]
		}
	}
	return userID
}

// DeactivateUser leaves every room, closes the account and, with erase,
// deletes its data.
func (a *API) DeactivateUser(ctx context.Context, userID string, erase bool) error {
	ctx = context.WithoutCancel(ctx)
	if err := a.Rooms.LeaveAll(ctx, userID); err != nil {
		return err
	}
	if err := a.Auth.Deactivate(ctx, userID); err != nil {
		return err
	}
	if erase {
		return a.Retention.EraseUser(ctx, userID)
	}
	return nil
}

// POST /_synapse/admin/v1/deactivate/{userId}
func (a *API) deactivate(r *http.Request, dev *httpapi.Device) httpapi.Response {
	userID, err := a.existingUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	var req struct {
		Erase bool `json:"erase"`
	}
	if err := decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	// Leaving the rooms and closing the account are one transaction with
	// the audit row; erasure follows in batches of its own (it may be
	// large), and can be asked for again if it is cut short.
	err = a.audited(r.Context(), dev, "deactivate_user", userID, fmt.Sprintf("erase=%v", req.Erase), func(ctx context.Context) error {
		return a.DeactivateUser(ctx, userID, false)
	})
	if err == nil && req.Erase {
		err = a.Retention.EraseUser(context.WithoutCancel(r.Context()), userID)
	}
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]string{"id_server_unbind_result": "success"})
}

// POST /_synapse/admin/v1/reset_password/{userId}
func (a *API) resetPassword(r *http.Request, dev *httpapi.Device) httpapi.Response {
	userID, err := a.existingUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	var req struct {
		NewPassword   string `json:"new_password"`
		LogoutDevices *bool  `json:"logout_devices"`
	}
	if err := decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.NewPassword == "" {
		return httpapi.Fail(httpapi.MissingParam("new_password is required"))
	}
	logout := req.LogoutDevices == nil || *req.LogoutDevices
	hash, err := a.Auth.NewPasswordHash(req.NewPassword)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.EmptyOr(a.audited(r.Context(), dev, "reset_password", userID, fmt.Sprintf("logout_devices=%v", logout), func(ctx context.Context) error {
		return a.Auth.StorePassword(ctx, userID, hash, logout, "")
	}))
}

// GET /_synapse/admin/v1/whois/{userId}
func (a *API) whois(r *http.Request, _ *httpapi.Device) httpapi.Response {
	userID, devices, err := a.devicesOf(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	conns := []map[string]any{}
	for _, d := range devices {
		if d.LastSeenTS == 0 {
			continue
		}
		conns = append(conns, map[string]any{"ip": nullable(d.LastSeenIP), "last_seen": d.LastSeenTS, "user_agent": nullable(d.LastSeenUA)})
	}
	return httpapi.OK(map[string]any{"user_id": userID,
		"devices": map[string]any{"": map[string]any{"sessions": []any{map[string]any{"connections": conns}}}}})
}

// devicesOf returns the path's user and their devices.
func (a *API) devicesOf(r *http.Request) (string, []storage.Device, error) {
	userID, err := a.existingUser(r)
	if err != nil {
		return "", nil, err
	}
	devices, err := a.DB.R().Devices(r.Context(), userID)
	return userID, devices, err
}

func deviceJSON(d storage.Device) map[string]any {
	return map[string]any{"device_id": d.DeviceID, "display_name": nullable(d.DisplayName), "user_id": d.UserID,
		"last_seen_ip": nullable(d.LastSeenIP), "last_seen_ts": nullableTS(d.LastSeenTS), "last_seen_user_agent": nullable(d.LastSeenUA)}
}

// GET /_synapse/admin/v2/users/{userId}/devices
func (a *API) listDevices(r *http.Request, _ *httpapi.Device) httpapi.Response {
	_, devices, err := a.devicesOf(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	list := []map[string]any{}
	for _, d := range devices {
		list = append(list, deviceJSON(d))
	}
	return httpapi.OK(map[string]any{"devices": list, "total": len(list)})
}

// GET /_synapse/admin/v2/users/{userId}/devices/{deviceId}
func (a *API) getDevice(r *http.Request, _ *httpapi.Device) httpapi.Response {
	_, devices, err := a.devicesOf(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	for _, d := range devices {
		if d.DeviceID == mux.Vars(r)["deviceId"] {
			return httpapi.OK(deviceJSON(d))
		}
	}
	return httpapi.Fail(httpapi.NotFound("unknown device"))
}

// DELETE /_synapse/admin/v2/users/{userId}/devices/{deviceId}
func (a *API) deleteDevice(r *http.Request, dev *httpapi.Device) httpapi.Response {
	userID, err := a.existingUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	deviceID := mux.Vars(r)["deviceId"]
	return httpapi.EmptyOr(a.audited(r.Context(), dev, "delete_device", userID, deviceID, func(ctx context.Context) error {
		return a.Auth.DeleteDevices(ctx, userID, []string{deviceID})
	}))
}

// POST /_synapse/admin/v2/users/{userId}/delete_devices
func (a *API) deleteDevices(r *http.Request, dev *httpapi.Device) httpapi.Response {
	userID, err := a.existingUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	var req struct {
		Devices []string `json:"devices"`
	}
	if err := decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.Devices == nil {
		return httpapi.Fail(httpapi.MissingParam("devices is required"))
	}
	return httpapi.EmptyOr(a.audited(r.Context(), dev, "delete_devices", userID, fmt.Sprintf("%d devices", len(req.Devices)), func(ctx context.Context) error {
		return a.Auth.DeleteDevices(ctx, userID, req.Devices)
	}))
}

// GET /_synapse/admin/v1/users/{userId}/media
func (a *API) userMedia(r *http.Request, _ *httpapi.Device) httpapi.Response {
	userID, err := a.existingUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	from, limit, err := page(r, 100)
	if err != nil {
		return httpapi.Fail(err)
	}
	if _, err := direction(r); err != nil {
		return httpapi.Fail(err)
	}
	media, total, err := a.DB.R().MediaPage(r.Context(), userID, from, limit)
	if err != nil {
		return httpapi.Fail(err)
	}
	list := []map[string]any{}
	for _, m := range media {
		list = append(list, map[string]any{"media_id": m.MediaID, "media_type": m.ContentType, "media_length": m.Size,
			"upload_name": nullable(m.Filename), "created_ts": m.CreatedTS, "last_access_ts": nil,
			"quarantined_by": nullable(m.QuarantinedBy), "safe_from_quarantine": false})
	}
	body := map[string]any{"media": list, "total": total}
	nextToken(body, from, len(media), total)
	return httpapi.OK(body)
}

// DELETE /_synapse/admin/v1/users/{userId}/media
func (a *API) deleteUserMedia(r *http.Request, dev *httpapi.Device) httpapi.Response {
	userID, err := a.existingUser(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	deleted := []string{}
	for {
		media, err := a.DB.R().MediaOf(r.Context(), userID, 50)
		if err != nil {
			return httpapi.Fail(err)
		}
		if len(media) == 0 {
			break
		}
		for _, m := range media {
			if err := a.Media.Delete(context.WithoutCancel(r.Context()), m); err != nil {
				return httpapi.Fail(err)
			}
			deleted = append(deleted, m.MediaID)
		}
	}
	if err := a.record(r.Context(), dev, "delete_user_media", userID, fmt.Sprintf("%d files", len(deleted))); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"deleted_media": deleted, "total": len(deleted)})
}

// DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}
func (a *API) deleteMedia(r *http.Request, dev *httpapi.Device) httpapi.Response {
	vars := mux.Vars(r)
	if vars["serverName"] != a.Cfg.ServerName {
		return httpapi.Fail(httpapi.BadRequest("can only delete local media"))
	}
	m, err := a.DB.R().Media(r.Context(), vars["mediaId"])
	if errors.Is(err, storage.ErrNotFound) {
		return httpapi.Fail(httpapi.NotFound("unknown media"))
	}
	if err != nil {
		return httpapi.Fail(err)
	}
	if err := a.Media.Delete(context.WithoutCancel(r.Context()), m); err != nil {
		return httpapi.Fail(err)
	}
	if err := a.record(r.Context(), dev, "delete_media", "mxc://"+a.Cfg.ServerName+"/"+m.MediaID, ""); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"deleted_media": []string{m.MediaID}, "total": 1})
}
