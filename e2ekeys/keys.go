// Package e2ekeys is the key server of end-to-end encryption: device,
// one-time, fallback and cross-signing keys, signatures, to-device
// messages and server-side key backup. Everything it stores is public or
// already encrypted by the clients.
package e2ekeys

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/auth"
	"github.com/redoubt-systems/redoubt/devicelists"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/notifier"
	"github.com/redoubt-systems/redoubt/storage"
)

// Store is the part of storage.Q the key server uses: what it reads
// and writes.
type Store interface {
	devicelists.Store
	UsersSharingRooms(ctx context.Context, userID string) (map[string]bool, error)
	AddDeviceListChange(ctx context.Context, userID string) error
	AddOneTimeKey(ctx context.Context, userID, deviceID, algorithm, keyID string, key []byte) error
	AddSignature(ctx context.Context, s storage.Signature) error
	AddToDevice(ctx context.Context, m storage.ToDevice) error
	AddToDeviceTxn(ctx context.Context, userID, deviceID, txnID string) error
	BackupKeys(ctx context.Context, userID string, version int64, roomID, sessionID string) ([]storage.BackupKey, error)
	BumpBackupEtag(ctx context.Context, userID string, version int64) error
	ClaimKey(ctx context.Context, userID, deviceID, algorithm string) (keyID string, key []byte, err error)
	CreateBackupVersion(ctx context.Context, userID, algorithm string, authData []byte) (int64, error)
	CrossSigningKeys(ctx context.Context, userID string) (map[string][]byte, error)
	DeleteBackupKeys(ctx context.Context, userID string, version int64, roomID, sessionID string) (int64, error)
	DeleteBackupVersion(ctx context.Context, userID string, version int64) error
	DeleteDevices(ctx context.Context, userID string, deviceIDs []string) error
	DeleteToDeviceUpTo(ctx context.Context, userID, deviceID string, pos int64) error
	Device(ctx context.Context, userID, deviceID string) (storage.Device, error)
	DeviceKeys(ctx context.Context, userID, deviceID string) ([]byte, error)
	DeviceKeysOf(ctx context.Context, userIDs []string) ([]storage.DeviceKeysEntry, error)
	Devices(ctx context.Context, userID string) ([]storage.Device, error)
	GetBackupVersion(ctx context.Context, userID string, version int64) (storage.BackupVersion, error)
	GetDehydratedDevice(ctx context.Context, userID string) (storage.DehydratedDevice, error)
	OneTimeKey(ctx context.Context, userID, deviceID, algorithm, keyID string) ([]byte, error)
	OneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, error)
	PutBackupKey(ctx context.Context, userID string, version int64, k storage.BackupKey) (bool, error)
	SetCrossSigningKey(ctx context.Context, userID, purpose string, key []byte) error
	SetDehydratedDevice(ctx context.Context, userID string, d storage.DehydratedDevice) error
	SetDeviceKeys(ctx context.Context, userID, deviceID string, keys []byte) error
	SetFallbackKey(ctx context.Context, userID, deviceID, algorithm, keyID string, key []byte) error
	SignaturesOf(ctx context.Context, userIDs []string) ([]storage.Signature, error)
	CrossSigningKeysOf(ctx context.Context, userIDs []string) (map[string]map[string][]byte, error)
	ToDeviceFor(ctx context.Context, userID, deviceID string, after, upto int64, limit int) ([]storage.ToDevice, error)
	UpdateBackupAuthData(ctx context.Context, userID string, version int64, authData []byte) error
	UpsertDevice(ctx context.Context, d storage.Device) error
}

var _ Store = storage.Q{}

// Service serves the key endpoints.
type Service struct {
	DB       storage.View[Store]
	Auth     *auth.Service
	Notifier *notifier.Notifier
	Now      func() time.Time
}

