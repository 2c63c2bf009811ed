package mediaapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
	"github.com/redoubt-systems/redoubt/storage"
)

const (
	v1     = "/_matrix/client/v1/media"
	upload = "/_matrix/media/v3/upload"
)

// request sends a raw request; size < 0 sends the body chunked, without a
// Content-Length.
func request(t testing.TB, srv *ts.Server, token, method, path string, body io.Reader, size int64, ctype string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.ContentLength = size
		if size < 0 {
			req.ContentLength = -1
			req.Body = io.NopCloser(body) // hide the length from net/http
		}
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// jsonOf reads a response's JSON body and checks its status.
func jsonOf(t testing.TB, res *http.Response, status int, errcode string) gjson.Result {
	t.Helper()
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	j := gjson.ParseBytes(b)
	if res.StatusCode != status || j.Get("errcode").Str != errcode {
		t.Fatalf("got %d %s, want %d %s", res.StatusCode, b, status, errcode)
	}
	return j
}

func uploadBytes(t testing.TB, srv *ts.Server, token string, data []byte, ctype, filename string) string {
	t.Helper()
	path := upload
	if filename != "" {
		path += "?filename=" + url.QueryEscape(filename)
	}
	res := request(t, srv, token, "POST", path, bytes.NewReader(data), int64(len(data)), ctype)
	return jsonOf(t, res, 200, "").Get("content_uri").Str
}

// mediaPath turns mxc://server/id into server/id.
func mediaPath(mxc string) string { return strings.TrimPrefix(mxc, "mxc://") }

func download(t testing.TB, srv *ts.Server, token, mxc string) (*http.Response, []byte) {
	t.Helper()
	res := request(t, srv, token, "GET", v1+"/download/"+mediaPath(mxc), nil, 0, "")
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

// random is a reproducible stream of n pseudo-random bytes.
func random(seed uint64, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed)}), n)
}

