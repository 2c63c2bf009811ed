//go:build goolm

package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// cryptoClient is a mautrix-go client with its own Olm/Megolm machine
// (pure-Go goolm), in-memory stores, and a sync loop driven by the test.
type cryptoClient struct {
	*mautrix.Client
	mach  *crypto.OlmMachine
	state *mautrix.MemoryStateStore
	since string
	// timeline collects the encrypted events seen, by event ID.
	timeline map[id.EventID]*event.Event
}

// login logs an existing user in as a new device with a fresh machine,
// uploading its device keys and one-time keys.
func login(t *testing.T, srv *ts.Server, name string) *cryptoClient {
	t.Helper()
	ctx := context.Background()
	c, err := mautrix.NewClient(srv.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(ctx, &mautrix.ReqLogin{
		Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: name},
		Password: ts.Password(name), StoreCredentials: true,
	}); err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	state := mautrix.NewMemoryStateStore().(*mautrix.MemoryStateStore)
	c.StateStore = state
	mach := crypto.NewOlmMachine(c, nil, crypto.NewMemoryStore(nil), state)
	if err := mach.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mach.ShareKeys(ctx, -1); err != nil {
		t.Fatalf("upload keys for %s: %v", name, err)
	}
	cc := &cryptoClient{Client: c, mach: mach, state: state, timeline: map[id.EventID]*event.Event{}}
	cc.sync(t)
	return cc
}

// sync runs one sync and feeds it to the state store and the machine, the
// way mautrix's own syncer does.
func (c *cryptoClient) sync(t *testing.T) *mautrix.RespSync {
	t.Helper()
	ctx := context.Background()
	resp, err := c.FullSyncRequest(ctx, mautrix.ReqSync{Since: c.since, Timeout: 0})
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	for roomID, room := range resp.Rooms.Join {
		for _, list := range [][]*event.Event{room.State.Events, room.Timeline.Events} {
			for _, evt := range list {
				evt.RoomID = roomID
				if evt.StateKey != nil {
					evt.Type.Class = event.StateEventType
				} else {
					evt.Type.Class = event.MessageEventType
				}
				_ = evt.Content.ParseRaw(evt.Type)
				if evt.StateKey != nil {
					mautrix.UpdateStateStore(ctx, c.state, evt)
				}
				if evt.Type == event.EventEncrypted {
					c.timeline[evt.ID] = evt
				}
			}
		}
	}
	c.mach.ProcessSyncResponse(ctx, resp, c.since)
	c.since = resp.NextBatch
	return resp
}

// sendEncrypted shares the room's Megolm session with every member's
// devices and sends an encrypted text message.
func (c *cryptoClient) sendEncrypted(t *testing.T, roomID id.RoomID, text string) id.EventID {
	t.Helper()
	return c.sendEncryptedContent(t, roomID, &event.MessageEventContent{MsgType: event.MsgText, Body: text})
}