// Register adds the key, to-device and backup routes.
func (s *Service) Register(r *mux.Router, h *httpapi.API) {
	authed := httpapi.Routes{R: r, API: h}.Authed
	const c = "/_matrix/client/v3"
	authed(c+"/keys/upload", s.upload, "POST")
	authed(c+"/keys/query", s.query, "POST")
	authed(c+"/keys/claim", s.claim, "POST")
	authed(c+"/keys/changes", s.changes, "GET")
	authed(c+"/keys/device_signing/upload", s.uploadCrossSigning, "POST")
	authed(c+"/keys/signatures/upload", s.uploadSignatures, "POST")
	authed(c+"/sendToDevice/{eventType}/{txnId}", s.sendToDevice, "PUT")

	authed(c+"/room_keys/version", s.createBackup, "POST")
	authed(c+"/room_keys/version", s.getBackup, "GET")
	authed(c+"/room_keys/version/{version}", s.getBackup, "GET")
	authed(c+"/room_keys/version/{version}", s.updateBackup, "PUT")
	authed(c+"/room_keys/version/{version}", s.deleteBackup, "DELETE")
	for _, p := range []string{"/room_keys/keys", "/room_keys/keys/{roomId}", "/room_keys/keys/{roomId}/{sessionId}"} {
		authed(c+p, s.putBackupKeys, "PUT")
		authed(c+p, s.getBackupKeys, "GET")
		authed(c+p, s.deleteBackupKeys, "DELETE")
	}
	s.registerDehydrated(r, h)
}

// WakeDeviceListChange wakes the syncs of a user and of everyone sharing a
// room with them, after the user's devices or keys changed.
func (s *Service) WakeDeviceListChange(userID string) {
	users, err := s.DB.R().UsersSharingRooms(context.Background(), userID)
	if err != nil {
		users = map[string]bool{userID: true}
	}
	list := make([]string, 0, len(users))
	for u := range users {
		list = append(list, u)
	}
	s.Notifier.Wake(list...)
}

// deviceKeys is the part of uploaded device keys the server checks.
type deviceKeys struct {
	UserID     string                       `json:"user_id"`
	DeviceID   string                       `json:"device_id"`
	Algorithms []string                     `json:"algorithms"`
	Keys       map[string]string            `json:"keys"`
	Signatures map[string]map[string]string `json:"signatures"`
}

func decodeEd25519(s string) (ed25519.PublicKey, bool) {
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, false
	}
	return b, true
}

// verify checks one signature by signer's keyID over a signed JSON object.
func verify(signer, keyID, publicKey string, object []byte) error {
	pub, ok := decodeEd25519(publicKey)
	if !ok {
		return errors.New("malformed public key")
	}
	return gomatrixserverlib.VerifyJSON(signer, gomatrixserverlib.KeyID(keyID), pub, object)
}

func invalidSignature(msg string) *httpapi.Error {
	return &httpapi.Error{Kind: matrixerr.KindInvalid, Code: spec.ErrorInvalidSignature, Message: msg}
}

// keyUpload is a validated /keys/upload body (also part of a dehydrated
// device).
type keyUpload struct {
	deviceKeys json.RawMessage // nil when absent
	identity   map[string]string
	otks       map[keyRef]json.RawMessage
	fallbacks  map[keyRef]json.RawMessage
}

type keyRef struct{ alg, id string }

type uploadRequest struct {
	DeviceKeys   json.RawMessage            `json:"device_keys"`
	OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
	FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
}

// parseUpload checks uploaded keys for one device: device keys must be that
// device's, with an ed25519 and a curve25519 key, self-signed.
func parseUpload(req uploadRequest, userID, deviceID string) (*keyUpload, error) {
	up := &keyUpload{}
	if len(req.DeviceKeys) > 0 && string(req.DeviceKeys) != "null" {
		var dk deviceKeys
		if err := json.Unmarshal(req.DeviceKeys, &dk); err != nil {
			return nil, httpapi.BadJSON("device_keys has the wrong shape")
		}
		if dk.UserID != userID || dk.DeviceID != deviceID {
			return nil, httpapi.InvalidParam("device_keys must be for your own user and device")
		}
		edKey := dk.Keys["ed25519:"+deviceID]
		if edKey == "" || dk.Keys["curve25519:"+deviceID] == "" || len(dk.Algorithms) == 0 {
			return nil, httpapi.BadJSON("device_keys needs algorithms and ed25519 and curve25519 keys named for the device")
		}
		if err := verify(userID, "ed25519:"+deviceID, edKey, req.DeviceKeys); err != nil {
			return nil, invalidSignature("device_keys are not signed by the device's ed25519 key")
		}
		up.deviceKeys, up.identity = req.DeviceKeys, dk.Keys
	}
	parse := func(m map[string]json.RawMessage) (map[keyRef]json.RawMessage, error) {
		out := map[keyRef]json.RawMessage{}
		for k, v := range m {
			alg, id, ok := strings.Cut(k, ":")
			if !ok || alg == "" || id == "" {
				return nil, httpapi.BadJSON("key ID %q is not algorithm:id", k)
			}
			if t := gjson.ParseBytes(v); !t.IsObject() && t.Type != gjson.String {
				return nil, httpapi.BadJSON("key %q must be a string or an object", k)
			}
			out[keyRef{alg, id}] = v
		}
		return out, nil
	}
	var err error
	if up.otks, err = parse(req.OneTimeKeys); err != nil {
		return nil, err
	}
	if up.fallbacks, err = parse(req.FallbackKeys); err != nil {
		return nil, err
	}
	return up, nil
}

