package mediaapi

import (
	"bytes"
	"errors"
	"image"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"strconv"

	xdraw "golang.org/x/image/draw"
	_ "golang.org/x/image/webp" // registers the WebP decoder

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

const (
	// maxThumbnailSide bounds a requested thumbnail's width and height.
	maxThumbnailSide = 1600
	// maxSourcePixels bounds the images thumbnailed, read from the header
	// before decoding: a small file can declare a huge image
	// (a decompression bomb), and decoding allocates 4 bytes a pixel.
	maxSourcePixels = 16_000_000
	// maxCachedThumbnails bounds the sizes cached per media: a client
	// asking for every size gets them computed, not stored.
	maxCachedThumbnails = 16
)

// thumbnailable are the types thumbnails are made of (the media's declared
// type; the bytes must also decode as an image).
var thumbnailable = map[string]bool{"image/jpeg": true, "image/jpg": true, "image/png": true, "image/gif": true, "image/webp": true}

type thumbSpec struct {
	width, height int
	method        string
	animated      bool
}

func parseThumbSpec(r *http.Request) (thumbSpec, error) {
	q := r.URL.Query()
	var t thumbSpec
	for _, p := range []struct {
		name string
		v    *int
	}{{"width", &t.width}, {"height", &t.height}} {
		raw := q.Get(p.name)
		if raw == "" {
			return t, httpapi.MissingParam("%s is required", p.name)
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 {
			return t, httpapi.InvalidParam("%s must be a positive integer", p.name)
		}
		*p.v = min(n, maxThumbnailSide)
	}
	t.method = q.Get("method")
	switch t.method {
	case "":
		t.method = "scale"
	case "scale", "crop":
	default:
		return t, httpapi.InvalidParam("method must be crop or scale")
	}
	switch q.Get("animated") {
	case "", "false":
	case "true":
		t.animated = true
	default:
		return t, httpapi.InvalidParam("animated must be true or false")
	}
	return t, nil
}

// thumbnail serves a thumbnail of image media: cached if made before,
// else made now.
func (s *Service) thumbnail(r *http.Request) httpapi.Response {
	t, err := parseThumbSpec(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	m, err := s.lookup(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	if !thumbnailable[m.ContentType] {
		return httpapi.Fail(httpapi.BadRequest("cannot make a thumbnail of %s media", m.ContentType))
	}
	ctx := r.Context()
	// An animated thumbnail: GIFs are served whole, since frames are not
	// resampled here; the spec allows the original in place of a thumbnail.
	if t.animated && m.ContentType == "image/gif" {
		return s.original(r, m)
	}
	if th, err := s.DB.R().MediaThumbnail(ctx, m.MediaID, t.width, t.height, t.method); err == nil {
		return thumbResponse(th)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return httpapi.Fail(err)
	}
	th, small, err := s.makeThumbnail(r, m, t)
	if err != nil {
		return httpapi.Fail(err)
	}
	if small {
		return s.original(r, m)
	}
	err = s.DB.Write(ctx, func(q Store) error {
		if n, err := q.CountThumbnails(ctx, m.MediaID); err != nil || n >= maxCachedThumbnails {
			return err
		}
		return q.AddThumbnail(ctx, m.MediaID, th)
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	return thumbResponse(th)
}

func thumbResponse(th storage.Thumbnail) httpapi.Response {
	name := "thumbnail.jpg"
	if th.ContentType == "image/png" {
		name = "thumbnail.png"
	}
	h := safeHeaders(th.ContentType, name)
	h.Set("Content-Length", strconv.Itoa(len(th.Data)))
	return httpapi.Response{Code: http.StatusOK, Header: h, Stream: func(w io.Writer) error {
		_, err := w.Write(th.Data)
		return err
	}}
}

// original serves the media itself in place of a thumbnail.
func (s *Service) original(r *http.Request, m storage.Media) httpapi.Response {
	body, err := s.Store.Open(r.Context(), m)
	if err != nil {
		return httpapi.Fail(err)
	}
	h := safeHeaders(m.ContentType, "thumbnail")
	h.Set("Content-Length", strconv.FormatInt(m.Size, 10))
	return httpapi.Response{Code: http.StatusOK, Header: h, Stream: func(w io.Writer) error {
		defer body.Close()
		_, err := io.Copy(w, body)
		return err
	}}
}

// makeThumbnail decodes the media's image and resamples it. It reports
// small when the image already fits the requested size (it is not
// enlarged; the original serves).
func (s *Service) makeThumbnail(r *http.Request, m storage.Media, t thumbSpec) (storage.Thumbnail, bool, error) {
	cannot := httpapi.BadRequest("cannot make a thumbnail of this media")
	open := func() (io.ReadCloser, error) { return s.Store.Open(r.Context(), m) }
	f, err := open()
	if err != nil {
		return storage.Thumbnail{}, false, err
	}
	cfg, format, err := image.DecodeConfig(f)
	f.Close()
	if err != nil {
		return storage.Thumbnail{}, false, cannot
	}
	if cfg.Width < 1 || cfg.Height < 1 || int64(cfg.Width)*int64(cfg.Height) > maxSourcePixels {
		return storage.Thumbnail{}, false, httpapi.BadRequest("image too large to make a thumbnail of")
	}
	if cfg.Width <= t.width && cfg.Height <= t.height {
		return storage.Thumbnail{}, true, nil
	}
	f, err = open()
	if err != nil {
		return storage.Thumbnail{}, false, err
	}
	src, _, err := image.Decode(f)
	f.Close()
	if err != nil {
		return storage.Thumbnail{}, false, cannot
	}
	dst := resample(src, t)
	var buf bytes.Buffer
	th := storage.Thumbnail{Width: t.width, Height: t.height, Method: t.method}
	// PNG keeps transparency (PNG and GIF sources); photographs go to JPEG.
	if format == "png" || format == "gif" {
		th.ContentType, err = "image/png", (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, dst)
	} else {
		th.ContentType, err = "image/jpeg", jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 85})
	}
	if err != nil {
		return storage.Thumbnail{}, false, err
	}
	th.Data = buf.Bytes()
	return th, false, nil
}

// resample scales src to fit within the requested box (scale) or to fill
// it exactly, cutting off what overflows around the centre (crop).
func resample(src image.Image, t thumbSpec) image.Image {
	b := src.Bounds()
	sw, sh := b.Dx(), b.Dy()
	if t.method == "crop" {
		// Take the largest centred region of the requested aspect ratio.
		cw, ch := sw, sw*t.height/t.width
		if ch > sh {
			cw, ch = sh*t.width/t.height, sh
		}
		cw, ch = max(cw, 1), max(ch, 1)
		x0, y0 := b.Min.X+(sw-cw)/2, b.Min.Y+(sh-ch)/2
		w, h := min(t.width, cw), min(t.height, ch)
		dst := image.NewRGBA(image.Rect(0, 0, w, h))
		xdraw.BiLinear.Scale(dst, dst.Bounds(), src, image.Rect(x0, y0, x0+cw, y0+ch), draw.Src, nil)
		return dst
	}
	w, h := t.width, sh*t.width/sw
	if h > t.height {
		w, h = sw*t.height/sh, t.height
	}
	w, h = max(w, 1), max(h, 1)
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	xdraw.BiLinear.Scale(dst, dst.Bounds(), src, b, draw.Src, nil)
	return dst
}

var _ = gif.Decode // registers the GIF decoder
