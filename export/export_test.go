package export_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/export"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// archive reads an export into its files.
func archive(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b
	}
	return files
}

func lines(t *testing.T, b []byte) []gjson.Result {
	t.Helper()
	var out []gjson.Result
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		if !gjson.ValidBytes(sc.Bytes()) {
			t.Fatalf("not JSON: %s", sc.Text())
		}
		out = append(out, gjson.ParseBytes(bytes.Clone(sc.Bytes())))
	}
	return out
}

func count(t *testing.T, srv *ts.Server, query string) int64 {
	var n int64
	if err := srv.DB.RawRead(t.Context(), query, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func upload(t *testing.T, srv *ts.Server, token string, data []byte) string {
	req, _ := http.NewRequest("POST", srv.URL+"/_matrix/media/v3/upload?filename=f.bin", bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return strings.TrimPrefix(gjson.GetBytes(b, "content_uri").Str, "mxc://test.local/")
}

// instance builds an instance with a bit of everything.
func instance(t *testing.T) (srv *ts.Server, alice, bob *ts.Client, aliceMedia, bobMedia string) {
	srv = ts.Start(t)
	alice, bob = srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "shared"})
	bob.Join(t, room)
	alice.Send(t, room, "from alice")
	bob.Send(t, room, "from bob")
	bob.CreateRoom(t, map[string]any{"name": "bob alone"})
	for _, c := range []*ts.Client{alice, bob} {
		c.MustDo(t, "PUT", "/_matrix/client/v3/user/"+ts.PathEscape(c.UserID)+"/account_data/org.example.private",
			map[string]any{"secret": "private-of-" + c.UserID}, 200)
		v := c.MustDo(t, "POST", "/_matrix/client/v3/room_keys/version", map[string]any{"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2",
			"auth_data": map[string]any{"public_key": "pk"}}, 200).Get("version").Str
		c.MustDo(t, "PUT", "/_matrix/client/v3/room_keys/keys/"+ts.PathEscape(room)+"/s1?version="+v, map[string]any{
			"first_message_index": 0, "forwarded_count": 0, "is_verified": false,
			"session_data": map[string]any{"ciphertext": "backup-of-" + c.UserID}}, 200)
	}
	return srv, alice, bob, upload(t, srv, alice.Token, []byte("alice's file")), upload(t, srv, bob.Token, []byte("bob's file"))
}

func run(t *testing.T, srv *ts.Server, opts export.Options) (export.Manifest, []byte) {
	var buf bytes.Buffer
	m, err := export.Write(context.Background(), srv.DB, srv.Media, srv.Cfg.ServerName, opts, t.TempDir(), &buf, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return m, buf.Bytes()
}

// The archive matches docs/export-format.md: every user, room, event and
// media item, and no password hash or token unless asked for.
func TestInstanceExport(t *testing.T) {
	srv, alice, _, aliceMedia, _ := instance(t)
	m, data := run(t, srv, export.Options{})
	files := archive(t, data)
	for _, name := range []string{"manifest.json", "users.jsonl", "devices.jsonl", "cross_signing_keys.jsonl", "key_signatures.jsonl",
		"rooms.jsonl", "events.jsonl", "account_data.jsonl", "key_backup_versions.jsonl", "key_backup_keys.jsonl", "media.jsonl"} {
		if _, ok := files[name]; !ok {
			t.Errorf("archive lacks %s", name)
		}
	}
	for _, name := range []string{"password_hashes.jsonl", "access_tokens.jsonl"} {
		if _, ok := files[name]; ok {
			t.Errorf("archive holds %s without --include-secrets", name)
		}
	}
	man := gjson.ParseBytes(files["manifest.json"])
	if man.Get("format").Str != "redoubt-export" || man.Get("version").Int() != 1 || man.Get("scope").Str != "instance" || m.Counts["events"] == 0 {
		t.Fatalf("manifest: %s", files["manifest.json"])
	}
	for set, table := range map[string]string{"users": "users", "rooms": "rooms", "events": "events", "media": "media", "account_data": "account_data"} {
		if got, want := int64(len(lines(t, files[set+".jsonl"]))), count(t, srv, "SELECT COUNT(*) FROM "+table); got != want || man.Get("counts."+set).Int() != want {
			t.Errorf("%s: %d lines, manifest %d, database %d", set, got, man.Get("counts."+set).Int(), want)
		}
	}
	for _, e := range lines(t, files["events.jsonl"]) {
		if !e.Get("event.event_id").Exists() && !e.Get("event.type").Exists() {
			t.Fatalf("event line: %s", e.Raw)
		}
	}
	for _, r := range lines(t, files["rooms.jsonl"]) {
		if !r.Get(`state.#(type=="m.room.create")`).Exists() {
			t.Fatalf("room without its state: %s", r.Raw)
		}
	}
	for _, md := range lines(t, files["media.jsonl"]) {
		b, ok := files[md.Get("file").Str]
		sum := sha256.Sum256(b)
		if !ok || int64(len(b)) != md.Get("size").Int() || md.Get("sha256").Str == "" || len(sum) == 0 {
			t.Fatalf("media %s: file present %v", md.Raw, ok)
		}
	}
	if _, ok := files["media/"+aliceMedia]; !ok {
		t.Fatal("alice's file missing")
	}
	tokenHash := sha256.Sum256([]byte(alice.Token))
	for _, secret := range []string{"$argon2id", hex.EncodeToString(tokenHash[:]), alice.Token} {
		for name, b := range files {
			if bytes.Contains(b, []byte(secret)) {
				t.Fatalf("%s holds a secret (%.12s…)", name, secret)
			}
		}
	}
	// With --include-secrets, hashes only: the server never has more.
	_, data = run(t, srv, export.Options{IncludeSecrets: true})
	files = archive(t, data)
	if !bytes.Contains(files["password_hashes.jsonl"], []byte("$argon2id")) || !bytes.Contains(files["access_tokens.jsonl"], []byte(hex.EncodeToString(tokenHash[:]))) {
		t.Fatalf("secrets export: %s / %s", files["password_hashes.jsonl"], files["access_tokens.jsonl"])
	}
}

// A user's export (a data-access request) holds their data and nothing of
// other users' private data.
func TestUserExport(t *testing.T) {
	srv, alice, bob, aliceMedia, bobMedia := instance(t)
	m, data := run(t, srv, export.Options{UserID: alice.UserID})
	files := archive(t, data)
	if m.Scope != "user" || m.UserID != alice.UserID {
		t.Fatalf("manifest %+v", m)
	}
	for _, u := range lines(t, files["users.jsonl"]) {
		if u.Get("user_id").Str != alice.UserID {
			t.Fatalf("other user: %s", u.Raw)
		}
	}
	for _, e := range lines(t, files["events.jsonl"]) {
		if e.Get("event.sender").Str != alice.UserID {
			t.Fatalf("someone else's event: %s", e.Raw)
		}
	}
	for _, r := range lines(t, files["rooms.jsonl"]) {
		for _, s := range r.Get("state").Array() {
			if s.Get("state_key").Str != alice.UserID {
				t.Fatalf("room state of others: %s", s.Raw)
			}
		}
	}
	if len(lines(t, files["rooms.jsonl"])) != 1 {
		t.Fatalf("rooms: %s", files["rooms.jsonl"])
	}
	if _, ok := files["media/"+aliceMedia]; !ok {
		t.Fatal("alice's media missing")
	}
	all := bytes.Join([][]byte{files["users.jsonl"], files["devices.jsonl"], files["events.jsonl"], files["account_data.jsonl"],
		files["key_backup_keys.jsonl"], files["media.jsonl"], files["rooms.jsonl"], files["cross_signing_keys.jsonl"]}, nil)
	for _, other := range []string{"private-of-" + bob.UserID, "backup-of-" + bob.UserID, bobMedia, "from bob", "bob alone", bob.DeviceID} {
		if bytes.Contains(all, []byte(other)) {
			t.Fatalf("alice's export holds bob's %q", other)
		}
	}
	if _, ok := files["media/"+bobMedia]; ok {
		t.Fatal("alice's export holds bob's file")
	}
	if !bytes.Contains(all, []byte("private-of-"+alice.UserID)) || !bytes.Contains(all, []byte("from alice")) {
		t.Fatal("alice's export lacks her own data")
	}
}

// The admin API runs an export in the background: start, poll, download.
func TestExportThroughAdminAPI(t *testing.T) {
	srv, _, _, _, _ := instance(t)
	root := srv.RegisterAdmin(t, "root")
	id := startExport(t, root)
	res, err := root.Raw("GET", "/_redoubt/admin/v1/export/"+id+"/download")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %d %v", res.StatusCode, res.Header)
	}
	var man map[string]any
	if err := json.Unmarshal(archive(t, data)["manifest.json"], &man); err != nil || man["scope"] != "instance" {
		t.Fatalf("downloaded manifest: %v %v", man, err)
	}
	// Downloaded once, the archive is gone from the disk.
	if st := root.MustDo(t, "GET", "/_redoubt/admin/v1/export/"+id, nil, 200); st.Get("status").Str != "downloaded" {
		t.Fatalf("status after the download: %s", st.Raw)
	}
	root.MustFail(t, "GET", "/_redoubt/admin/v1/export/"+id+"/download", nil, 404, "M_NOT_FOUND")
	if left, _ := os.ReadDir(srv.Cfg.ExportDir()); len(left) != 0 {
		t.Fatalf("left in the export directory: %v", left)
	}
	root.MustFail(t, "GET", "/_redoubt/admin/v1/export/nope", nil, 404, "M_NOT_FOUND")
	root.MustFail(t, "POST", "/_redoubt/admin/v1/export", map[string]any{"user_id": "@nobody:test.local"}, 404, "M_NOT_FOUND")
	srv.Register(t, "carol").MustFail(t, "POST", "/_redoubt/admin/v1/export", map[string]any{}, 403, "M_FORBIDDEN")
}

// An export no one downloads is shredded after privacy.export_lifetime.
func TestExportExpires(t *testing.T) {
	srv := ts.Start(t, func(c *config.Config) { c.Privacy.ExportLifetime = config.Duration(time.Second) })
	root := srv.RegisterAdmin(t, "root")
	id := startExport(t, root)
	if left, _ := os.ReadDir(srv.Cfg.ExportDir()); len(left) != 1 {
		t.Fatalf("export directory before it expires: %v", left)
	}
	var status gjson.Result
	for range 100 {
		if status = root.MustDo(t, "GET", "/_redoubt/admin/v1/export/"+id, nil, 200); status.Get("status").Str != "complete" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status.Get("status").Str != "expired" {
		t.Fatalf("status: %s", status.Raw)
	}
	root.MustFail(t, "GET", "/_redoubt/admin/v1/export/"+id+"/download", nil, 404, "M_NOT_FOUND")
	if left, _ := os.ReadDir(srv.Cfg.ExportDir()); len(left) != 0 {
		t.Fatalf("left in the export directory: %v", left)
	}
}

// startExport starts an instance export and waits for it to complete.
func startExport(t *testing.T, root *ts.Client) string {
	t.Helper()
	id := root.MustDo(t, "POST", "/_redoubt/admin/v1/export", map[string]any{}, 200).Get("export_id").Str
	var status gjson.Result
	for range 100 {
		status = root.MustDo(t, "GET", "/_redoubt/admin/v1/export/"+id, nil, 200)
		if status.Get("status").Str != "running" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status.Get("status").Str != "complete" || status.Get("bytes").Int() == 0 || status.Get("expires_ts").Int() == 0 {
		t.Fatalf("status: %s", status.Raw)
	}
	return id
}

// A failed export tells the admin that it failed and where to look, not
// the server's file paths (those go to the log).
func TestFailedExportNamesNoPaths(t *testing.T) {
	mediaDir := t.TempDir()
	srv := ts.Start(t, func(c *config.Config) { c.Media.Path = mediaDir })
	root := srv.RegisterAdmin(t, "root")
	upload(t, srv, root.Token, []byte("a file the export cannot read"))
	if err := os.RemoveAll(mediaDir); err != nil {
		t.Fatal(err)
	}
	id := root.MustDo(t, "POST", "/_redoubt/admin/v1/export", map[string]any{}, 200).Get("export_id").Str
	var status gjson.Result
	for range 100 {
		if status = root.MustDo(t, "GET", "/_redoubt/admin/v1/export/"+id, nil, 200); status.Get("status").Str != "running" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status.Get("status").Str != "failed" || status.Get("error").Str == "" || strings.Contains(status.Raw, mediaDir) || strings.Contains(status.Raw, "/") {
		t.Fatalf("status: %s", status.Raw)
	}
}
