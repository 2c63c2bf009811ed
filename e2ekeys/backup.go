package e2ekeys

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/storage"
)

// Server-side key backup stores session keys that clients encrypted with a
// backup key the server never sees. The algorithm is the clients' business:
// the server stores whatever they name, as the data is opaque to it.

func versionJSON(v storage.BackupVersion) map[string]any {
	return map[string]any{"algorithm": v.Algorithm, "auth_data": v.AuthData, "count": v.Count,
		"etag": strconv.FormatInt(v.Etag, 10), "version": strconv.FormatInt(v.Version, 10)}
}

func parseVersion(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, httpapi.NotFound("unknown backup version")
	}
	return v, nil
}

type versionRequest struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Version   string          `json:"version"`
}

func (v *versionRequest) check() error {
	if v.Algorithm == "" {
		return httpapi.MissingParam("algorithm is required")
	}
	if !gjson.ParseBytes(v.AuthData).IsObject() {
		return httpapi.MissingParam("auth_data must be an object")
	}
	return nil
}

// POST /_matrix/client/v3/room_keys/version
func (s *Service) createBackup(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req versionRequest
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if err := req.check(); err != nil {
		return httpapi.Fail(err)
	}
	var v int64
	err := s.DB.Write(r.Context(), func(q Store) error {
		var err error
		v, err = q.CreateBackupVersion(r.Context(), dev.UserID, req.Algorithm, req.AuthData)
		return err
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]string{"version": strconv.FormatInt(v, 10)})
}

// GET /_matrix/client/v3/room_keys/version[/{version}]
func (s *Service) getBackup(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var version int64
	if vs, ok := mux.Vars(r)["version"]; ok {
		var err error
		if version, err = parseVersion(vs); err != nil {
			return httpapi.Fail(err)
		}
	}
	v, err := s.DB.R().GetBackupVersion(r.Context(), dev.UserID, version)
	if errors.Is(err, storage.ErrNotFound) {
		return httpapi.Fail(httpapi.NotFound("no backup found"))
	}
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(versionJSON(v))
}

// PUT /_matrix/client/v3/room_keys/version/{version}
func (s *Service) updateBackup(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req versionRequest
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	version, err := parseVersion(mux.Vars(r)["version"])
	if err != nil {
		return httpapi.Fail(err)
	}
	if err := req.check(); err != nil {
		return httpapi.Fail(err)
	}
	if req.Version != "" && req.Version != mux.Vars(r)["version"] {
		return httpapi.Fail(httpapi.InvalidParam("version in the body does not match the path"))
	}
	err = s.DB.Write(r.Context(), func(q Store) error {
		cur, err := q.GetBackupVersion(r.Context(), dev.UserID, version)
		if err != nil {
			return err
		}
		if cur.Algorithm != req.Algorithm {
			return httpapi.InvalidParam("a backup's algorithm cannot change")
		}
		return q.UpdateBackupAuthData(r.Context(), dev.UserID, version, req.AuthData)
	})
	return httpapi.EmptyOr(err)
}

// DELETE /_matrix/client/v3/room_keys/version/{version}
func (s *Service) deleteBackup(r *http.Request, dev *httpapi.Device) httpapi.Response {
	version, err := parseVersion(mux.Vars(r)["version"])
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.EmptyOr(s.DB.Write(r.Context(), func(q Store) error {
		return q.DeleteBackupVersion(r.Context(), dev.UserID, version)
	}))
}

// backupTarget reads ?version= and the optional room and session of a
// keys request. For writes, the version must be the current one.
func (s *Service) backupTarget(r *http.Request, dev *httpapi.Device, write bool) (storage.BackupVersion, string, string, error) {
	vs := r.URL.Query().Get("version")
	if vs == "" {
		return storage.BackupVersion{}, "", "", httpapi.MissingParam("version is required")
	}
	version, err := parseVersion(vs)
	if err != nil {
		return storage.BackupVersion{}, "", "", err
	}
	current, err := s.DB.R().GetBackupVersion(r.Context(), dev.UserID, 0)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.BackupVersion{}, "", "", httpapi.NotFound("no backup found")
	}
	if err != nil {
		return storage.BackupVersion{}, "", "", err
	}
	if write && version != current.Version {
		return storage.BackupVersion{}, "", "", &httpapi.Error{Kind: matrixerr.KindForbidden, Code: spec.ErrorWrongRoomKeysVersion,
			Message: "that backup version is not the current one", Extra: map[string]any{"current_version": strconv.FormatInt(current.Version, 10)}}
	}
	v := current
	if version != current.Version {
		if v, err = s.DB.R().GetBackupVersion(r.Context(), dev.UserID, version); errors.Is(err, storage.ErrNotFound) {
			return v, "", "", httpapi.NotFound("unknown backup version")
		} else if err != nil {
			return v, "", "", err
		}
	}
	return v, mux.Vars(r)["roomId"], mux.Vars(r)["sessionId"], nil
}

