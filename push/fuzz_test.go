package push

import (
	"testing"

	"github.com/tidwall/gjson"
)

// Event content: push rules evaluate any event JSON (and any account data
// holding rules) without panicking.
func FuzzEvaluate(f *testing.F) {
	for _, seed := range []string{
		`{"type":"m.room.message","sender":"@a:x","room_id":"!r:x","content":{"msgtype":"m.text","body":"hello @bob"}}`,
		`{"type":"m.room.encrypted","content":{"ciphertext":"x"}}`, `{"content":{"body":5}}`, `{}`, `[]`, `not json`,
		`{"type":"m.room.member","state_key":"@bob:x","content":{"membership":"invite"}}`,
		`{"content":{"m.mentions":{"user_ids":["@bob:x"],"room":true},"body":"@room"}}`,
	} {
		f.Add(seed, `{"global":{"override":[{"rule_id":"x","enabled":true,"conditions":[{"kind":"event_match","key":"content.body","pattern":"*he?lo*"}],"actions":["notify"]}]}}`)
	}
	f.Fuzz(func(t *testing.T, event, rules string) {
		for _, threads := range []bool{false, true} {
			rs := Parse("@bob:x", []byte(rules), threads)
			c := &Context{Event: gjson.Parse(event), UserID: "@bob:x", DisplayName: "Bob", MemberCount: 3, SenderLevel: 50,
				NotificationLevels: map[string]int64{"room": 50}, ThreadSubscribers: map[string]bool{"@bob:x": true}}
			Evaluate(&rs, c)
			d := Defaults("@bob:x", threads)
			Evaluate(&d, c)
		}
	})
}
