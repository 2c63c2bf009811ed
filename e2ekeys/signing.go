package e2ekeys

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/auth"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// crossSigningKey is the part of a cross-signing key the server checks.
type crossSigningKey struct {
	UserID string            `json:"user_id"`
	Usage  []string          `json:"usage"`
	Keys   map[string]string `json:"keys"`
}

// checkCrossSigningKey validates a key for a purpose and returns its public key.
func checkCrossSigningKey(raw json.RawMessage, userID, purpose string) (string, error) {
	var k crossSigningKey
	if err := json.Unmarshal(raw, &k); err != nil {
		return "", httpapi.BadJSON("%s_key has the wrong shape", purpose)
	}
	if k.UserID != userID {
		return "", httpapi.InvalidParam("%s_key is for another user", purpose)
	}
	if !slices.Contains(k.Usage, purpose) {
		return "", httpapi.InvalidParam("%s_key's usage must include %s", purpose, purpose)
	}
	if len(k.Keys) != 1 {
		return "", httpapi.InvalidParam("%s_key must have exactly one key", purpose)
	}
	for id, pub := range k.Keys {
		if !strings.HasPrefix(id, "ed25519:") || id != "ed25519:"+pub {
			return "", httpapi.InvalidParam("%s_key must be one ed25519 key named for itself", purpose)
		}
		if _, ok := decodeEd25519(pub); !ok {
			return "", httpapi.InvalidParam("%s_key is not an ed25519 public key", purpose)
		}
		return pub, nil
	}
	return "", nil
}

