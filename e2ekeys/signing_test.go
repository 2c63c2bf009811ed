package e2ekeys_test

import (
	"testing"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

func crossKey(userID, purpose string, k keypair) map[string]any {
	return map[string]any{"user_id": userID, "usage": []string{purpose}, "keys": map[string]string{"ed25519:" + k.pub: k.pub}}
}

func TestCrossSigningUpload(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	master, ssk, usk := newKey(t), newKey(t), newKey(t)
	path := v3 + "/keys/device_signing/upload"
	masterJSON := crossKey(alice.UserID, "master", master)
	sskJSON := sign(t, crossKey(alice.UserID, "self_signing", ssk), alice.UserID, "ed25519:"+master.pub, master)
	uskJSON := sign(t, crossKey(alice.UserID, "user_signing", usk), alice.UserID, "ed25519:"+master.pub, master)

	for _, tc := range []struct {
		name    string
		body    map[string]any
		errcode string
	}{
		{"other user's key", map[string]any{"master_key": crossKey(bob.UserID, "master", master)}, "M_INVALID_PARAM"},
		{"wrong usage", map[string]any{"master_key": crossKey(alice.UserID, "self_signing", master)}, "M_INVALID_PARAM"},
		{"self-signing unsigned", map[string]any{"master_key": masterJSON, "self_signing_key": crossKey(alice.UserID, "self_signing", ssk)}, "M_INVALID_SIGNATURE"},
		{"self-signing signed by another key", map[string]any{"master_key": masterJSON,
			"self_signing_key": sign(t, crossKey(alice.UserID, "self_signing", ssk), alice.UserID, "ed25519:"+master.pub, newKey(t))}, "M_INVALID_SIGNATURE"},
		{"no master", map[string]any{"self_signing_key": sskJSON}, "M_MISSING_PARAM"},
		{"nothing", map[string]any{}, "M_MISSING_PARAM"},
	} {
		t.Run(tc.name, func(t *testing.T) { alice.MustFail(t, "POST", path, tc.body, 400, tc.errcode) })
	}
	// The first upload needs no password.
	alice.MustDo(t, "POST", path, map[string]any{"master_key": masterJSON, "self_signing_key": sskJSON, "user_signing_key": uskJSON}, 200)
	q := bob.MustDo(t, "POST", v3+"/keys/query", map[string]any{"device_keys": map[string]any{alice.UserID: []string{}}}, 200)
	if q.Get("master_keys."+ts.Esc(alice.UserID)+".keys.ed25519:"+master.pub).Str != master.pub || !q.Get("self_signing_keys."+ts.Esc(alice.UserID)).Exists() ||
		q.Get("user_signing_keys."+ts.Esc(alice.UserID)).Exists() {
		t.Fatalf("query: %s", q.Raw)
	}
	own := alice.MustDo(t, "POST", v3+"/keys/query", map[string]any{"device_keys": map[string]any{alice.UserID: []string{}}}, 200)
	if !own.Get("user_signing_keys." + ts.Esc(alice.UserID)).Exists() {
		t.Fatal("own user-signing key not returned")
	}
	// Uploading the same keys again needs no password either (MSC3967: a
	// client retrying its first upload).
	alice.MustDo(t, "POST", path, map[string]any{"master_key": masterJSON, "self_signing_key": sskJSON}, 200)
	// Replacing keys needs the password.
	newMaster := newKey(t)
	ch := alice.MustDo(t, "POST", path, map[string]any{"master_key": crossKey(alice.UserID, "master", newMaster)}, 401)
	if ch.Get("flows.0.stages.0").Str != "m.login.password" {
		t.Fatalf("replacement without auth: %s", ch.Raw)
	}
	alice.MustDo(t, "POST", path, map[string]any{"master_key": crossKey(alice.UserID, "master", newMaster),
		"auth": ts.PasswordAuth("alice")}, 200)
}

func TestSignatureUpload(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	dk, devKey := deviceKeys(t, alice)
	alice.MustDo(t, "POST", v3+"/keys/upload", map[string]any{"device_keys": dk}, 200)
	master, ssk, usk := newKey(t), newKey(t), newKey(t)
	alice.MustDo(t, "POST", v3+"/keys/device_signing/upload", map[string]any{
		"master_key":       crossKey(alice.UserID, "master", master),
		"self_signing_key": sign(t, crossKey(alice.UserID, "self_signing", ssk), alice.UserID, "ed25519:"+master.pub, master),
		"user_signing_key": sign(t, crossKey(alice.UserID, "user_signing", usk), alice.UserID, "ed25519:"+master.pub, master),
	}, 200)
	bobMaster := newKey(t)
	bob.MustDo(t, "POST", v3+"/keys/device_signing/upload", map[string]any{"master_key": crossKey(bob.UserID, "master", bobMaster)}, 200)

	var device map[string]any
	mustUnmarshal(t, dk, &device)
	delete(device, "signatures")
	signedDevice := sign(t, device, alice.UserID, "ed25519:"+ssk.pub, ssk)
	signedMaster := sign(t, crossKey(alice.UserID, "master", master), alice.UserID, "ed25519:"+alice.DeviceID, devKey)
	signedBob := sign(t, crossKey(bob.UserID, "master", bobMaster), alice.UserID, "ed25519:"+usk.pub, usk)
	forgedDevice := sign(t, device, alice.UserID, "ed25519:"+ssk.pub, newKey(t))
	res := alice.MustDo(t, "POST", v3+"/keys/signatures/upload", map[string]any{
		alice.UserID: map[string]any{alice.DeviceID: signedDevice, master.pub: signedMaster, "NOPE": signedDevice},
		bob.UserID:   map[string]any{bobMaster.pub: signedBob},
	}, 200)
	if len(res.Get("failures."+ts.Esc(alice.UserID)).Map()) != 1 || !res.Get("failures."+ts.Esc(alice.UserID)+".NOPE").Exists() {
		t.Fatalf("failures: %s", res.Raw)
	}
	bad := alice.MustDo(t, "POST", v3+"/keys/signatures/upload", map[string]any{alice.UserID: map[string]any{alice.DeviceID: forgedDevice}}, 200)
	if bad.Get("failures."+ts.Esc(alice.UserID)+"."+alice.DeviceID+".errcode").Str != "M_INVALID_SIGNATURE" {
		t.Fatalf("forged signature accepted: %s", bad.Raw)
	}
	// Signing a key that differs from the stored one is refused.
	device["keys"] = map[string]string{"ed25519:" + alice.DeviceID: newKey(t).pub}
	swapped := alice.MustDo(t, "POST", v3+"/keys/signatures/upload", map[string]any{alice.UserID: map[string]any{alice.DeviceID: sign(t, device, alice.UserID, "ed25519:"+ssk.pub, ssk)}}, 200)
	if !swapped.Get("failures." + ts.Esc(alice.UserID) + "." + alice.DeviceID).Exists() {
		t.Fatalf("signature over other keys accepted: %s", swapped.Raw)
	}
	// The accepted signatures are merged into queries.
	q := bob.MustDo(t, "POST", v3+"/keys/query", map[string]any{"device_keys": map[string]any{alice.UserID: []string{}, bob.UserID: []string{}}}, 200)
	if q.Get("device_keys."+ts.Esc(alice.UserID)+"."+alice.DeviceID+".signatures."+ts.Esc(alice.UserID)+".ed25519:"+ssk.pub).Str == "" {
		t.Fatalf("device signature not merged: %s", q.Get("device_keys").Raw)
	}
	if q.Get("master_keys."+ts.Esc(alice.UserID)+".signatures."+ts.Esc(alice.UserID)+".ed25519:"+alice.DeviceID).Str == "" {
		t.Fatalf("master signature not merged: %s", q.Get("master_keys").Raw)
	}
	if q.Get("master_keys."+ts.Esc(bob.UserID)+".signatures."+ts.Esc(alice.UserID)+".ed25519:"+usk.pub).Str == "" {
		t.Fatalf("user-signing signature not merged: %s", q.Get("master_keys").Raw)
	}
	alice.MustFail(t, "POST", v3+"/keys/signatures/upload", `[]`, 400, "M_BAD_JSON")
}