func count(t testing.TB, srv *ts.Server, query string) int {
	t.Helper()
	var n int
	if err := srv.DB.RawRead(t.Context(), query, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRoundTrip50MiB(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	const size = 50 << 20
	want := sha256.New()
	res := request(t, srv, alice.Token, "POST", upload+"?filename=big.bin",
		io.TeeReader(random(1, size), want), size, "application/octet-stream")
	mxc := jsonOf(t, res, 200, "").Get("content_uri").Str
	if !strings.HasPrefix(mxc, "mxc://test.local/") {
		t.Fatalf("content_uri %q", mxc)
	}
	// Another user downloads it, streamed, byte for byte.
	res = request(t, srv, bob.Token, "GET", v1+"/download/"+mediaPath(mxc), nil, 0, "")
	defer res.Body.Close()
	got := sha256.New()
	n, err := io.Copy(got, res.Body)
	if err != nil || n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("downloaded %d bytes (%v), identical=%v", n, err, bytes.Equal(got.Sum(nil), want.Sum(nil)))
	}
	for k, v := range map[string]string{
		"Content-Type": "application/octet-stream", "Content-Length": fmt.Sprint(size),
		"Content-Disposition": `attachment; filename=big.bin`, "X-Content-Type-Options": "nosniff",
	} {
		if res.Header.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, res.Header.Get(k), v)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "sandbox; default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	// Kept in the database in fixed-size chunks.
	if n := count(t, srv, `SELECT COUNT(*) FROM media_chunks`); n != size/(256<<10) {
		t.Errorf("%d chunks", n)
	}
}

// 101 MiB is refused with 413, whether announced by Content-Length or
// streamed without one, and nothing of it stays stored.
func TestUploadTooLarge(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	const size = 101 << 20
	for _, announced := range []int64{size, -1} {
		res := request(t, srv, alice.Token, "POST", upload, random(2, size), announced, "application/octet-stream")
		jsonOf(t, res, http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
		if n := count(t, srv, `SELECT (SELECT COUNT(*) FROM media) + (SELECT COUNT(*) FROM media_chunks)`); n != 0 {
			t.Fatalf("Content-Length %d: %d rows stored", announced, n)
		}
	}
	// A smaller limit applies as configured.
	srv = ts.Start(t, func(c *config.Config) { c.Media.MaxUploadSize = 100 << 10 })
	alice = srv.Register(t, "alice")
	jsonOf(t, request(t, srv, alice.Token, "POST", upload, random(3, 100<<10+1), -1, ""), 413, "M_TOO_LARGE")
	uploadBytes(t, srv, alice.Token, make([]byte, 100<<10), "", "")
	cfg := alice.MustDo(t, "GET", v1+"/config", nil, 200)
	if cfg.Get(`m\.upload\.size`).Int() != 100<<10 {
		t.Fatalf("config %s", cfg.Raw)
	}
}

func TestDownloadErrors(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	mxc := uploadBytes(t, srv, alice.Token, []byte("hello"), "text/plain", "hello.txt")
	id := strings.TrimPrefix(mxc, "mxc://test.local/")
	for _, tc := range []struct {
		name, token, path string
		status            int
		errcode           string
	}{
		{"unknown media", alice.Token, v1 + "/download/test.local/nosuchmedia", 404, "M_NOT_FOUND"},
		{"other server", alice.Token, v1 + "/download/elsewhere.example/" + id, 404, "M_NOT_FOUND"},
		{"no token", "", v1 + "/download/test.local/" + id, 401, "M_MISSING_TOKEN"},
		{"bad token", "nope", v1 + "/download/test.local/" + id, 401, "M_UNKNOWN_TOKEN"},
		{"thumbnail without token", "", v1 + "/thumbnail/test.local/" + id + "?width=10&height=10", 401, "M_MISSING_TOKEN"},
		{"legacy download", "", "/_matrix/media/v3/download/test.local/" + id, 404, "M_NOT_FOUND"},
		{"legacy thumbnail", alice.Token, "/_matrix/media/v3/thumbnail/test.local/" + id + "?width=10&height=10", 404, "M_NOT_FOUND"},
		{"upload without token", "", upload, 401, "M_MISSING_TOKEN"},
		{"bad timeout", alice.Token, v1 + "/download/test.local/" + id + "?timeout_ms=soon", 400, "M_INVALID_PARAM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "GET"
			if tc.path == upload {
				method = "POST"
			}
			jsonOf(t, request(t, srv, tc.token, method, tc.path, nil, 0, ""), tc.status, tc.errcode)
		})
	}
	// The file name in the path overrides the uploaded one.
	res := request(t, srv, alice.Token, "GET", v1+"/download/test.local/"+id+"/other.txt", nil, 0, "")
	res.Body.Close()
	if d := res.Header.Get("Content-Disposition"); d != "inline; filename=other.txt" {
		t.Fatalf("Content-Disposition %q", d)
	}
	// With legacy_unauthenticated the old endpoints serve without a token.
	srv.Stop()
	srv.Cfg.Media.LegacyUnauthenticated = true
	srv.Restart()
	res, body := func() (*http.Response, []byte) {
		res := request(t, srv, "", "GET", "/_matrix/media/v3/download/test.local/"+id, nil, 0, "")
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}()
	if res.StatusCode != 200 || string(body) != "hello" {
		t.Fatalf("legacy download after restart: %d %q", res.StatusCode, body)
	}
}

// Content-Disposition: inline only for types that cannot run script, and
// file names encoded (RFC 6266 / 2231) rather than pasted in.
func TestContentDisposition(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	for _, tc := range []struct{ ctype, name, want string }{
		{"image/png", "cat.png", "inline; filename=cat.png"},
		{"image/svg+xml", "x.svg", "attachment; filename=x.svg"},
		{"text/html", "page.html", "attachment; filename=page.html"},
		{"application/pdf", "résumé.pdf", "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf"},
		{"text/plain", `a"b.txt`, `inline; filename="a\"b.txt"`},
		{"video/mp4", "", "inline"},
	} {
		mxc := uploadBytes(t, srv, alice.Token, []byte("x"), tc.ctype, tc.name)
		res, _ := download(t, srv, alice.Token, mxc)
		if got := res.Header.Get("Content-Disposition"); got != tc.want {
			t.Errorf("%s %q: %q, want %q", tc.ctype, tc.name, got, tc.want)
		}
		if got := res.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("Content-Type %q, want %q", got, tc.ctype)
		}
	}
}

