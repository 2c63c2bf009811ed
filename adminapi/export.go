package adminapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/export"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/internal/shred"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/rooms"
)

// exportJob is an export the admin API runs in the background. Its
// archive waits in the instance's export directory until it is downloaded
// once, or until privacy.export_lifetime passes, or the server stops;
// then it is shredded.
type exportJob struct {
	id, path string
	status   string // running, complete, downloading, failed, downloaded or expired
	err      string
	manifest export.Manifest
	expires  time.Time
	expiry   *time.Timer
}

// ClearExports shreds exports left by an earlier run (one killed before
// it could clear them): their jobs are gone, so no one can download them.
func (a *API) ClearExports() error { return shred.Tree(a.Cfg.ExportDir(), func(string, int64) {}) }

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
	if err := os.MkdirAll(a.Cfg.ExportDir(), 0o700); err != nil {
		return httpapi.Fail(err)
	}
	job := &exportJob{id: rooms.RandomID(16), status: "running"}
	job.path = filepath.Join(a.Cfg.ExportDir(), job.id+".tar.zst")
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

// Close waits for the export jobs still running (they read the database,
// which closes after), then shreds every export not yet downloaded: after
// a restart no one could download it.
func (a *API) Close() {
	a.running.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, j := range a.exports {
		a.deleteExport(j, "expired")
	}
}

func (a *API) runExport(job *exportJob, opts export.Options) {
	ctx := context.Background()
	f, err := os.OpenFile(job.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	var m export.Manifest
	if err == nil {
		m, err = export.Write(ctx, a.DB.DB, a.Media, a.Cfg.ServerName, opts, a.Cfg.ExportDir(), f, a.Now())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		// The admin learns that it failed; the cause (with file paths)
		// goes to the log.
		a.Log.Error("export failed", "export_id", job.id, "err", err)
		job.status, job.err = "failed", "the export could not be written; the server log has the cause"
		_, _ = shred.File(job.path)
		return
	}
	lifetime := a.Cfg.Privacy.ExportLifetime.D()
	job.status, job.manifest, job.expires = "complete", m, a.Now().Add(lifetime)
	job.expiry = time.AfterFunc(lifetime, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if job.status == "complete" { // one being downloaded goes when that ends
			a.deleteExport(job, "expired")
		}
	})
}

// deleteExport shreds a job's archive; status says why it went. The
// caller holds a.mu.
func (a *API) deleteExport(job *exportJob, status string) {
	if job.status != "complete" && job.status != "downloading" {
		return
	}
	if job.expiry != nil {
		job.expiry.Stop()
	}
	if _, err := shred.File(job.path); err != nil {
		a.Log.Error("deleting an export failed", "export_id", job.id, "err", err)
	}
	job.status = status
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
	if j.status == "complete" || j.status == "downloading" {
		body["counts"] = j.manifest.Counts
		body["expires_ts"] = j.expires.UnixMilli()
		if info, err := os.Stat(j.path); err == nil {
			body["bytes"] = info.Size()
		}
	}
	return httpapi.OK(body)
}

// GET /_redoubt/admin/v1/export/{exportId}/download
//
// An archive is downloaded once: it is shredded when the download ends
// whole (a download cut off leaves it for another try).
func (a *API) downloadExport(r *http.Request, _ *httpapi.Device) httpapi.Response {
	a.mu.Lock()
	defer a.mu.Unlock()
	job, ok := a.exports[mux.Vars(r)["exportId"]]
	switch {
	case !ok:
		return httpapi.Fail(httpapi.NotFound("unknown export"))
	case job.status == "downloaded" || job.status == "expired":
		return httpapi.Fail(httpapi.NotFound("the export was " + job.status + " and deleted"))
	case job.status != "complete":
		return httpapi.Fail(&httpapi.Error{Kind: matrixerr.KindConflict, Code: "M_UNKNOWN", Message: "the export is " + job.status})
	}
	f, err := os.Open(job.path)
	if err != nil {
		return httpapi.Fail(err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return httpapi.Fail(err)
	}
	job.status = "downloading"
	h := http.Header{}
	h.Set("Content-Type", "application/zstd")
	h.Set("Content-Length", strconv.FormatInt(info.Size(), 10))
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="redoubt-export-%s.tar.zst"`, job.id))
	h.Set("X-Content-Type-Options", "nosniff")
	return httpapi.Response{Code: http.StatusOK, Header: h, Stream: func(w io.Writer) error {
		// Not sendfile (which io.Copy would use): it hands the kernel the
		// file's pages, and the shredding below would zero them before
		// they are sent.
		_, err := io.Copy(struct{ io.Writer }{w}, f)
		f.Close()
		a.mu.Lock()
		defer a.mu.Unlock()
		if err != nil {
			job.status = "complete"
			if a.Now().After(job.expires) {
				a.deleteExport(job, "expired")
			}
			return err
		}
		a.deleteExport(job, "downloaded")
		return nil
	}}
}