// POST /_matrix/client/v3/keys/device_signing/upload
func (s *Service) uploadCrossSigning(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		Master      json.RawMessage `json:"master_key"`
		SelfSigning json.RawMessage `json:"self_signing_key"`
		UserSigning json.RawMessage `json:"user_signing_key"`
		Auth        *auth.AuthDict  `json:"auth"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	ctx := r.Context()
	existing, err := s.DB.R().CrossSigningKeys(ctx, dev.UserID)
	if err != nil {
		return httpapi.Fail(err)
	}
	// The first upload needs no further authentication, as the spec allows
	// (MSC3967), and neither does uploading the same keys again; replacing
	// or adding keys does.
	if len(existing) > 0 && !alreadyStored(existing, map[string]json.RawMessage{
		"master": req.Master, "self_signing": req.SelfSigning, "user_signing": req.UserSigning}) {
		if err := s.Auth.RequireUser(ctx, dev.UserID, "reset your cross-signing keys (your encryption identity)", req.Auth); err != nil {
			return httpapi.Fail(err)
		}
	}
	masterJSON := req.Master
	if len(masterJSON) == 0 {
		masterJSON = existing["master"]
		if masterJSON == nil && (len(req.SelfSigning) > 0 || len(req.UserSigning) > 0) {
			return httpapi.Fail(httpapi.MissingParam("master_key is required before other cross-signing keys"))
		}
	}
	keys := map[string]json.RawMessage{}
	var masterPub string
	if len(masterJSON) > 0 {
		if masterPub, err = checkCrossSigningKey(masterJSON, dev.UserID, "master"); err != nil {
			return httpapi.Fail(err)
		}
		if len(req.Master) > 0 {
			keys["master"] = req.Master
		}
	}
	for purpose, raw := range map[string]json.RawMessage{"self_signing": req.SelfSigning, "user_signing": req.UserSigning} {
		if len(raw) == 0 {
			continue
		}
		if _, err := checkCrossSigningKey(raw, dev.UserID, purpose); err != nil {
			return httpapi.Fail(err)
		}
		if err := verify(dev.UserID, "ed25519:"+masterPub, masterPub, raw); err != nil {
			return httpapi.Fail(invalidSignature(purpose + "_key is not signed by the master key"))
		}
		keys[purpose] = raw
	}
	if len(keys) == 0 {
		return httpapi.Fail(httpapi.MissingParam("no keys to upload"))
	}
	err = s.DB.Write(ctx, func(q Store) error {
		for purpose, raw := range keys {
			if err := q.SetCrossSigningKey(ctx, dev.UserID, purpose, raw); err != nil {
				return err
			}
		}
		return q.AddDeviceListChange(ctx, dev.UserID)
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	s.WakeDeviceListChange(dev.UserID)
	return httpapi.OK(httpapi.Empty)
}

type failure struct {
	ErrCode string `json:"errcode"`
	Error   string `json:"error"`
}

// POST /_matrix/client/v3/keys/signatures/upload
//
// Each object is a key of the caller's (a device signed by their
// self-signing key, their master key signed by one of their devices) or
// another user's master key signed by the caller's user-signing key. Every
// signature is verified; the ones that fail are reported per key.
func (s *Service) uploadSignatures(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req map[string]map[string]json.RawMessage
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	ctx := r.Context()
	failures := map[string]map[string]failure{}
	fail := func(user, key, code, msg string) {
		if failures[user] == nil {
			failures[user] = map[string]failure{}
		}
		failures[user][key] = failure{code, msg}
	}
	var accepted []storage.Signature
	touched := map[string]bool{}
	err := s.DB.Read(ctx, func(q Store) error {
		mine, err := q.CrossSigningKeys(ctx, dev.UserID)
		if err != nil {
			return err
		}
		for targetUser, objects := range req {
			theirs, err := q.CrossSigningKeys(ctx, targetUser)
			if err != nil {
				return err
			}
			for keyID, obj := range objects {
				stored, signerKey, signerPub, err := s.signable(ctx, q, dev, targetUser, keyID, mine, theirs)
				if err != nil {
					var he *httpapi.Error
					if errors.As(err, &he) {
						fail(targetUser, keyID, string(he.Code), he.Message)
						continue
					}
					return err
				}
				// The signed object must be the stored key, not another.
				if !sameKeys(stored, obj) {
					fail(targetUser, keyID, "M_INVALID_SIGNATURE", "the signed object does not match the stored key")
					continue
				}
				sig := gjson.GetBytes(obj, "signatures."+gjsonKey(dev.UserID)+"."+gjsonKey(signerKey)).Str
				if sig == "" {
					fail(targetUser, keyID, "M_INVALID_SIGNATURE", "no signature by "+signerKey)
					continue
				}
				if err := verify(dev.UserID, signerKey, signerPub, obj); err != nil {
					fail(targetUser, keyID, "M_INVALID_SIGNATURE", "invalid signature")
					continue
				}
				accepted = append(accepted, storage.Signature{TargetUser: targetUser, TargetKey: keyID,
					SignerUser: dev.UserID, SignerKey: signerKey, Signature: sig})
				touched[targetUser] = true
			}
		}
		return nil
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	if len(accepted) > 0 {
		err = s.DB.Write(ctx, func(q Store) error {
			for _, sig := range accepted {
				if err := q.AddSignature(ctx, sig); err != nil {
					return err
				}
			}
			for u := range touched {
				if err := q.AddDeviceListChange(ctx, u); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return httpapi.Fail(err)
		}
		for u := range touched {
			s.WakeDeviceListChange(u)
		}
	}
	return httpapi.OK(map[string]any{"failures": failures})
}

// signable finds the stored key a signature upload targets and the key the
// caller must have signed it with.
func (s *Service) signable(ctx context.Context, q Store, dev *httpapi.Device, targetUser, keyID string,
	mine, theirs map[string][]byte) (stored []byte, signerKey, signerPub string, err error) {
	notFound := &httpapi.Error{Code: "M_NOT_FOUND", Message: "unknown key " + keyID}
	if targetUser == dev.UserID {
		if master := mine["master"]; master != nil && crossSigningPublicKey(master) == keyID {
			// Our master key, signed by the device making the request.
			devKeys, err := q.DeviceKeys(ctx, dev.UserID, dev.DeviceID)
			if errors.Is(err, storage.ErrNotFound) {
				return nil, "", "", &httpapi.Error{Code: "M_INVALID_SIGNATURE", Message: "upload your device keys first"}
			}
			if err != nil {
				return nil, "", "", err
			}
			id := "ed25519:" + dev.DeviceID
			return master, id, gjson.GetBytes(devKeys, "keys."+gjsonKey(id)).Str, nil
		}
		devKeys, err := q.DeviceKeys(ctx, dev.UserID, keyID)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, "", "", notFound
		}
		if err != nil {
			return nil, "", "", err
		}
		ssk := mine["self_signing"]
		if ssk == nil {
			return nil, "", "", &httpapi.Error{Code: "M_INVALID_SIGNATURE", Message: "you have no self-signing key"}
		}
		pub := crossSigningPublicKey(ssk)
		return devKeys, "ed25519:" + pub, pub, nil
	}
	master := theirs["master"]
	if master == nil || crossSigningPublicKey(master) != keyID {
		return nil, "", "", notFound
	}
	usk := mine["user_signing"]
	if usk == nil {
		return nil, "", "", &httpapi.Error{Code: "M_INVALID_SIGNATURE", Message: "you have no user-signing key"}
	}
	pub := crossSigningPublicKey(usk)
	return master, "ed25519:" + pub, pub, nil
}

// sameKeys reports whether a signed object carries the same keys as the stored one.
func sameKeys(stored, signed []byte) bool {
	return jsonEqual([]byte(gjson.GetBytes(stored, "keys").Raw), []byte(gjson.GetBytes(signed, "keys").Raw)) &&
		gjson.GetBytes(stored, "user_id").Str == gjson.GetBytes(signed, "user_id").Str
}

func gjsonKey(s string) string {
	return strings.NewReplacer(`\`, `\\`, ".", `\.`, "*", `\*`, "?", `\?`, "#", `\#`, "|", `\|`, "@", `\@`).Replace(s)
}

// alreadyStored reports whether every key of an upload is stored as it is.
func alreadyStored(existing map[string][]byte, upload map[string]json.RawMessage) bool {
	for purpose, raw := range upload {
		if len(raw) > 0 && !jsonEqual(raw, existing[purpose]) {
			return false
		}
	}
	return true
}
