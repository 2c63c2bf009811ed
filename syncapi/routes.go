package syncapi

import (
	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/httpapi"
)

// The sync API's routes.

// Register adds the sync routes.
func (s *Service) Register(r *mux.Router, h *httpapi.API) {
	authed := httpapi.Routes{R: r, API: h}.Authed
	const c = "/_matrix/client/v3"
	authed(c+"/sync", s.sync, "GET")
	authed(slidingPath, s.slidingSync, "POST")
	authed(c+"/rooms/{roomId}/typing/{userId}", s.putTyping, "PUT")
	authed(c+"/rooms/{roomId}/receipt/{receiptType}/{eventId}", s.postReceipt, "POST")
	authed(c+"/rooms/{roomId}/read_markers", s.postReadMarkers, "POST")
	authed(c+"/presence/{userId}/status", s.getPresence, "GET")
	authed(c+"/presence/{userId}/status", s.putPresence, "PUT")
	authed(c+"/notifications", s.notifications, "GET")
}
