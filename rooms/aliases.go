package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/caller"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/storage"
)

// checkAlias accepts only well-formed aliases of this server.
func (s *Service) checkAlias(alias string) error {
	local, server, ok := strings.Cut(strings.TrimPrefix(alias, "#"), ":")
	if !strings.HasPrefix(alias, "#") || !ok || local == "" || strings.ContainsAny(local, " \t\n") {
		return matrixerr.InvalidParam("%q is not a room alias", alias)
	}
	if server != string(s.ServerName) {
		return matrixerr.InvalidParam("alias must be on this server (%s)", s.ServerName)
	}
	return nil
}

// AddAlias maps an alias to a room the user is joined to.
func (s *Service) AddAlias(ctx context.Context, userID, alias, roomID string) error {
	if err := s.checkAlias(alias); err != nil {
		return err
	}
	return s.DB.Write(ctx, func(q storage.Q) error {
		if _, err := q.Room(ctx, roomID); errors.Is(err, storage.ErrNotFound) {
			return matrixerr.NotFound("unknown room")
		} else if err != nil {
			return err
		}
		if m, _, err := q.Membership(ctx, roomID, userID); err != nil {
			return err
		} else if m != spec.Join {
			return matrixerr.Forbidden("you are not in this room")
		}
		err := q.SetAlias(ctx, alias, roomID, userID)
		if errors.Is(err, storage.ErrConflict) {
			return matrixerr.Conflict("room alias %s already exists", alias)
		}
		return err
	})
}

// Alias resolves a local alias.
func (s *Service) Alias(ctx context.Context, alias string) (string, error) {
	if err := s.checkAlias(alias); err != nil {
		return "", err
	}
	roomID, _, err := s.DB.R().Alias(ctx, alias)
	if errors.Is(err, storage.ErrNotFound) {
		return "", matrixerr.NotFound("room alias %s not found", alias)
	}
	return roomID, err
}

// DeleteAlias removes an alias: its creator may, and so may anyone who could
// change the room's canonical alias. If the room's canonical alias event
// names it, the alias is taken out of it too (by the same user, if their
// power allows), so that clients stop showing an alias that is gone.
func (s *Service) DeleteAlias(ctx context.Context, dev *caller.Device, alias string) error {
	if err := s.checkAlias(alias); err != nil {
		return err
	}
	return s.write(ctx, func(w *writer) error {
		q := w.q
		roomID, creator, err := q.Alias(ctx, alias)
		if errors.Is(err, storage.ErrNotFound) {
			return matrixerr.NotFound("room alias %s not found", alias)
		}
		if err != nil {
			return err
		}
		mayChange, err := s.canSendState(ctx, q, roomID, dev.UserID, spec.MRoomCanonicalAlias)
		if err != nil {
			return err
		}
		if creator != dev.UserID && !dev.IsAdmin && !mayChange {
			return matrixerr.Forbidden("you may not remove this alias")
		}
		if err := q.DeleteAlias(ctx, alias); err != nil {
			return err
		}
		if !mayChange {
			return nil
		}
		return w.dropCanonicalAlias(roomID, dev.UserID, alias)
	})
}

// dropCanonicalAlias sends a new m.room.canonical_alias without alias, if
// the current one names it.
func (w *writer) dropCanonicalAlias(roomID, sender, alias string) error {
	cur, err := w.q.CurrentStateEvent(w.ctx, roomID, spec.MRoomCanonicalAlias, "")
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	var content map[string]any
	if err := json.Unmarshal([]byte(gjson.GetBytes(cur.JSON, "content").Raw), &content); err != nil || content == nil {
		return nil
	}
	changed := false
	if content["alias"] == alias {
		delete(content, "alias")
		changed = true
	}
	if alt, ok := content["alt_aliases"].([]any); ok {
		kept := alt[:0:0]
		for _, a := range alt {
			if a != alias {
				kept = append(kept, a)
			}
		}
		if len(kept) != len(alt) {
			changed = true
			if len(kept) == 0 {
				delete(content, "alt_aliases")
			} else {
				content["alt_aliases"] = kept
			}
		}
	}
	if !changed {
		return nil
	}
	room, err := w.room(roomID)
	if err != nil {
		return err
	}
	b, err := json.Marshal(content)
	if err != nil {
		return err
	}
	empty := ""
	_, err = w.append(room, Event{Sender: sender, Type: spec.MRoomCanonicalAlias, StateKey: &empty, Content: b})
	return err
}

// canSendState reports whether a joined user's power level suffices for a
// state event type.
func (s *Service) canSendState(ctx context.Context, q storage.Q, roomID, userID, typ string) (bool, error) {
	if m, _, err := q.Membership(ctx, roomID, userID); err != nil || m != spec.Join {
		return false, err
	}
	room, err := q.Room(ctx, roomID)
	if err != nil {
		return false, err
	}
	level, pl, err := PowerOf(ctx, q, &room, userID)
	if err != nil {
		return false, err
	}
	return level >= pl.EventLevel(typ, true), nil
}

// RoomAliases lists a room's local aliases to a user who may read the room.
func (s *Service) RoomAliases(ctx context.Context, userID, roomID string) ([]string, error) {
	var out []string
	err := s.DB.Read(ctx, func(q storage.Q) error {
		if _, err := s.readableViewer(ctx, q, roomID, userID); err != nil {
			return err
		}
		var err error
		out, err = q.RoomAliases(ctx, roomID)
		return err
	})
	return out, err
}
