// Package mediaapi is the media repository: uploads (direct and
// asynchronous), authenticated downloads, thumbnails and, when the operator
// allows it, URL previews. Bytes live in the instance's SQLite file in
// fixed-size chunks, or in a directory when media.path is set.
package mediaapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/internal/shred"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/media"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
)

// Store is the part of storage.Q the media endpoints uses: what it reads
// and writes.
type Store interface {
	AbandonMediaUpload(ctx context.Context, mediaID string) error
	AddThumbnail(ctx context.Context, mediaID string, t storage.Thumbnail) error
	CountPendingMedia(ctx context.Context, userID string, now int64) (int, error)
	CountThumbnails(ctx context.Context, mediaID string) (int, error)
	CreateMedia(ctx context.Context, m storage.Media) error
	FinishMedia(ctx context.Context, mediaID string, size int64, sha256 string) error
	InterruptedUploads(ctx context.Context) ([]storage.Media, error)
	Media(ctx context.Context, mediaID string) (storage.Media, error)
	MediaThumbnail(ctx context.Context, mediaID string, width, height int, method string) (storage.Thumbnail, error)
	StartMediaUpload(ctx context.Context, mediaID, contentType, filename string, inDir bool) (bool, error)
}

var _ Store = storage.Q{}

// Service serves the media endpoints.
type Service struct {
	Cfg *config.Config
	DB  storage.View[Store]
	Now func() time.Time
	// Store keeps the bytes.
	Store *media.Store

	mu      sync.Mutex
	waiting map[string]chan struct{} // media ID -> closed when its upload ends
}

const (
	// pendingLifetime is how long media created by /create waits for bytes.
	pendingLifetime = 24 * time.Hour
	// maxPending bounds a user's reservations that still wait for bytes.
	maxPending = 10
	// maxWait bounds how long a download waits for media still uploading.
	maxWait = 2 * time.Minute
)

var (
	notYetUploaded  = &httpapi.Error{Kind: matrixerr.KindGatewayTimeout, Code: "M_NOT_YET_UPLOADED", Message: "the media has not been uploaded yet"}
	cannotOverwrite = &httpapi.Error{Kind: matrixerr.KindConflict, Code: "M_CANNOT_OVERWRITE_MEDIA", Message: "media already uploaded"}
)

// Register adds the media routes. upload is the API whose body limit is
// media.max_upload_size.
func (s *Service) Register(r *mux.Router, h, upload *httpapi.API) {
	authed := httpapi.Routes{R: r, API: h}.Authed
	uploads := httpapi.Routes{R: r, API: upload}.Authed
	const v1 = "/_matrix/client/v1/media"
	authed(v1+"/config", s.config, "GET")
	authed("/_matrix/media/v3/config", s.config, "GET")
	uploads("/_matrix/media/v3/upload", s.upload, "POST")
	authed("/_matrix/media/v1/create", s.create, "POST")
	uploads("/_matrix/media/v3/upload/{serverName}/{mediaId}", s.uploadTo, "PUT")
	authed(v1+"/download/{serverName}/{mediaId}", s.downloadAuthed, "GET")
	authed(v1+"/download/{serverName}/{mediaId}/{fileName}", s.downloadAuthed, "GET")
	authed(v1+"/thumbnail/{serverName}/{mediaId}", s.thumbnailAuthed, "GET")
	authed(v1+"/preview_url", s.previewURL, "GET")
	authed("/_matrix/media/v3/preview_url", s.previewURL, "GET")
	// The unauthenticated endpoints of before spec v1.11: off unless the
	// operator keeps them, answering 404 M_NOT_FOUND as the spec suggests.
	public := httpapi.Routes{R: r, API: h}.Public
	public("/_matrix/media/v3/download/{serverName}/{mediaId}", s.legacy(s.download), "GET")
	public("/_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}", s.legacy(s.download), "GET")
	public("/_matrix/media/v3/thumbnail/{serverName}/{mediaId}", s.legacy(s.thumbnail), "GET")
}

func (s *Service) config(*http.Request, *httpapi.Device) httpapi.Response {
	return httpapi.OK(map[string]any{"m.upload.size": int64(s.Cfg.Media.MaxUploadSize)})
}

func (s *Service) mxc(mediaID string) string {
	return "mxc://" + s.Cfg.ServerName + "/" + mediaID
}

// upload is POST /upload: the bytes arrive with the request.
func (s *Service) upload(r *http.Request, dev *httpapi.Device) httpapi.Response {
	if err := s.checkLength(r); err != nil {
		return httpapi.Fail(err)
	}
	m := storage.Media{MediaID: rooms.RandomID(24), Uploader: dev.UserID, ContentType: contentType(r),
		Filename: r.URL.Query().Get("filename"), CreatedTS: s.Now().UnixMilli(), State: storage.MediaUploading,
		InDir: s.Cfg.Media.Path != ""}
	err := s.DB.Write(r.Context(), func(q Store) error { return q.CreateMedia(r.Context(), m) })
	if err != nil {
		return httpapi.Fail(err)
	}
	if err := s.receive(r, m); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]string{"content_uri": s.mxc(m.MediaID)})
}

