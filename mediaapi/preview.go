package mediaapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/html"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
)

// previewURL is GET /preview_url. Off by default: it makes the server fetch
// a third-party page, which tells that site the server's address and that
// someone is talking about the page.
func (s *Service) previewURL(r *http.Request, dev *httpapi.Device) httpapi.Response {
	if !s.Cfg.Media.URLPreview.Enabled {
		return httpapi.Fail(httpapi.Forbidden("URL previews are disabled on this server"))
	}
	raw := r.URL.Query().Get("url")
	if raw == "" {
		return httpapi.Fail(httpapi.MissingParam("url is required"))
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return httpapi.Fail(httpapi.InvalidParam("url must be an http or https URL"))
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.Cfg.Media.URLPreview.Timeout.D())
	defer cancel()
	client := s.previewClient()
	resp, err := fetch(ctx, client, u.String())
	if err != nil {
		return httpapi.Fail(err)
	}
	defer resp.Body.Close()
	limit := int64(s.Cfg.Media.URLPreview.MaxPageSize)
	og := map[string]any{}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case ct == "text/html" || ct == "application/xhtml+xml":
		og = openGraph(io.LimitReader(resp.Body, limit), resp.Request.URL)
	case strings.HasPrefix(ct, "image/"):
		og["og:image"] = resp.Request.URL.String()
	default:
		return httpapi.OK(og)
	}
	if img, ok := og["og:image"].(string); ok {
		delete(og, "og:image")
		if pi, err := s.storePreviewImage(ctx, client, img, dev.UserID, limit); err == nil {
			og["og:image"], og["og:image:type"], og["matrix:image:size"] = pi.mxc, pi.contentType, pi.size
			if pi.width > 0 {
				og["og:image:width"], og["og:image:height"] = pi.width, pi.height
			}
		}
	}
	return httpapi.OK(og)
}

// previewClient connects only to addresses outside the deny-list: checked
// on the address actually dialled, after DNS, so neither a name resolving
// to a private address nor a redirect reaches the operator's network.
func (s *Service) previewClient() *http.Client {
	var deny []*net.IPNet
	for _, r := range s.Cfg.Media.URLPreview.DenyIPRanges {
		if _, n, err := net.ParseCIDR(r); err == nil {
			deny = append(deny, n)
		}
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip := net.ParseIP(host)
		if ip == nil {
			return fmt.Errorf("preview: %s is not an IP address", host)
		}
		for _, n := range deny {
			if n.Contains(ip) {
				return errDenied
			}
		}
		return nil
	}}
	return &http.Client{
		Transport: &http.Transport{DialContext: dialer.DialContext, Proxy: nil, MaxResponseHeaderBytes: 64 << 10,
			TLSHandshakeTimeout: 5 * time.Second},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
}

var errDenied = errors.New("preview: address denied")

func fetch(ctx context.Context, client *http.Client, target string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, httpapi.InvalidParam("bad url")
	}
	req.Header.Set("User-Agent", "Redoubt URL preview")
	resp, err := client.Do(req)
	if errors.Is(err, errDenied) {
		return nil, httpapi.Forbidden("previews of this address are not allowed")
	}
	if err != nil {
		return nil, &httpapi.Error{Kind: matrixerr.KindBadGateway, Code: "M_UNKNOWN", Message: "could not fetch the URL"}
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, &httpapi.Error{Kind: matrixerr.KindBadGateway, Code: "M_UNKNOWN",
			Message: fmt.Sprintf("the URL answered %d", resp.StatusCode)}
	}
	return resp, nil
}

// openGraph reads a page's og: properties, with its <title> and
// description as fallbacks.
func openGraph(body io.Reader, base *url.URL) map[string]any {
	og := map[string]any{}
	var title, description string
	z := html.NewTokenizer(body)
	inTitle := false
	for {
		switch z.Next() {
		case html.ErrorToken:
			if _, ok := og["og:title"]; !ok && title != "" {
				og["og:title"] = strings.TrimSpace(title)
			}
			if _, ok := og["og:description"]; !ok && description != "" {
				og["og:description"] = description
			}
			if img, ok := og["og:image"].(string); ok {
				if u, err := base.Parse(img); err == nil {
					og["og:image"] = u.String()
				} else {
					delete(og, "og:image")
				}
			}
			return og
		case html.StartTagToken, html.SelfClosingTagToken:
			t := z.Token()
			switch t.Data {
			case "title":
				inTitle = true
			case "meta":
				attrs := map[string]string{}
				for _, a := range t.Attr {
					attrs[strings.ToLower(a.Key)] = a.Val
				}
				prop := attrs["property"]
				if prop == "" {
					prop = attrs["name"]
				}
				switch {
				case strings.HasPrefix(prop, "og:"):
					if _, seen := og[prop]; !seen && len(attrs["content"]) <= 1000 {
						og[prop] = attrs["content"]
					}
				case strings.EqualFold(prop, "description"):
					description = attrs["content"]
				}
			}
		case html.TextToken:
			if inTitle && len(title) < 1000 {
				title += string(z.Text())
			}
		case html.EndTagToken:
			if t, _ := z.TagName(); string(t) == "title" {
				inTitle = false
			}
		}
	}
}

// storePreviewImage fetches a preview's image and keeps it as media of the
// user who asked, so clients load it from this server, not the site.
// previewImage is a preview's image, stored in the media repository.
type previewImage struct {
	mxc, contentType string
	size             int64
	width, height    int // 0 if the header could not be read
}

func (s *Service) storePreviewImage(ctx context.Context, client *http.Client, target, userID string, limit int64) (previewImage, error) {
	resp, err := fetch(ctx, client, target)
	if err != nil {
		return previewImage{}, err
	}
	defer resp.Body.Close()
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if !thumbnailable[ct] {
		return previewImage{}, errors.New("not an image")
	}
	if resp.ContentLength > limit {
		return previewImage{}, errors.New("image too large")
	}
	m := storage.Media{MediaID: rooms.RandomID(24), Uploader: userID, ContentType: ct,
		CreatedTS: s.Now().UnixMilli(), State: storage.MediaUploading, InDir: s.Cfg.Media.Path != ""}
	if err := s.DB.Write(ctx, func(q Store) error { return q.CreateMedia(ctx, m) }); err != nil {
		return previewImage{}, err
	}
	// The image's header, kept as it streams by, gives its dimensions.
	head := &headBuffer{max: 64 << 10}
	body := io.TeeReader(&limitedReader{r: resp.Body, left: limit}, head)
	size, hash, err := s.Store.Put(ctx, m, body)
	if err == nil {
		err = s.DB.Write(ctx, func(q Store) error { return q.FinishMedia(ctx, m.MediaID, size, hash) })
	}
	if err != nil {
		s.discard(context.WithoutCancel(ctx), m)
		return previewImage{}, err
	}
	pi := previewImage{mxc: s.mxc(m.MediaID), contentType: ct, size: size}
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(head.b)); err == nil {
		pi.width, pi.height = cfg.Width, cfg.Height
	}
	return pi, nil
}

// headBuffer keeps the first max bytes written to it.
type headBuffer struct {
	b   []byte
	max int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := h.max - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// limitedReader fails, rather than stopping quietly, past its limit.
type limitedReader struct {
	r    io.Reader
	left int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errors.New("too large")
	}
	if int64(len(p)) > l.left {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, errors.New("too large")
	}
	return n, err
}
