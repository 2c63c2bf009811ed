package rooms

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// signMessage writes, in every room version, the bytes and the event ID
// that gomatrixserverlib's builder makes of the same message, and leaves to
// the builder what it cannot write so.
func TestSignMessageAsBuilderDoes(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(bytes.NewReader(make([]byte, 64)))
	now := time.UnixMilli(1_765_000_000_123)
	contents := []string{
		`{}`,
		`{"msgtype":"m.text","body":"hi"}`,
		"{ \"z\" : [1, -2, {\"b\":null,\"a\":true}],\n \"a\": \"<b>&amp;</b> \\u00e9 \\ud83d\\ude00 \\\" \\\\ \\n \\u0001 \\/\" }",
		`{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"AwgAEn` + string(bytes.Repeat([]byte("x"), 2000)) + `","device_id":"D","sender_key":"k","session_id":"s"}`,
		`{"m.relates_to":{"rel_type":"m.annotation","event_id":"$abc","key":"👍"}}`,
		`{"n":9007199254740991,"m":-9007199254740991,"e":""}`,
	}
	stateKey := ""
	type variant struct {
		name   string
		change func(*gomatrixserverlib.EventBuilder)
		signed bool // by signMessage rather than left to the builder, where the builder accepts it
	}
	variants := []variant{
		{"message", func(*gomatrixserverlib.EventBuilder) {}, true},
		{"encrypted", func(eb *gomatrixserverlib.EventBuilder) { eb.Type = "m.room.encrypted" }, true},
		{"reaction", func(eb *gomatrixserverlib.EventBuilder) { eb.Type = "m.reaction" }, true},
		{"custom type", func(eb *gomatrixserverlib.EventBuilder) { eb.Type = "org.example.x-y_z" }, true},
		{"type json.Marshal escapes", func(eb *gomatrixserverlib.EventBuilder) { eb.Type = "a<b>&c/d'e" }, true},
		{"no auth events", func(eb *gomatrixserverlib.EventBuilder) { eb.AuthEvents = []string{} }, true},
		{"type kept by redaction", func(eb *gomatrixserverlib.EventBuilder) { eb.Type = "m.room.power_levels" }, false},
		{"type needing escapes", func(eb *gomatrixserverlib.EventBuilder) { eb.Type = "a \"b\" é" }, false},
		{"state event", func(eb *gomatrixserverlib.EventBuilder) { eb.StateKey = &stateKey; eb.Type = "org.example.s" }, false},
		{"redaction", func(eb *gomatrixserverlib.EventBuilder) { eb.Type = "m.room.redaction"; eb.Redacts = "$x" }, false},
		{"number only some versions allow", func(eb *gomatrixserverlib.EventBuilder) { eb.Content = spec.RawJSON(`{"n":1.5}`) }, true},
	}
	for version, verImpl := range gomatrixserverlib.RoomVersions() {
		for _, v := range variants {
			for _, c := range contents {
				proto := &gomatrixserverlib.ProtoEvent{
					SenderID:   "@alice:hs1",
					RoomID:     "!room:hs1",
					Type:       "m.room.message",
					PrevEvents: []string{"$prev"},
					Depth:      42,
					Content:    spec.RawJSON(c),
					Version:    verImpl,
				}
				eb := verImpl.NewEventBuilderFromProtoEvent(proto)
				eb.AuthEvents = []string{"$create", "$power", "$member"}
				v.change(eb)
				want, wantErr := eb.Build(now, "hs1", "ed25519:a_1", key)
				got, err := signMessage(verImpl, eb, now, "hs1", "ed25519:a_1", key)
				// What the builder refuses is left to it, to say why.
				signs := v.signed && wantErr == nil
				if got == nil && err == nil {
					if signs && verImpl.EventFormat() == gomatrixserverlib.EventFormatV2 {
						t.Errorf("%s, %s, %s: left to the builder", version, v.name, c)
					}
					continue
				}
				if !signs {
					t.Errorf("%s, %s: signed, should be left to the builder (%v)", version, v.name, wantErr)
				}
				if wantErr != nil || err != nil {
					t.Fatalf("%s, %s, %s: builder %v, signMessage %v", version, v.name, c, wantErr, err)
				}
				if !bytes.Equal(got.JSON(), want.JSON()) || got.EventID() != want.EventID() {
					t.Errorf("%s, %s:\n got %s %s\nwant %s %s", version, v.name, got.EventID(), got.JSON(), want.EventID(), want.JSON())
				}
			}
		}
	}
}

func BenchmarkSignMessage(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(bytes.NewReader(make([]byte, 64)))
	verImpl := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersionV10)
	content := spec.RawJSON(`{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"` + string(bytes.Repeat([]byte("x"), 700)) + `","device_id":"D","sender_key":"k","session_id":"s"}`)
	for _, name := range []string{"builder", "signMessage"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				eb := verImpl.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{
					SenderID: "@alice:hs1", RoomID: "!room:hs1", Type: "m.room.encrypted",
					PrevEvents: []string{"$prev"}, Depth: 42, Content: content, Version: verImpl,
				})
				eb.AuthEvents = []string{"$create", "$power", "$member"}
				var err error
				if name == "builder" {
					_, err = eb.Build(time.Now(), "hs1", "ed25519:a_1", key)
				} else {
					_, err = signMessage(verImpl, eb, time.Now(), "hs1", "ed25519:a_1", key)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