func pngOf(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 200, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pngHeader is a PNG that declares a width and height but holds no pixels.
func pngHeader(w, h uint32) []byte {
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	binary.Write(&b, binary.BigEndian, uint32(13))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func TestThumbnails(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	mxc := uploadBytes(t, srv, alice.Token, pngOf(t, 400, 300), "image/png", "photo.png")
	thumb := func(query string) (*http.Response, []byte) {
		res := request(t, srv, alice.Token, "GET", v1+"/thumbnail/"+mediaPath(mxc)+"?"+query, nil, 0, "")
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}
	for _, tc := range []struct {
		query string
		w, h  int
	}{
		{"width=64&height=64&method=scale", 64, 48},
		{"width=64&height=64", 64, 48}, // scale is the default
		{"width=100&height=30&method=scale", 40, 30},
		{"width=32&height=32&method=crop", 32, 32},
		{"width=96&height=48&method=crop", 96, 48},
		{"width=800&height=600", 400, 300}, // never enlarged: the original
		{"width=64&height=64&animated=true", 64, 48},
	} {
		res, b := thumb(tc.query)
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d %s", tc.query, res.StatusCode, b)
		}
		cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
		if err != nil || cfg.Width != tc.w || cfg.Height != tc.h {
			t.Errorf("%s: %dx%d (%v), want %dx%d", tc.query, cfg.Width, cfg.Height, err, tc.w, tc.h)
		}
		if res.Header.Get("Content-Type") != "image/png" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", tc.query, res.Header)
		}
	}
	// Made once, then served from the cache.
	if n := count(t, srv, `SELECT COUNT(*) FROM media_thumbnails`); n != 4 {
		t.Errorf("%d thumbnails cached", n)
	}
	for _, tc := range []struct{ query, errcode string }{
		{"height=64", "M_MISSING_PARAM"},
		{"width=64", "M_MISSING_PARAM"},
		{"width=abc&height=64", "M_INVALID_PARAM"},
		{"width=-1&height=64", "M_INVALID_PARAM"},
		{"width=64&height=64&method=zoom", "M_INVALID_PARAM"},
		{"width=64&height=64&animated=maybe", "M_INVALID_PARAM"},
	} {
		res := request(t, srv, alice.Token, "GET", v1+"/thumbnail/"+mediaPath(mxc)+"?"+tc.query, nil, 0, "")
		jsonOf(t, res, 400, tc.errcode)
	}
	// Media that is not an image, bytes that are not the image they claim,
	// and an image whose header declares 10 billion pixels (never decoded)
	// are refused cleanly.
	for _, up := range []struct {
		data  []byte
		ctype string
	}{
		{[]byte("just text"), "text/plain"},
		{[]byte("encrypted attachment bytes"), "application/octet-stream"},
		{[]byte("not a png at all"), "image/png"},
		{pngHeader(100000, 100000), "image/png"},
	} {
		other := uploadBytes(t, srv, alice.Token, up.data, up.ctype, "")
		res := request(t, srv, alice.Token, "GET", v1+"/thumbnail/"+mediaPath(other)+"?width=32&height=32", nil, 0, "")
		jsonOf(t, res, 400, "M_UNKNOWN")
	}
	jsonOf(t, request(t, srv, alice.Token, "GET", v1+"/thumbnail/test.local/unknown?width=32&height=32", nil, 0, ""), 404, "M_NOT_FOUND")
}

