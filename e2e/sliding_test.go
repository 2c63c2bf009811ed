//go:build goolm

package e2e

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// slidingSync is one MSC4186 request from a crypto client, its to-device
// events handed to the client's Olm machine as a sync would hand them.
func (c *cryptoClient) slidingSync(t *testing.T, srv *ts.Server, pos string, body map[string]any) gjson.Result {
	t.Helper()
	path := "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync?timeout=2000"
	if pos != "" {
		path += "&pos=" + pos
	}
	res := srv.As(c.AccessToken).MustDo(t, "POST", path, body, 200)
	ctx := context.Background()
	for _, raw := range res.Get("extensions.to_device.events").Array() {
		var evt event.Event
		if err := json.Unmarshal([]byte(raw.Raw), &evt); err != nil {
			t.Fatal(err)
		}
		evt.Type.Class = event.ToDeviceEventType
		_ = evt.Content.ParseRaw(evt.Type)
		c.mach.HandleToDeviceEvent(ctx, &evt)
	}
	return res
}

// Sliding sync carries an encrypted conversation: the Megolm room key
// arrives through the to_device extension, the encrypted message through
// the room's timeline, and mautrix-go's Olm/Megolm decrypts it.
func TestEncryptedMessageOverSlidingSync(t *testing.T) {
	srv, alice, bob := aliceAndBob(t)
	room := newEncryptedRoom(t, alice, bob)
	body := map[string]any{
		"lists":      map[string]any{"all": map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 5, "required_state": [][]string{{"m.room.encryption", ""}}}},
		"extensions": map[string]any{"to_device": map[string]any{"enabled": true}, "e2ee": map[string]any{"enabled": true}},
	}
	first := bob.slidingSync(t, srv, "", body)
	if !first.Get("rooms." + ts.Esc(string(room)) + `.required_state.#(type=="m.room.encryption")`).Exists() {
		t.Fatalf("encrypted room not listed: %s", first.Raw)
	}
	pos := first.Get("pos").Str

	secret := "sliding into encrypted DMs"
	sent := alice.sendEncrypted(t, room, secret)
	var evt *event.Event
	for range 5 {
		res := bob.slidingSync(t, srv, pos, body)
		pos = res.Get("pos").Str
		for _, raw := range res.Get("rooms." + ts.Esc(string(room)) + ".timeline").Array() {
			if raw.Get("event_id").Str == string(sent) {
				evt = &event.Event{}
				if err := json.Unmarshal([]byte(raw.Raw), evt); err != nil {
					t.Fatal(err)
				}
			}
		}
		if evt != nil {
			break
		}
	}
	if evt == nil {
		t.Fatal("the encrypted message never arrived through sliding sync")
	}
	evt.RoomID = id.RoomID(room)
	evt.Type.Class = event.MessageEventType
	if err := evt.Content.ParseRaw(evt.Type); err != nil {
		t.Fatal(err)
	}
	dec, err := bob.mach.DecryptMegolmEvent(context.Background(), evt)
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	if got := gjson.GetBytes(dec.Content.VeryRaw, "body").Str; got != secret {
		t.Fatalf("decrypted %q", got)
	}
}