// sendEncryptedContent sends any m.room.message content encrypted.
func (c *cryptoClient) sendEncryptedContent(t *testing.T, roomID id.RoomID, content *event.MessageEventContent) id.EventID {
	t.Helper()
	ctx := context.Background()
	members, err := c.JoinedMembers(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	var users []id.UserID
	for u := range members.Joined {
		users = append(users, u)
	}
	if err := c.mach.ShareGroupSession(ctx, roomID, users); err != nil {
		t.Fatalf("share group session: %v", err)
	}
	enc, err := c.mach.EncryptMegolmEvent(ctx, roomID, event.EventMessage, content)
	if err != nil {
		t.Fatalf("encrypt: %v", err)
	}
	resp, err := c.SendMessageEvent(ctx, roomID, event.EventEncrypted, enc)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return resp.EventID
}

// decrypt syncs until the event has arrived, then decrypts its body.
func (c *cryptoClient) decrypt(t *testing.T, eventID id.EventID) string {
	t.Helper()
	return gjson.GetBytes(c.decryptEvent(t, eventID).Content.VeryRaw, "body").Str
}

// decryptEvent syncs until the event has arrived, then decrypts it.
func (c *cryptoClient) decryptEvent(t *testing.T, eventID id.EventID) *event.Event {
	t.Helper()
	for range 5 {
		if _, ok := c.timeline[eventID]; ok {
			break
		}
		c.sync(t)
	}
	evt, ok := c.timeline[eventID]
	if !ok {
		t.Fatalf("%s never arrived", eventID)
	}
	dec, err := c.mach.DecryptMegolmEvent(context.Background(), evt)
	if err != nil {
		t.Fatalf("%s cannot decrypt %s: %v", c.UserID, eventID, err)
	}
	return dec
}

// aliceAndBob starts a server with two users, each logged in with a machine.
func aliceAndBob(t *testing.T) (*ts.Server, *cryptoClient, *cryptoClient) {
	t.Helper()
	srv := ts.Start(t)
	srv.Register(t, "alice")
	srv.Register(t, "bob")
	return srv, login(t, srv, "alice"), login(t, srv, "bob")
}

func newEncryptedRoom(t *testing.T, owner *cryptoClient, invite ...*cryptoClient) id.RoomID {
	t.Helper()
	ctx := context.Background()
	var ids []id.UserID
	for _, c := range invite {
		ids = append(ids, c.UserID)
	}
	resp, err := owner.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "private_chat", Invite: ids,
		InitialState: []*event.Event{{Type: event.StateEncryption, Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range invite {
		if _, err := c.JoinRoomByID(ctx, resp.RoomID); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range append([]*cryptoClient{owner}, invite...) {
		c.sync(t)
	}
	return resp.RoomID
}

// (a) Two users in an encrypted room: each decrypts the other's exact
// plaintext; the server only ever holds ciphertext.
func TestEncryptedConversation(t *testing.T) {
	srv, alice, bob := aliceAndBob(t)
	room := newEncryptedRoom(t, alice, bob)

	secret := "the eagle lands at midnight"
	id1 := alice.sendEncrypted(t, room, secret)
	if got := bob.decrypt(t, id1); got != secret {
		t.Fatalf("bob decrypted %q", got)
	}
	reply := "understood, bringing the cake"
	id2 := bob.sendEncrypted(t, room, reply)
	if got := alice.decrypt(t, id2); got != reply {
		t.Fatalf("alice decrypted %q", got)
	}
	// The plaintext never reached the server.
	srv.Stop()
	for _, f := range []string{srv.Cfg.Database, srv.Cfg.Database + "-wal"} {
		if ts.FileContains(t, f, secret) || ts.FileContains(t, f, reply) {
			t.Fatalf("%s holds plaintext", f)
		}
	}
}

// (b) A user logs in a second device; a later message is decryptable there.
func TestSecondDevice(t *testing.T) {
	srv, alice, bob := aliceAndBob(t)
	room := newEncryptedRoom(t, alice, bob)
	first := alice.sendEncrypted(t, room, "before the new device")
	if got := bob.decrypt(t, first); got != "before the new device" {
		t.Fatalf("bob decrypted %q", got)
	}

	bob2 := login(t, srv, "bob")
	// Alice learns of the new device through device_lists.changed.
	resp := alice.sync(t)
	found := false
	for _, u := range resp.DeviceLists.Changed {
		found = found || u == bob.UserID
	}
	if !found {
		t.Fatalf("alice's sync did not report bob's new device: %+v", resp.DeviceLists)
	}
	later := alice.sendEncrypted(t, room, "for both of bob's devices")
	if got := bob2.decrypt(t, later); got != "for both of bob's devices" {
		t.Fatalf("bob's second device decrypted %q", got)
	}
	if got := bob.decrypt(t, later); got != "for both of bob's devices" {
		t.Fatalf("bob's first device decrypted %q", got)
	}
}

// (c) Cross-signing: Alice bootstraps it; Bob's key query returns her master
// and self-signing keys, and her device carries a valid signature by the
// self-signing key, itself signed by the master key.
func TestCrossSigning(t *testing.T) {
	ctx := context.Background()
	_, alice, bob := aliceAndBob(t)
	newEncryptedRoom(t, alice, bob)

	keys, err := alice.mach.GenerateCrossSigningKeys()
	if err != nil {
		t.Fatal(err)
	}
	uia := func(ui *mautrix.RespUserInteractive) any {
		return map[string]any{"type": "m.login.password", "session": ui.Session, "password": ts.Password("alice"),
			"identifier": map[string]any{"type": "m.id.user", "user": "alice"}}
	}
	if err := alice.mach.PublishCrossSigningKeys(ctx, keys, uia); err != nil {
		t.Fatalf("publish cross-signing keys: %v", err)
	}
	if err := alice.mach.SignOwnDevice(ctx, alice.mach.OwnIdentity()); err != nil {
		t.Fatalf("sign own device: %v", err)
	}
	if err := alice.mach.SignOwnMasterKey(ctx); err != nil {
		t.Fatalf("sign own master key: %v", err)
	}

	res, err := bob.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.UserID: {}}})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(res)
	r := gjson.ParseBytes(raw)
	u := ts.Esc(alice.UserID.String())
	master := r.Get("master_keys." + u)
	selfSigning := r.Get("self_signing_keys." + u)
	if !master.Exists() || !selfSigning.Exists() {
		t.Fatalf("keys query lacks cross-signing keys: %s", raw)
	}
	if r.Get("user_signing_keys." + u).Exists() {
		t.Fatal("another user's user-signing key was revealed")
	}
	masterPub := keys.MasterKey.PublicKey().String()
	sskPub := keys.SelfSigningKey.PublicKey().String()
	checkSig(t, selfSigning.Raw, alice.UserID.String(), "ed25519:"+masterPub, masterPub)
	device := r.Get("device_keys." + u + "." + ts.Esc(alice.DeviceID.String()))
	checkSig(t, device.Raw, alice.UserID.String(), "ed25519:"+sskPub, sskPub)
	// And bob's machine, fetching the same, sees alice's device as cross-signed.
	devices, err := bob.mach.FetchKeys(ctx, []id.UserID{alice.UserID}, true)
	if err != nil {
		t.Fatal(err)
	}
	if dev := devices[alice.UserID][alice.DeviceID]; dev == nil {
		t.Fatal("bob's machine did not fetch alice's device")
	}
	csKeys, err := bob.mach.GetCrossSigningPublicKeys(ctx, alice.UserID)
	if err != nil || csKeys == nil || csKeys.MasterKey.String() != masterPub {
		t.Fatalf("bob's view of alice's master key: %+v %v", csKeys, err)
	}
}

func checkSig(t *testing.T, object, signer, keyID, pub string) {
	t.Helper()
	key, err := base64.RawStdEncoding.DecodeString(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := gomatrixserverlib.VerifyJSON(signer, gomatrixserverlib.KeyID(keyID), key, []byte(object)); err != nil {
		t.Fatalf("signature by %s over %s: %v", keyID, object, err)
	}
}

// (d) Alice backs up her room keys; a brand-new device of hers restores
// the backup and decrypts earlier history.
func TestKeyBackupRestore(t *testing.T) {
	ctx := context.Background()
	srv, alice, bob := aliceAndBob(t)
	room := newEncryptedRoom(t, alice, bob)
	history := bob.sendEncrypted(t, room, "history worth keeping")
	if got := alice.decrypt(t, history); got != "history worth keeping" {
		t.Fatalf("alice decrypted %q", got)
	}

	backupKey, err := backup.NewMegolmBackupKey()
	if err != nil {
		t.Fatal(err)
	}
	created, err := alice.CreateKeyBackupVersion(ctx, &mautrix.ReqRoomKeysVersionCreate[backup.MegolmAuthData]{
		Algorithm: id.KeyBackupAlgorithmMegolmBackupV1,
		AuthData:  backup.MegolmAuthData{PublicKey: id.Ed25519(base64.RawStdEncoding.EncodeToString(backupKey.PublicKey().Bytes()))},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Back up the session the history was encrypted with.
	var content event.EncryptedEventContent
	if err := json.Unmarshal(alice.timeline[history].Content.VeryRaw, &content); err != nil {
		t.Fatal(err)
	}
	igs, err := alice.mach.CryptoStore.GetGroupSession(ctx, room, content.SessionID)
	if err != nil || igs == nil {
		t.Fatalf("alice has no session to back up: %v", err)
	}
	sessionKey, err := igs.Internal.Export(igs.Internal.FirstKnownIndex())
	if err != nil {
		t.Fatal(err)
	}
	encrypted, err := backup.EncryptSessionData(backupKey, backup.MegolmSessionData{
		Algorithm: id.AlgorithmMegolmV1, ForwardingKeyChain: []string{}, SenderKey: igs.SenderKey,
		SenderClaimedKeys: backup.SenderClaimedKeys{Ed25519: igs.SigningKey}, SessionKey: string(sessionKey),
	})
	if err != nil {
		t.Fatal(err)
	}
	sessionData, _ := json.Marshal(encrypted)
	put, err := alice.PutKeysInBackup(ctx, created.Version, &mautrix.ReqKeyBackup{Rooms: map[id.RoomID]mautrix.ReqRoomKeyBackup{
		room: {Sessions: map[id.SessionID]mautrix.ReqKeyBackupData{content.SessionID: {
			FirstMessageIndex: int(igs.Internal.FirstKnownIndex()), IsVerified: true, SessionData: sessionData}}},
	}})
	if err != nil || put.Count != 1 {
		t.Fatalf("backup upload: %+v %v", put, err)
	}

	// A brand-new device has no session for the history until it restores.
	fresh := login(t, srv, "alice")
	if _, err := fresh.GetEvent(ctx, room, history); err != nil {
		t.Fatal(err)
	}
	version, err := fresh.mach.DownloadAndStoreLatestKeyBackup(ctx, backupKey)
	if err != nil || version != created.Version {
		t.Fatalf("restore: version %q, %v", version, err)
	}
	evt, err := fresh.GetEvent(ctx, room, history)
	if err != nil {
		t.Fatal(err)
	}
	evt.Type.Class = event.MessageEventType
	_ = evt.Content.ParseRaw(evt.Type)
	dec, err := fresh.mach.DecryptMegolmEvent(ctx, evt)
	if err != nil {
		t.Fatalf("new device cannot decrypt history after restore: %v", err)
	}
	if got := gjson.GetBytes(dec.Content.VeryRaw, "body").Str; got != "history worth keeping" {
		t.Fatalf("restored history reads %q", got)
	}
}