func TestAsyncUpload(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	created := alice.MustDo(t, "POST", "/_matrix/media/v1/create", nil, 200)
	mxc := created.Get("content_uri").Str
	if !strings.HasPrefix(mxc, "mxc://test.local/") || created.Get("unused_expires_at").Int() <= time.Now().UnixMilli() {
		t.Fatalf("create: %s", created.Raw)
	}
	put := "/_matrix/media/v3/upload/" + mediaPath(mxc)
	// Not there yet.
	jsonOf(t, request(t, srv, bob.Token, "GET", v1+"/download/"+mediaPath(mxc)+"?timeout_ms=50", nil, 0, ""), 504, "M_NOT_YET_UPLOADED")
	// Only its creator may upload.
	jsonOf(t, request(t, srv, bob.Token, "PUT", put, strings.NewReader("x"), 1, "text/plain"), 403, "M_FORBIDDEN")
	jsonOf(t, request(t, srv, alice.Token, "PUT", "/_matrix/media/v3/upload/test.local/nosuchmedia", strings.NewReader("x"), 1, ""), 404, "M_NOT_FOUND")
	// A download waiting for it gets it as soon as it is uploaded.
	var wg sync.WaitGroup
	var waited []byte
	var waitedStatus int
	wg.Add(1)
	go func() {
		defer wg.Done()
		res := request(t, srv, bob.Token, "GET", v1+"/download/"+mediaPath(mxc)+"?timeout_ms=10000", nil, 0, "")
		defer res.Body.Close()
		waitedStatus = res.StatusCode
		waited, _ = io.ReadAll(res.Body)
	}()
	time.Sleep(50 * time.Millisecond)
	jsonOf(t, request(t, srv, alice.Token, "PUT", put+"?filename=later.txt", strings.NewReader("arrived later"), 13, "text/plain"), 200, "")
	wg.Wait()
	if waitedStatus != 200 || string(waited) != "arrived later" {
		t.Fatalf("waiting download: %d %q", waitedStatus, waited)
	}
	// Uploaded once only.
	jsonOf(t, request(t, srv, alice.Token, "PUT", put, strings.NewReader("again"), 5, "text/plain"), 409, "M_CANNOT_OVERWRITE_MEDIA")
	res, b := download(t, srv, bob.Token, mxc)
	if string(b) != "arrived later" || res.Header.Get("Content-Disposition") != "inline; filename=later.txt" {
		t.Fatalf("download: %q %v", b, res.Header)
	}
	// A user may keep only so many reservations waiting.
	for range 10 {
		bob.MustDo(t, "POST", "/_matrix/media/v1/create", nil, 200)
	}
	bob.MustFail(t, "POST", "/_matrix/media/v1/create", nil, 429, "M_LIMIT_EXCEEDED")
}

