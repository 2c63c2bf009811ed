package syncapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// The presence stream: the presence of those who share a room with the
// syncing user, and the endpoints that read and set it.

// presence adds the presence of users who share a room with the syncing user.
func (b *builder) presence() error {
	delete(b.newlyShared, b.dev.UserID)
	if !b.s.Cfg.Presence.Enabled || (b.since.Presence == b.to.Presence && len(b.newlyShared) == 0) ||
		!b.req.filter.Presence.AllowsType("m.presence") {
		return nil
	}
	// Only changes of users the user shares a room with (or its own).
	var changes []storage.Presence
	if b.since.Presence < b.to.Presence {
		var err error
		if changes, err = b.q.PresenceBetween(b.ctx, b.since.Presence, b.to.Presence, b.dev.UserID); err != nil {
			return err
		}
	}
	// Someone who came to share a room with the user is told of as they
	// are now, changed or not: the client has never seen them.
	sent := map[string]bool{}
	for u := range b.newlyShared {
		p, err := b.q.GetPresence(b.ctx, u)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		} else if err != nil {
			return err
		}
		changes = append(changes, p)
	}
	now := b.s.Now().UnixMilli()
	for _, p := range changes {
		if sent[p.UserID] || !b.req.filter.Presence.Allows("m.presence", p.UserID) {
			continue
		}
		sent[p.UserID] = true
		ev, _ := json.Marshal(map[string]any{"type": "m.presence", "sender": p.UserID, "content": presenceContent(p, now)})
		b.res.Presence.Events = append(b.res.Presence.Events, ev)
	}
	if len(b.res.Presence.Events) > 0 {
		b.empty = false
	}
	return nil
}

func presenceContent(p storage.Presence, now int64) map[string]any {
	c := map[string]any{"presence": p.State, "last_active_ago": max(now-p.LastActiveTS, 0),
		"currently_active": p.State == "online" && now-p.LastActiveTS < 5*60*1000}
	if p.StatusMsg != "" {
		c["status_msg"] = p.StatusMsg
	}
	return c
}

// GET /_matrix/client/v3/presence/{userId}/status
func (s *Service) getPresence(r *http.Request, dev *httpapi.Device) httpapi.Response {
	userID := mux.Vars(r)["userId"]
	ctx := r.Context()
	if exists, err := s.DB.R().UserExists(ctx, userID); err != nil {
		return httpapi.Fail(err)
	} else if !exists {
		return httpapi.Fail(httpapi.NotFound("unknown user"))
	}
	if userID != dev.UserID {
		sharing, err := s.DB.R().UsersSharingRoomsAmong(ctx, dev.UserID, []string{userID})
		if err != nil {
			return httpapi.Fail(err)
		}
		if !sharing[userID] {
			return httpapi.Fail(httpapi.Forbidden("you share no room with this user"))
		}
	}
	p, err := s.DB.R().GetPresence(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) || !s.Cfg.Presence.Enabled {
		return httpapi.OK(map[string]any{"presence": "offline"})
	}
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(presenceContent(p, s.Now().UnixMilli()))
}

// PUT /_matrix/client/v3/presence/{userId}/status
func (s *Service) putPresence(r *http.Request, dev *httpapi.Device) httpapi.Response {
	if mux.Vars(r)["userId"] != dev.UserID {
		return httpapi.Fail(httpapi.Forbidden("you may only set your own presence"))
	}
	var req struct {
		Presence  string  `json:"presence"`
		StatusMsg *string `json:"status_msg"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	switch req.Presence {
	case "online", "offline", "unavailable":
	case "":
		return httpapi.Fail(httpapi.MissingParam("presence is required"))
	default:
		return httpapi.Fail(httpapi.InvalidParam("presence must be online, offline or unavailable"))
	}
	msg := ""
	if req.StatusMsg != nil {
		msg = *req.StatusMsg
	}
	if len(msg) > 1024 {
		return httpapi.Fail(httpapi.InvalidParam("status_msg is limited to 1024 bytes"))
	}
	return httpapi.EmptyOr(s.setPresence(r.Context(), dev.UserID, req.Presence, msg, true))
}

func (s *Service) setPresence(ctx context.Context, userID, state, msg string, touch bool) error {
	if !s.Cfg.Presence.Enabled {
		return nil
	}
	var changed bool
	err := s.DB.Write(ctx, func(q Store) error {
		var err error
		changed, err = q.SetPresence(ctx, storage.Presence{UserID: userID, State: state, StatusMsg: msg, LastActiveTS: s.Now().UnixMilli()}, touch)
		return err
	})
	if err != nil || !changed {
		return err
	}
	sharing, err := s.DB.R().UsersSharingRooms(ctx, userID)
	if err != nil {
		return err
	}
	s.wake(sharing)
	return nil
}
