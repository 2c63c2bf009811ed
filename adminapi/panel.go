package adminapi

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/gorilla/mux"
)

// The admin panel: static files embedded in the binary, talking to the
// admin API with the access token it keeps in sessionStorage.
//
//go:embed panel
var panelFiles embed.FS

// panelCSP allows the panel's own script and style and its API calls to
// this origin, and nothing else: no inline script, no other origin.
const panelCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

func (a *API) registerPanel(r *mux.Router) {
	sub, _ := fs.Sub(panelFiles, "panel")
	files := http.StripPrefix("/admin/", http.FileServerFS(sub))
	r.Handle("/admin", http.RedirectHandler("/admin/", http.StatusFound)).Methods("GET")
	r.PathPrefix("/admin/").Methods("GET").Handler(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", panelCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		files.ServeHTTP(w, req)
	}))
}
