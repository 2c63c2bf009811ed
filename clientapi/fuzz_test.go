package clientapi_test

import (
	"bytes"
	"net/http"
	"testing"
	"unicode/utf8"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/tidwall/gjson"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// Any body sent as event content is either refused with a Matrix error or
// stored as valid UTF-8 canonical JSON, so that what every member's /sync
// carries is JSON the strictest client accepts.
func FuzzSendEvent(f *testing.F) {
	for _, seed := range []string{`{"body":"hi"}`, `{}`, `{"n":1.5}`, `{"n":9007199254740993}`, "{\"b\":\"\xff\"}", `{"b":"\ud800"}`,
		`{"b":"\ud83d\ude00"}`, `{"a":[1,{"b":null}],"c":-0}`, `{"x":1e2}`, `[]`, `{"k":"\u0000"}`} {
		f.Add([]byte(seed))
	}
	srv := ts.Start(f)
	alice := srv.Register(f, "alice")
	room := alice.CreateRoom(f, nil)
	n := 0
	f.Fuzz(func(t *testing.T, body []byte) {
		n++
		req, _ := http.NewRequest("PUT", srv.URL+"/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/send/m.room.message/f"+itoa(n), bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+alice.Token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		_, _ = out.ReadFrom(res.Body)
		res.Body.Close()
		reply := gjson.ParseBytes(out.Bytes())
		if res.StatusCode != 200 {
			if res.StatusCode >= 500 || reply.Get("errcode").Str == "" {
				t.Fatalf("%q: %d %s", body, res.StatusCode, out.Bytes())
			}
			return
		}
		e, err := srv.DB.R().Event(t.Context(), reply.Get("event_id").Str)
		if err != nil {
			t.Fatal(err)
		}
		canonical, err := gomatrixserverlib.CanonicalJSON(e.JSON)
		if err != nil || !bytes.Equal(canonical, e.JSON) || !utf8.Valid(e.JSON) {
			t.Fatalf("%q stored as %q, not valid canonical JSON (%v)", body, e.JSON, err)
		}
	})
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for n >= 10 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	i--
	b[i] = byte('0' + n)
	return string(b[i:])
}
