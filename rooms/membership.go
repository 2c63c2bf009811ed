package rooms

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/storage"
)

// RandomID returns n random letters, for room IDs.
func RandomID(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

func memberContent(membership string, profile storage.User, reason string) map[string]any {
	c := map[string]any{"membership": membership}
	if profile.DisplayName != "" {
		c["displayname"] = profile.DisplayName
	}
	if profile.AvatarURL != "" {
		c["avatar_url"] = profile.AvatarURL
	}
	if reason != "" {
		c["reason"] = reason
	}
	return c
}

// checkLocalUser accepts only existing users of this server: there is no
// federation to reach anyone else.
func (s *Service) checkLocalUser(ctx context.Context, userID string) error {
	uid, err := spec.NewUserID(userID, true)
	if err != nil {
		return matrixerr.InvalidParam("%q is not a user ID", userID)
	}
	if uid.Domain() != s.ServerName {
		return matrixerr.Forbidden("this server does not federate: %s is on another server", userID)
	}
	u, err := s.DB.R().User(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && u.Deactivated) {
		return matrixerr.NotFound("unknown user %s", userID)
	}
	return err
}

// ResolveRoom accepts a room ID or a local alias.
func (s *Service) ResolveRoom(ctx context.Context, idOrAlias string) (string, error) {
	switch {
	case strings.HasPrefix(idOrAlias, "!"):
		return idOrAlias, nil
	case strings.HasPrefix(idOrAlias, "#"):
		roomID, _, err := s.DB.R().Alias(ctx, idOrAlias)
		if errors.Is(err, storage.ErrNotFound) {
			return "", matrixerr.NotFound("unknown room alias")
		}
		return roomID, err
	}
	return "", matrixerr.InvalidParam("%q is neither a room ID nor an alias", idOrAlias)
}

// Join joins a user to a room; joining a room one is already in changes
// nothing. extra is what else the client put in its request body: it goes
// into the member event's content, as Synapse does, under the fields the
// server sets itself.
func (s *Service) Join(ctx context.Context, roomID, userID, reason string, extra map[string]json.RawMessage) error {
	return s.write(ctx, func(w *writer) error {
		if err := w.open(roomID); err != nil {
			return err
		}
		room, err := w.room(roomID)
		if err != nil {
			return err
		}
		current, _, err := w.q.Membership(ctx, roomID, userID)
		if err != nil || current == spec.Join {
			return err
		}
		profile, err := w.q.User(ctx, userID)
		if err != nil {
			return err
		}
		content := memberContent(spec.Join, profile, reason)
		for k, v := range extra {
			switch k {
			case "membership", "displayname", "avatar_url", "reason", "join_authorised_via_users_server", "third_party_signed":
			default:
				content[k] = v
			}
		}
		if current != spec.Invite {
			if via, err := w.restrictedJoinVia(room, userID); err != nil {
				return err
			} else if via != "" {
				content["join_authorised_via_users_server"] = via
			}
		}
		if err := w.sendMember(room, userID, userID, content); err != nil {
			return err
		}
		return w.q.UnforgetRoom(ctx, userID, roomID)
	})
}

// restrictedJoinVia, for a room with a restricted join rule that the user
// may join through membership of an allowed room, names a member who may
// invite: the auth rules need one to vouch for the join. Otherwise "".
func (w *writer) restrictedJoinVia(room *storage.Room, userID string) (string, error) {
	jr, err := w.q.CurrentStateEvent(w.ctx, room.RoomID, spec.MRoomJoinRules, "")
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	c := gjson.GetBytes(jr.JSON, "content")
	if rule := c.Get("join_rule").Str; rule != "restricted" && rule != "knock_restricted" {
		return "", nil
	}
	allowed := false
	for _, a := range c.Get("allow").Array() {
		if a.Get("type").Str != "m.room_membership" {
			continue
		}
		if m, _, err := w.q.Membership(w.ctx, a.Get("room_id").Str, userID); err != nil {
			return "", err
		} else if m == spec.Join {
			allowed = true
			break
		}
	}
	if !allowed {
		return "", matrixerr.Forbidden("this room is only for members of the rooms it names")
	}
	members, err := w.q.RoomMembers(w.ctx, room.RoomID, spec.Join)
	if err != nil {
		return "", err
	}
	for _, m := range members {
		level, pl, err := PowerOf(w.ctx, w.q, room, m)
		if err != nil {
			return "", err
		}
		if level >= pl.Invite {
			return m, nil
		}
	}
	return "", matrixerr.Forbidden("no member of this room can let you in")
}

// Knock asks to be let into a room whose join rule allows knocking.
func (s *Service) Knock(ctx context.Context, roomID, userID, reason string) error {
	return s.write(ctx, func(w *writer) error {
		if err := w.open(roomID); err != nil {
			return err
		}
		room, err := w.room(roomID)
		if err != nil {
			return err
		}
		profile, err := w.q.User(ctx, userID)
		if err != nil {
			return err
		}
		return w.sendMember(room, userID, userID, memberContent(spec.Knock, profile, reason))
	})
}

// Invite invites a local user.
func (s *Service) Invite(ctx context.Context, roomID, sender, target, reason string) error {
	if err := s.checkLocalUser(ctx, target); err != nil {
		return err
	}
	return s.write(ctx, func(w *writer) error {
		if err := w.open(roomID); err != nil {
			return err
		}
		room, err := w.room(roomID)
		if err != nil {
			return err
		}
		current, _, err := w.q.Membership(ctx, roomID, target)
		if err != nil {
			return err
		}
		switch current {
		case spec.Join:
			return matrixerr.Forbidden("%s is already in the room", target)
		case spec.Ban:
			return matrixerr.Forbidden("%s is banned from the room", target)
		case spec.Invite:
			return nil
		}
		profile, err := w.q.User(ctx, target)
		if err != nil {
			return err
		}
		return w.sendMember(room, sender, target, memberContent(spec.Invite, profile, reason))
	})
}

// Leave leaves a room or rejects an invite; leaving twice changes nothing.
func (s *Service) Leave(ctx context.Context, roomID, userID, reason string) error {
	return s.write(ctx, func(w *writer) error {
		room, err := w.room(roomID)
		if err != nil {
			return err
		}
		current, _, err := w.q.Membership(ctx, roomID, userID)
		if err != nil {
			return err
		}
		switch current {
		case spec.Leave, spec.Ban:
			return nil
		case "":
			return matrixerr.Forbidden("you are not in this room")
		case spec.Invite:
			// The invite to one's server notices room cannot be rejected,
			// as on Synapse: the notices would have nowhere to go. Once
			// joined, the room may be left.
			if notices, err := w.q.NoticeRoom(ctx, userID); err != nil {
				return err
			} else if notices == roomID {
				return &matrixerr.Error{Kind: matrixerr.KindForbidden, Code: "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM",
					Message: "the invite to your server notices room cannot be rejected"}
			}
		}
		return w.sendMember(room, userID, userID, memberContent(spec.Leave, storage.User{}, reason))
	})
}

// Kick removes another user, Ban bans one and Unban lifts a ban: each is a
// membership event sent by the moderator, with the target's current
// membership checked first so that the error says what is wrong.
func (s *Service) Kick(ctx context.Context, roomID, sender, target, reason string) error {
	return s.moderate(ctx, roomID, sender, target, spec.Leave, reason, spec.Join, spec.Invite, spec.Knock)
}

// Ban bans a user, whatever their membership.
func (s *Service) Ban(ctx context.Context, roomID, sender, target, reason string) error {
	return s.moderate(ctx, roomID, sender, target, spec.Ban, reason)
}

// Unban lifts a ban; the user's membership becomes leave.
func (s *Service) Unban(ctx context.Context, roomID, sender, target, reason string) error {
	return s.moderate(ctx, roomID, sender, target, spec.Leave, reason, spec.Ban)
}

func (s *Service) moderate(ctx context.Context, roomID, sender, target, membership, reason string, from ...string) error {
	if _, err := spec.NewUserID(target, true); err != nil {
		return matrixerr.InvalidParam("%q is not a user ID", target)
	}
	return s.write(ctx, func(w *writer) error {
		room, err := w.room(roomID)
		if err != nil {
			return err
		}
		if m, _, err := w.q.Membership(ctx, roomID, sender); err != nil {
			return err
		} else if m != spec.Join {
			return matrixerr.Forbidden("you are not in this room")
		}
		if len(from) > 0 {
			current, _, err := w.q.Membership(ctx, roomID, target)
			if err != nil {
				return err
			}
			ok := false
			for _, f := range from {
				ok = ok || current == f
			}
			if !ok {
				return matrixerr.Forbidden("%s's membership is %q", target, current)
			}
		}
		return w.sendMember(room, sender, target, memberContent(membership, storage.User{}, reason))
	})
}

func (w *writer) sendMember(room *storage.Room, sender, target string, content map[string]any) error {
	b, err := json.Marshal(content)
	if err != nil {
		return err
	}
	_, err = w.append(room, Event{Sender: sender, Type: spec.MRoomMember, StateKey: &target, Content: b})
	return err
}

// Forget hides a room the user has left from them.
func (s *Service) Forget(ctx context.Context, roomID, userID string) error {
	return s.write(ctx, func(w *writer) error {
		if _, err := w.room(roomID); err != nil {
			return err
		}
		current, _, err := w.q.Membership(ctx, roomID, userID)
		if err != nil {
			return err
		}
		switch current {
		case spec.Join, spec.Invite, spec.Knock:
			return &matrixerr.Error{Kind: matrixerr.KindInvalid, Code: spec.ErrorUnknown, Message: "leave the room before forgetting it"}
		case "":
			return matrixerr.NotFound("you were never in this room")
		}
		return w.q.ForgetRoom(ctx, userID, roomID)
	})
}

// SetProfile changes a user's display name and avatar and tells every room
// they are in, with a new member event there.
func (s *Service) SetProfile(ctx context.Context, userID string, displayName, avatarURL *string) error {
	return s.write(ctx, func(w *writer) error {
		u, err := w.q.User(ctx, userID)
		if err != nil {
			return err
		}
		if displayName != nil {
			u.DisplayName = *displayName
		}
		if avatarURL != nil {
			u.AvatarURL = *avatarURL
		}
		if err := w.q.SetProfile(ctx, userID, u.DisplayName, u.AvatarURL); err != nil {
			return err
		}
		joined, err := w.q.RoomsWithMembership(ctx, userID, spec.Join)
		if err != nil {
			return err
		}
		for _, roomID := range joined {
			room, err := w.room(roomID)
			if err != nil {
				return err
			}
			if err := w.sendMember(room, userID, userID, memberContent(spec.Join, u, "")); err != nil {
				return err
			}
		}
		return nil
	})
}

// LeaveAll leaves every room a user is in or invited to, as deactivation does.
func (s *Service) LeaveAll(ctx context.Context, userID string) error {
	return s.write(ctx, func(w *writer) error {
		rooms, err := w.q.RoomsWithMembership(ctx, userID, spec.Join, spec.Invite, spec.Knock)
		if err != nil {
			return err
		}
		for _, roomID := range rooms {
			room, err := w.room(roomID)
			if err != nil {
				return err
			}
			if err := w.sendMember(room, userID, userID, map[string]any{"membership": spec.Leave}); err != nil {
				return err
			}
		}
		return nil
	})
}