// create is POST /create: a media ID whose bytes come later.
func (s *Service) create(r *http.Request, dev *httpapi.Device) httpapi.Response {
	now := s.Now()
	m := storage.Media{MediaID: rooms.RandomID(24), Uploader: dev.UserID, ContentType: "application/octet-stream",
		CreatedTS: now.UnixMilli(), State: storage.MediaPending, ExpiresTS: now.Add(pendingLifetime).UnixMilli()}
	err := s.DB.Write(r.Context(), func(q Store) error {
		n, err := q.CountPendingMedia(r.Context(), dev.UserID, now.UnixMilli())
		if err != nil {
			return err
		}
		if n >= maxPending {
			return &httpapi.Error{Kind: matrixerr.KindRateLimited, Code: spec.ErrorLimitExceeded,
				Message: fmt.Sprintf("at most %d uploads may wait for their bytes", maxPending)}
		}
		return q.CreateMedia(r.Context(), m)
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"content_uri": s.mxc(m.MediaID), "unused_expires_at": m.ExpiresTS})
}

// uploadTo is PUT /upload/{serverName}/{mediaId}: the bytes of media
// reserved by /create, by the user who reserved it, once.
func (s *Service) uploadTo(r *http.Request, dev *httpapi.Device) httpapi.Response {
	vars := mux.Vars(r)
	if vars["serverName"] != s.Cfg.ServerName {
		return httpapi.Fail(httpapi.NotFound("unknown media"))
	}
	if err := s.checkLength(r); err != nil {
		return httpapi.Fail(err)
	}
	ctx := r.Context()
	var m storage.Media
	err := s.DB.Write(ctx, func(q Store) error {
		var err error
		m, err = q.Media(ctx, vars["mediaId"])
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return httpapi.NotFound("unknown media")
		case err != nil:
			return err
		case m.Uploader != dev.UserID:
			return httpapi.Forbidden("this media was created by another user")
		case m.State != storage.MediaPending:
			return cannotOverwrite
		case m.ExpiresTS <= s.Now().UnixMilli():
			return httpapi.NotFound("the upload has expired")
		}
		m.ContentType, m.Filename, m.InDir = contentType(r), r.URL.Query().Get("filename"), s.Cfg.Media.Path != ""
		ok, err := q.StartMediaUpload(ctx, m.MediaID, m.ContentType, m.Filename, m.InDir)
		if err == nil && !ok {
			return cannotOverwrite
		}
		return err
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	if err := s.receive(r, m); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(httpapi.Empty)
}

// checkLength refuses a body announced as too large before reading any of it.
func (s *Service) checkLength(r *http.Request) error {
	if r.ContentLength > int64(s.Cfg.Media.MaxUploadSize) {
		return httpapi.TooLarge("the file is larger than %d bytes", int64(s.Cfg.Media.MaxUploadSize))
	}
	return nil
}

// receive stores the request body as m's bytes and marks m ready; on any
// failure nothing of the body stays stored.
func (s *Service) receive(r *http.Request, m storage.Media) error {
	defer s.wake(m.MediaID)
	size, hash, err := s.Store.Put(r.Context(), m, r.Body)
	if err == nil {
		err = s.DB.Write(context.WithoutCancel(r.Context()), func(q Store) error {
			return q.FinishMedia(r.Context(), m.MediaID, size, hash)
		})
	}
	if err != nil {
		s.discard(context.WithoutCancel(r.Context()), m)
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return httpapi.TooLarge("the file is larger than %d bytes", int64(s.Cfg.Media.MaxUploadSize))
		}
		return err
	}
	return nil
}

// discard removes a failed upload's bytes.
func (s *Service) discard(ctx context.Context, m storage.Media) {
	if m.InDir {
		_ = s.Store.RemoveFile(m.MediaID)
	}
	_ = s.DB.Write(ctx, func(q Store) error { return q.AbandonMediaUpload(ctx, m.MediaID) })
}

// RecoverUploads cleans up uploads that a stop cut off: run at start-up.
func (s *Service) RecoverUploads(ctx context.Context) error {
	cut, err := s.DB.R().InterruptedUploads(ctx)
	for _, m := range cut {
		s.discard(ctx, m)
	}
	if s.Cfg.Media.Path != "" {
		partial, _ := filepath.Glob(filepath.Join(s.Cfg.Media.Path, "*", ".upload-*"))
		for _, f := range partial {
			_, _ = shred.File(f)
		}
	}
	return err
}

func contentType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if _, _, err := mime.ParseMediaType(ct); err != nil || ct == "" {
		return "application/octet-stream"
	}
	return ct
}