type keyBackupData struct {
	FirstMessageIndex *int64          `json:"first_message_index"`
	ForwardedCount    *int64          `json:"forwarded_count"`
	IsVerified        *bool           `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

func (k *keyBackupData) toStorage(roomID, sessionID string) (storage.BackupKey, error) {
	if k.FirstMessageIndex == nil || k.ForwardedCount == nil || k.IsVerified == nil || !gjson.ParseBytes(k.SessionData).IsObject() {
		return storage.BackupKey{}, httpapi.BadJSON("key backup data needs first_message_index, forwarded_count, is_verified and session_data")
	}
	return storage.BackupKey{RoomID: roomID, SessionID: sessionID, FirstMessageIndex: *k.FirstMessageIndex,
		ForwardedCount: *k.ForwardedCount, IsVerified: *k.IsVerified, SessionData: k.SessionData}, nil
}

type roomKeys struct {
	Sessions map[string]keyBackupData `json:"sessions"`
}

// PUT /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]
func (s *Service) putBackupKeys(r *http.Request, dev *httpapi.Device) httpapi.Response {
	body, err := httpapi.ReadBody(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	v, roomID, sessionID, err := s.backupTarget(r, dev, true)
	if err != nil {
		return httpapi.Fail(err)
	}
	var keys []storage.BackupKey
	add := func(room, session string, d keyBackupData) error {
		k, err := d.toStorage(room, session)
		keys = append(keys, k)
		return err
	}
	switch {
	case sessionID != "":
		var d keyBackupData
		if err = httpapi.DecodeBytes(body, &d); err == nil {
			err = add(roomID, sessionID, d)
		}
	case roomID != "":
		var rk roomKeys
		if err = httpapi.DecodeBytes(body, &rk); err == nil {
			for sid, d := range rk.Sessions {
				if err = add(roomID, sid, d); err != nil {
					break
				}
			}
		}
	default:
		var all struct {
			Rooms map[string]roomKeys `json:"rooms"`
		}
		if err = httpapi.DecodeBytes(body, &all); err == nil {
			for rid, rk := range all.Rooms {
				for sid, d := range rk.Sessions {
					if err = add(rid, sid, d); err != nil {
						break
					}
				}
			}
		}
	}
	if err != nil {
		return httpapi.Fail(err)
	}
	var res storage.BackupVersion
	err = s.DB.Write(r.Context(), func(q Store) error {
		changed := false
		for _, k := range keys {
			c, err := q.PutBackupKey(r.Context(), dev.UserID, v.Version, k)
			if err != nil {
				return err
			}
			changed = changed || c
		}
		if changed {
			if err := q.BumpBackupEtag(r.Context(), dev.UserID, v.Version); err != nil {
				return err
			}
		}
		var err error
		res, err = q.GetBackupVersion(r.Context(), dev.UserID, v.Version)
		return err
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"count": res.Count, "etag": strconv.FormatInt(res.Etag, 10)})
}

func backupDataJSON(k storage.BackupKey) map[string]any {
	return map[string]any{"first_message_index": k.FirstMessageIndex, "forwarded_count": k.ForwardedCount,
		"is_verified": k.IsVerified, "session_data": k.SessionData}
}

// GET /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]
func (s *Service) getBackupKeys(r *http.Request, dev *httpapi.Device) httpapi.Response {
	v, roomID, sessionID, err := s.backupTarget(r, dev, false)
	if err != nil {
		return httpapi.Fail(err)
	}
	keys, err := s.DB.R().BackupKeys(r.Context(), dev.UserID, v.Version, roomID, sessionID)
	if err != nil {
		return httpapi.Fail(err)
	}
	switch {
	case sessionID != "":
		if len(keys) == 0 {
			return httpapi.Fail(httpapi.NotFound("no key backed up for that session"))
		}
		return httpapi.OK(backupDataJSON(keys[0]))
	case roomID != "":
		sessions := map[string]any{}
		for _, k := range keys {
			sessions[k.SessionID] = backupDataJSON(k)
		}
		return httpapi.OK(map[string]any{"sessions": sessions})
	}
	rooms := map[string]map[string]map[string]any{}
	for _, k := range keys {
		if rooms[k.RoomID] == nil {
			rooms[k.RoomID] = map[string]map[string]any{"sessions": {}}
		}
		rooms[k.RoomID]["sessions"][k.SessionID] = backupDataJSON(k)
	}
	return httpapi.OK(map[string]any{"rooms": rooms})
}

// DELETE /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]
func (s *Service) deleteBackupKeys(r *http.Request, dev *httpapi.Device) httpapi.Response {
	v, roomID, sessionID, err := s.backupTarget(r, dev, true)
	if err != nil {
		return httpapi.Fail(err)
	}
	var res storage.BackupVersion
	err = s.DB.Write(r.Context(), func(q Store) error {
		n, err := q.DeleteBackupKeys(r.Context(), dev.UserID, v.Version, roomID, sessionID)
		if err != nil {
			return err
		}
		if n > 0 {
			if err := q.BumpBackupEtag(r.Context(), dev.UserID, v.Version); err != nil {
				return err
			}
		}
		res, err = q.GetBackupVersion(r.Context(), dev.UserID, v.Version)
		return err
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"count": res.Count, "etag": strconv.FormatInt(res.Etag, 10)})
}
