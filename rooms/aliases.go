package rooms

import (
	"context"
	"errors"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// checkAlias accepts only well-formed aliases of this server.
func (s *Service) checkAlias(alias string) error {
	local, server, ok := strings.Cut(strings.TrimPrefix(alias, "#"), ":")
	if !strings.HasPrefix(alias, "#") || !ok || local == "" || strings.ContainsAny(local, " \t\n") {
		return httpapi.InvalidParam("%q is not a room alias", alias)
	}
	if server != string(s.ServerName) {
		return httpapi.InvalidParam("alias must be on this server (%s)", s.ServerName)
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
			return httpapi.NotFound("unknown room")
		} else if err != nil {
			return err
		}
		if m, _, err := q.Membership(ctx, roomID, userID); err != nil {
			return err
		} else if m != spec.Join {
			return httpapi.Forbidden("you are not in this room")
		}
		err := q.SetAlias(ctx, alias, roomID, userID)
		if errors.Is(err, storage.ErrConflict) {
			return httpapi.Conflict("room alias %s already exists", alias)
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
		return "", httpapi.NotFound("room alias %s not found", alias)
	}
	return roomID, err
}

// DeleteAlias removes an alias: its creator may, and so may anyone who could
// change the room's canonical alias.
func (s *Service) DeleteAlias(ctx context.Context, dev *httpapi.Device, alias string) error {
	if err := s.checkAlias(alias); err != nil {
		return err
	}
	return s.DB.Write(ctx, func(q storage.Q) error {
		roomID, creator, err := q.Alias(ctx, alias)
		if errors.Is(err, storage.ErrNotFound) {
			return httpapi.NotFound("room alias %s not found", alias)
		}
		if err != nil {
			return err
		}
		if creator != dev.UserID && !dev.IsAdmin {
			ok, err := s.canSendState(ctx, q, roomID, dev.UserID, spec.MRoomCanonicalAlias)
			if err != nil {
				return err
			}
			if !ok {
				return httpapi.Forbidden("you may not remove this alias")
			}
		}
		return q.DeleteAlias(ctx, alias)
	})
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