// store writes validated keys for a device in the transaction q and reports
// whether its device keys are new (a device list change).
func (up *keyUpload) store(ctx context.Context, q Store, userID, deviceID string) (bool, error) {
	changed := false
	if up.deviceKeys != nil {
		old, err := q.DeviceKeys(ctx, userID, deviceID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			changed = true
		case err != nil:
			return false, err
		default:
			var prev deviceKeys
			_ = json.Unmarshal(old, &prev)
			for k, v := range up.identity {
				if prev.Keys[k] != v {
					return false, httpapi.InvalidParam("a device's identity keys cannot change; log in as a new device")
				}
			}
		}
		if err := q.SetDeviceKeys(ctx, userID, deviceID, up.deviceKeys); err != nil {
			return false, err
		}
		if changed {
			if err := q.AddDeviceListChange(ctx, userID); err != nil {
				return false, err
			}
		}
	}
	for k, v := range up.otks {
		err := q.AddOneTimeKey(ctx, userID, deviceID, k.alg, k.id, v)
		if errors.Is(err, storage.ErrConflict) {
			old, err := q.OneTimeKey(ctx, userID, deviceID, k.alg, k.id)
			if err != nil {
				return false, err
			}
			if !jsonEqual(old, v) {
				return false, httpapi.InvalidParam("one-time key %s:%s already exists with other content", k.alg, k.id)
			}
			continue
		}
		if err != nil {
			return false, err
		}
	}
	for k, v := range up.fallbacks {
		if err := q.SetFallbackKey(ctx, userID, deviceID, k.alg, k.id, v); err != nil {
			return false, err
		}
	}
	return changed, nil
}

