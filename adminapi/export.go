package adminapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/export"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/internal/shred"
	"github.com/redoubt-systems/redoubt/rooms"
)

// exportJob is an export the admin API runs in the background; the
// archive waits in the instance's exports directory until the server
// stops (it is removed at the next start).
type exportJob struct {
	id, path string
	status   string // running, complete or failed
	err      string
	manifest export.Manifest
}

// ExportDir is where exports started through the API are kept.
func (a *API) ExportDir() string { return filepath.Join(filepath.Dir(a.Cfg.Database), "exports") }

// ClearExports shreds exports left by an earlier run.
func (a *API) ClearExports() error { return shred.Tree(a.ExportDir(), func(string, int64) {}) }

// POST /_redoubt/admin/v1/export {"user_id"?, "include_secrets"?}
func (a *API) startExport(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		UserID         string `json:"user_id"`
		IncludeSecrets bool   `json:"include_secrets"`
	}
	if err := decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.UserID != "" {
		if ok, err := a.DB.R().UserExists(r.Context(), req.UserID); err != nil || !ok {
			if err == nil {
				err = httpapi.NotFound("unknown user")
			}
			return httpapi.Fail(err)
		}
	}
	if err := os.MkdirAll(a.ExportDir(), 0o700); err != nil {
		return httpapi.Fail(err)
	}
	job := &exportJob{id: rooms.RandomID(16), status: "running"}
	job.path = filepath.Join(a.ExportDir(), job.id+".tar.zst")
	a.mu.Lock()
	if a.exports == nil {
		a.exports = map[string]*exportJob{}
	}
	a.exports[job.id] = job
	a.mu.Unlock()
	target := map[bool]string{true: req.UserID, false: "instance"}[req.UserID != ""]
	if err := a.record(r.Context(), dev, "export", target, fmt.Sprintf("include_secrets=%v", req.IncludeSecrets)); err != nil {
		return httpapi.Fail(err)
	}
	a.running.Go(func() { a.runExport(job, export.Options{UserID: req.UserID, IncludeSecrets: req.IncludeSecrets}) })
	return httpapi.OK(map[string]string{"export_id": job.id, "status": "running"})
}

// Close waits for the export jobs still running: they read the database,
// which closes after.
func (a *API) Close() { a.running.Wait() }

func (a *API) runExport(job *exportJob, opts export.Options) {
	ctx := context.Background()
	f, err := os.OpenFile(job.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	var m export.Manifest
	if err == nil {
		m, err = export.Write(ctx, a.DB, a.Media, a.Cfg.ServerName, opts, a.ExportDir(), f, a.Now())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		job.status, job.err = "failed", err.Error()
		_, _ = shred.File(job.path)
		return
	}
	job.status, job.manifest = "complete", m
}

func (a *API) job(r *http.Request) (exportJob, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	j, ok := a.exports[mux.Vars(r)["exportId"]]
	if !ok {
		return exportJob{}, httpapi.NotFound("unknown export")
	}
	return *j, nil
}

// GET /_redoubt/admin/v1/export/{exportId}
func (a *API) exportStatus(r *http.Request, _ *httpapi.Device) httpapi.Response {
	j, err := a.job(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	body := map[string]any{"export_id": j.id, "status": j.status}
	if j.err != "" {
		body["error"] = j.err
	}
	if j.status == "complete" {
		body["counts"] = j.manifest.Counts
		if info, err := os.Stat(j.path); err == nil {
			body["bytes"] = info.Size()
		}
	}
	return httpapi.OK(body)
}

// GET /_redoubt/admin/v1/export/{exportId}/download
func (a *API) downloadExport(r *http.Request, _ *httpapi.Device) httpapi.Response {
	j, err := a.job(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	if j.status != "complete" {
		return httpapi.Fail(&httpapi.Error{Status: http.StatusConflict, Code: "M_UNKNOWN", Message: "the export is " + j.status})
	}
	f, err := os.Open(j.path)
	if err != nil {
		return httpapi.Fail(err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return httpapi.Fail(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/zstd")
	h.Set("Content-Length", strconv.FormatInt(info.Size(), 10))
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="redoubt-export-%s.tar.zst"`, j.id))
	h.Set("X-Content-Type-Options", "nosniff")
	return httpapi.Response{Code: http.StatusOK, Header: h, Stream: func(w io.Writer) error {
		defer f.Close()
		_, err := io.Copy(w, f)
		return err
	}}
}
