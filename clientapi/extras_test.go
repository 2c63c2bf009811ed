package clientapi_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

func TestRoomTags(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, nil)
	base := "/_matrix/client/v3/user/" + ts.PathEscape(alice.UserID) + "/rooms/" + ts.PathEscape(room) + "/tags"
	if got := alice.MustDo(t, "GET", base, nil, 200).Get("tags").Raw; got != "{}" {
		t.Fatalf("no tags: %s", got)
	}
	alice.MustDo(t, "PUT", base+"/m.favourite", map[string]any{"order": 0.25}, 200)
	alice.MustDo(t, "PUT", base+"/u.work", map[string]any{}, 200)
	got := alice.MustDo(t, "GET", base, nil, 200)
	if got.Get(`tags.m\.favourite.order`).Float() != 0.25 || !got.Get(`tags.u\.work`).Exists() {
		t.Fatalf("tags: %s", got.Raw)
	}
	alice.MustDo(t, "DELETE", base+"/m.favourite", nil, 200)
	if got := alice.MustDo(t, "GET", base, nil, 200); got.Get(`tags.m\.favourite`).Exists() || !got.Get(`tags.u\.work`).Exists() {
		t.Fatalf("after delete: %s", got.Raw)
	}
	// The tags reach the client's sync as m.tag room account data.
	sync := alice.MustDo(t, "GET", "/_matrix/client/v3/sync", nil, 200)
	if !sync.Get("rooms.join." + ts.Esc(room) + `.account_data.events.#(type=="m.tag").content.tags.u\.work`).Exists() {
		t.Fatalf("sync: %s", sync.Get("rooms.join").Raw)
	}
	bob.MustFail(t, "GET", base, nil, 403, "M_FORBIDDEN")
	bob.MustFail(t, "PUT", base+"/x", map[string]any{}, 403, "M_FORBIDDEN")
	alice.MustFail(t, "PUT", base+"/x", map[string]any{"order": "first"}, 400, "M_BAD_JSON")
	alice.MustFail(t, "PUT", base+"/x", "[]", 400, "M_BAD_JSON")
	alice.MustFail(t, "GET", "/_matrix/client/v3/user/"+ts.PathEscape(alice.UserID)+"/rooms/nonsense/tags", nil, 400, "M_INVALID_PARAM")
	srv.Anon().MustFail(t, "GET", base, nil, 401, "M_MISSING_TOKEN")
}

func TestElementExtras(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	if got := alice.MustDo(t, "GET", "/_matrix/client/v3/thirdparty/protocols", nil, 200).Raw; got != "{}" {
		t.Fatalf("protocols: %s", got)
	}
	if got := alice.MustDo(t, "GET", "/_matrix/client/v3/account/3pid", nil, 200).Get("threepids").Raw; got != "[]" {
		t.Fatalf("3pid: %s", got)
	}
	if got := alice.MustDo(t, "GET", "/_matrix/client/v3/voip/turnServer", nil, 200).Raw; got != "{}" {
		t.Fatalf("turn without configuration: %s", got)
	}
	srv.Anon().MustFail(t, "GET", "/_matrix/client/v3/voip/turnServer", nil, 401, "M_MISSING_TOKEN")

	srv = ts.Start(t, func(c *config.Config) {
		c.TURN = config.TURN{URIs: []string{"turn:turn.example.org:3478?transport=udp"}, SharedSecret: "s3cret", Lifetime: config.Duration(time.Hour)}
	})
	alice = srv.Register(t, "alice")
	turn := alice.MustDo(t, "GET", "/_matrix/client/v3/voip/turnServer", nil, 200)
	user, pass := turn.Get("username").Str, turn.Get("password").Str
	mac := hmac.New(sha1.New, []byte("s3cret"))
	mac.Write([]byte(user))
	if !strings.HasSuffix(user, ":"+alice.UserID) || pass != base64.StdEncoding.EncodeToString(mac.Sum(nil)) ||
		turn.Get("ttl").Int() != 3600 || turn.Get("uris.0").Str != "turn:turn.example.org:3478?transport=udp" {
		t.Fatalf("turn: %s", turn.Raw)
	}
}