// An upload cut off by a stop leaves nothing once the server is back;
// complete media survives.
func TestRestartKeepsMediaDropsPartialUploads(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	mxc := uploadBytes(t, srv, alice.Token, []byte("keep me"), "text/plain", "")
	err := srv.DB.Write(t.Context(), func(q storage.Q) error {
		if err := q.CreateMedia(t.Context(), storage.Media{MediaID: "partial", Uploader: "@alice:test.local",
			ContentType: "text/plain", CreatedTS: 1, State: storage.MediaUploading}); err != nil {
			return err
		}
		return q.AddMediaChunk(t.Context(), "partial", 0, []byte("half"))
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	if _, b := download(t, srv, alice.Token, mxc); string(b) != "keep me" {
		t.Fatalf("after restart: %q", b)
	}
	if n := count(t, srv, `SELECT COUNT(*) FROM media_chunks WHERE media_id = 'partial'`) + count(t, srv, `SELECT COUNT(*) FROM media WHERE media_id = 'partial'`); n != 0 {
		t.Fatal("partial upload survived the restart")
	}
}

// media.path keeps bytes in a directory instead of the database.
func TestMediaPath(t *testing.T) {
	dir := t.TempDir()
	srv := ts.Start(t, func(c *config.Config) { c.Media.Path = dir })
	alice := srv.Register(t, "alice")
	data, _ := io.ReadAll(random(4, 1<<20+7))
	mxc := uploadBytes(t, srv, alice.Token, data, "application/octet-stream", "")
	if _, b := download(t, srv, alice.Token, mxc); !bytes.Equal(b, data) {
		t.Fatal("download differs")
	}
	id := strings.TrimPrefix(mxc, "mxc://test.local/")
	if onDisk, err := os.ReadFile(filepath.Join(dir, id[:2], id)); err != nil || !bytes.Equal(onDisk, data) {
		t.Fatalf("file in media.path: %v", err)
	}
	if n := count(t, srv, `SELECT COUNT(*) FROM media_chunks`); n != 0 {
		t.Fatalf("%d chunks in the database", n)
	}
	// A refused upload leaves no file behind.
	srv.Stop()
	srv.Cfg.Media.MaxUploadSize = 64 << 10
	srv.Restart()
	jsonOf(t, request(t, srv, alice.Token, "POST", upload, random(5, 1<<20), -1, ""), 413, "M_TOO_LARGE")
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	if len(files) != 1 {
		t.Fatalf("files in media.path: %v", files)
	}
}

func TestURLPreview(t *testing.T) {
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/page":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, `<html><head><title>Fallback</title>
				<meta property="og:title" content="The Title">
				<meta name="description" content="A description.">
				<meta property="og:image" content="/img.png"></head><body>hi</body></html>`)
		case "/img.png":
			w.Header().Set("Content-Type", "image/png")
			w.Write(pngOf(t, 8, 8))
		default:
			http.NotFound(w, r)
		}
	}))
	defer page.Close()
	target := "?url=" + url.QueryEscape(page.URL+"/page")

	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	alice.MustFail(t, "GET", v1+"/preview_url"+target, nil, 403, "M_FORBIDDEN")

	// On, with the default deny-list: the loopback page is out of reach.
	srv = ts.Start(t, func(c *config.Config) { c.Media.URLPreview.Enabled = true })
	alice = srv.Register(t, "alice")
	alice.MustFail(t, "GET", v1+"/preview_url"+target, nil, 403, "M_FORBIDDEN")
	alice.MustFail(t, "GET", v1+"/preview_url", nil, 400, "M_MISSING_PARAM")
	alice.MustFail(t, "GET", v1+"/preview_url?url=file:///etc/passwd", nil, 400, "M_INVALID_PARAM")

	// Loopback allowed (as a test must): title, description and the image,
	// kept as media of this server.
	srv = ts.Start(t, func(c *config.Config) {
		c.Media.URLPreview.Enabled = true
		c.Media.URLPreview.DenyIPRanges = []string{"10.0.0.0/8"}
	})
	alice = srv.Register(t, "alice")
	og := alice.MustDo(t, "GET", v1+"/preview_url"+target, nil, 200)
	if og.Get(`og:title`).Str != "The Title" || og.Get(`og:description`).Str != "A description." {
		t.Fatalf("preview %s", og.Raw)
	}
	img := og.Get(`og:image`).Str
	if !strings.HasPrefix(img, "mxc://test.local/") || og.Get(`matrix:image:size`).Int() == 0 ||
		og.Get(`og:image:width`).Int() != 8 || og.Get(`og:image:height`).Int() != 8 {
		t.Fatalf("preview image %s", og.Raw)
	}
	if res, b := download(t, srv, alice.Token, img); res.StatusCode != 200 || !bytes.Equal(b, pngOf(t, 8, 8)) {
		t.Fatalf("preview image download: %d", res.StatusCode)
	}
	alice.MustFail(t, "GET", v1+"/preview_url?url="+url.QueryEscape(page.URL+"/missing"), nil, 502, "M_UNKNOWN")
}