// waitReady returns m once it is ready, waiting up to the request's
// timeout_ms (20 s by default) for media still being uploaded.
func (s *Service) waitReady(r *http.Request, m storage.Media) (storage.Media, error) {
	timeout := 20 * time.Second
	if v := r.URL.Query().Get("timeout_ms"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			return m, httpapi.InvalidParam("timeout_ms must be a non-negative integer")
		}
		timeout = min(time.Duration(ms)*time.Millisecond, maxWait)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for m.State != storage.MediaReady {
		if m.State == storage.MediaPending && m.ExpiresTS <= s.Now().UnixMilli() {
			return m, httpapi.NotFound("unknown media")
		}
		ch := s.waiter(m.MediaID)
		var err error
		// Read again after registering, so a finish in between is not missed.
		if m, err = s.DB.R().Media(r.Context(), m.MediaID); err != nil || m.State == storage.MediaReady {
			return m, err
		}
		select {
		case <-ch:
		case <-deadline.C:
			return m, notYetUploaded
		case <-r.Context().Done():
			return m, r.Context().Err()
		}
		if m, err = s.DB.R().Media(r.Context(), m.MediaID); err != nil {
			return m, err
		}
	}
	return m, nil
}

func (s *Service) waiter(mediaID string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting == nil {
		s.waiting = map[string]chan struct{}{}
	}
	ch := s.waiting[mediaID]
	if ch == nil {
		ch = make(chan struct{})
		s.waiting[mediaID] = ch
	}
	return ch
}

func (s *Service) wake(mediaID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch := s.waiting[mediaID]; ch != nil {
		close(ch)
		delete(s.waiting, mediaID)
	}
}

// lookup finds the media a download or thumbnail request names.
func (s *Service) lookup(r *http.Request) (storage.Media, error) {
	vars := mux.Vars(r)
	if vars["serverName"] != s.Cfg.ServerName {
		// No federation: media of other servers is never here.
		return storage.Media{}, httpapi.NotFound("unknown media")
	}
	m, err := s.DB.R().Media(r.Context(), vars["mediaId"])
	if errors.Is(err, storage.ErrNotFound) || (err == nil && m.QuarantinedBy != "") {
		return m, httpapi.NotFound("unknown media") // quarantined media is as gone
	}
	if err != nil {
		return m, err
	}
	return s.waitReady(r, m)
}

func (s *Service) legacy(h httpapi.Handler) httpapi.Handler {
	return func(r *http.Request) httpapi.Response {
		if !s.Cfg.Media.LegacyUnauthenticated {
			return httpapi.Fail(httpapi.NotFound("unauthenticated media endpoints are off: use /_matrix/client/v1/media"))
		}
		return h(r)
	}
}

func (s *Service) downloadAuthed(r *http.Request, _ *httpapi.Device) httpapi.Response {
	return s.download(r)
}

func (s *Service) thumbnailAuthed(r *http.Request, _ *httpapi.Device) httpapi.Response {
	return s.thumbnail(r)
}

// download streams media's bytes, chunk by chunk.
func (s *Service) download(r *http.Request) httpapi.Response {
	m, err := s.lookup(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	name := m.Filename
	if fn, ok := mux.Vars(r)["fileName"]; ok {
		name = fn
	}
	body, err := s.Store.Open(r.Context(), m)
	if err != nil {
		return httpapi.Fail(err)
	}
	h := safeHeaders(m.ContentType, name)
	h.Set("Content-Length", strconv.FormatInt(m.Size, 10))
	return httpapi.Response{Code: http.StatusOK, Header: h, Stream: func(w io.Writer) error {
		defer body.Close()
		_, err := io.CopyBuffer(w, body, make([]byte, 32<<10))
		return err
	}}
}

// inlineTypes are shown in a browser rather than saved: types that cannot
// run script in the server's origin.
var inlineTypes = map[string]bool{
	"text/css": true, "text/plain": true, "text/csv": true, "application/json": true, "application/ld+json": true,
	"image/jpeg": true, "image/gif": true, "image/png": true, "image/apng": true, "image/webp": true, "image/avif": true,
	"video/mp4": true, "video/webm": true, "video/ogg": true, "video/quicktime": true,
	"audio/mp4": true, "audio/webm": true, "audio/aac": true, "audio/mpeg": true, "audio/ogg": true,
	"audio/wave": true, "audio/wav": true, "audio/x-wav": true, "audio/x-pn-wav": true, "audio/flac": true, "audio/x-flac": true,
}

// safeHeaders are the headers of any media response: nothing served from
// the media repository may run in the server's origin or be sniffed into
// something that can.
func safeHeaders(contentType, filename string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", contentType)
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("Cache-Control", "private, max-age=86400")
	disposition := "attachment"
	if mt, _, err := mime.ParseMediaType(contentType); err == nil && inlineTypes[strings.ToLower(mt)] {
		disposition = "inline"
	}
	params := map[string]string{}
	if filename != "" {
		params["filename"] = filename
	}
	if v := mime.FormatMediaType(disposition, params); v != "" {
		h.Set("Content-Disposition", v)
	} else {
		h.Set("Content-Disposition", disposition)
	}
	return h
}