// POST /_matrix/client/v3/keys/upload
func (s *Service) upload(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req uploadRequest
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	up, err := parseUpload(req, dev.UserID, dev.DeviceID)
	if err != nil {
		return httpapi.Fail(err)
	}
	ctx := r.Context()
	var counts map[string]int
	changed := false
	err = s.DB.Write(ctx, func(q Store) error {
		var err error
		if changed, err = up.store(ctx, q, dev.UserID, dev.DeviceID); err != nil {
			return err
		}
		counts, err = q.OneTimeKeyCounts(ctx, dev.UserID, dev.DeviceID)
		return err
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	if changed {
		s.WakeDeviceListChange(dev.UserID)
	}
	return httpapi.OK(map[string]any{"one_time_key_counts": counts})
}

func jsonEqual(a, b []byte) bool {
	ca, err1 := gomatrixserverlib.CanonicalJSON(a)
	cb, err2 := gomatrixserverlib.CanonicalJSON(b)
	return err1 == nil && err2 == nil && string(ca) == string(cb)
}

// withSignatures merges separately uploaded signatures into a key object.
func withSignatures(keyJSON []byte, sigs []storage.Signature, extraUnsigned map[string]any) (json.RawMessage, error) {
	var obj map[string]any
	if err := json.Unmarshal(keyJSON, &obj); err != nil {
		return nil, err
	}
	if len(sigs) > 0 {
		all, _ := obj["signatures"].(map[string]any)
		if all == nil {
			all = map[string]any{}
		}
		for _, s := range sigs {
			bySigner, _ := all[s.SignerUser].(map[string]any)
			if bySigner == nil {
				bySigner = map[string]any{}
				all[s.SignerUser] = bySigner
			}
			bySigner[s.SignerKey] = s.Signature
		}
		obj["signatures"] = all
	}
	if len(extraUnsigned) > 0 {
		u, _ := obj["unsigned"].(map[string]any)
		if u == nil {
			u = map[string]any{}
		}
		for k, v := range extraUnsigned {
			u[k] = v
		}
		obj["unsigned"] = u
	}
	return json.Marshal(obj)
}

// crossSigningPublicKey returns the one ed25519 public key of a
// cross-signing key object.
func crossSigningPublicKey(keyJSON []byte) string {
	for k, v := range gjson.GetBytes(keyJSON, "keys").Map() {
		if strings.HasPrefix(k, "ed25519:") {
			return v.Str
		}
	}
	return ""
}

// POST /_matrix/client/v3/keys/query
func (s *Service) query(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		DeviceKeys map[string][]string `json:"device_keys"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.DeviceKeys == nil {
		return httpapi.Fail(httpapi.MissingParam("device_keys is required"))
	}
	res := map[string]any{}
	deviceKeys := map[string]map[string]json.RawMessage{}
	master, selfSigning, userSigning := map[string]json.RawMessage{}, map[string]json.RawMessage{}, map[string]json.RawMessage{}
	ctx := r.Context()
	users := slices.Sorted(maps.Keys(req.DeviceKeys))
	// Three queries for all the users, in one snapshot.
	var entries []storage.DeviceKeysEntry
	var sigs []storage.Signature
	var cross map[string]map[string][]byte
	err := s.DB.Read(ctx, func(q Store) (err error) {
		if entries, err = q.DeviceKeysOf(ctx, users); err != nil {
			return err
		}
		if sigs, err = q.SignaturesOf(ctx, users); err != nil {
			return err
		}
		cross, err = q.CrossSigningKeysOf(ctx, users)
		return err
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	// Signatures by the user and key they are over.
	type target struct{ user, key string }
	sigsFor := map[target][]storage.Signature{}
	for _, sg := range sigs {
		t := target{sg.TargetUser, sg.TargetKey}
		sigsFor[t] = append(sigsFor[t], sg)
	}
	for _, userID := range users {
		deviceKeys[userID] = map[string]json.RawMessage{}
	}
	for _, e := range entries {
		if wanted := req.DeviceKeys[e.UserID]; len(wanted) > 0 && !slices.Contains(wanted, e.DeviceID) {
			continue
		}
		var extra map[string]any
		if e.DisplayName != "" {
			extra = map[string]any{"device_display_name": e.DisplayName}
		}
		k, err := withSignatures(e.Keys, sigsFor[target{e.UserID, e.DeviceID}], extra)
		if err != nil {
			return httpapi.Fail(err)
		}
		deviceKeys[e.UserID][e.DeviceID] = k
	}
	for userID, cs := range cross {
		for purpose, into := range map[string]map[string]json.RawMessage{"master": master, "self_signing": selfSigning, "user_signing": userSigning} {
			key, ok := cs[purpose]
			if !ok || (purpose == "user_signing" && userID != dev.UserID) {
				continue
			}
			k, err := withSignatures(key, sigsFor[target{userID, crossSigningPublicKey(key)}], nil)
			if err != nil {
				return httpapi.Fail(err)
			}
			into[userID] = k
		}
	}
	res["device_keys"], res["master_keys"], res["self_signing_keys"], res["user_signing_keys"] = deviceKeys, master, selfSigning, userSigning
	res["failures"] = map[string]any{}
	return httpapi.OK(res)
}

// POST /_matrix/client/v3/keys/claim
func (s *Service) claim(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.OneTimeKeys == nil {
		return httpapi.Fail(httpapi.MissingParam("one_time_keys is required"))
	}
	claimed, err := s.Claim(r.Context(), req.OneTimeKeys)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"one_time_keys": claimed, "failures": map[string]any{}})
}

// Claim takes one one-time key (or the fallback key) of each device asked
// for, of the algorithm asked for: user -> device -> "alg:keyID" -> key.
// A device with none is left out.
func (s *Service) Claim(ctx context.Context, want map[string]map[string]string) (map[string]map[string]map[string]json.RawMessage, error) {
	claimed := map[string]map[string]map[string]json.RawMessage{}
	// One transaction on the one write connection: concurrent claims are
	// serialised, and a key deleted by one is never seen by another.
	err := s.DB.Write(ctx, func(q Store) error {
		for userID, devices := range want {
			for deviceID, alg := range devices {
				keyID, key, err := q.ClaimKey(ctx, userID, deviceID, alg)
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if claimed[userID] == nil {
					claimed[userID] = map[string]map[string]json.RawMessage{}
				}
				claimed[userID][deviceID] = map[string]json.RawMessage{alg + ":" + keyID: key}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	users := make([]string, 0, len(claimed))
	for u := range claimed {
		users = append(users, u)
	}
	s.Notifier.Wake(users...) // their key counts fell
	return claimed, nil
}
