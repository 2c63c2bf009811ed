// Package rooms is the one path by which events come to exist: built with
// gomatrixserverlib for the room's version, authorised by its auth rules
// against the room's current state, and appended to the room's linear
// history. Without federation there is no state resolution: each event's
// prev_events is the room's latest event.
package rooms

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/storage"
)

// Service builds, authorises, stores and reads room events.
type Service struct {
	DB         *storage.DB
	ServerName spec.ServerName
	KeyID      gomatrixserverlib.KeyID
	Key        ed25519.PrivateKey
	// DefaultVersion is the room version of /createRoom without room_version.
	DefaultVersion string
	Now            func() time.Time
	// InTransaction and AfterCommit are what follows each event, inside
	// its transaction and after it commits (see commit.go).
	InTransaction []InTransaction
	AfterCommit   []Reactor

	heads heads
}

// Supported reports whether this server creates and serves a room version.
func Supported(v string) bool { return slices.Contains(config.SupportedRoomVersions, v) }

// Event is what a client asks to send into a room.
type Event struct {
	Sender   string
	Type     string
	StateKey *string
	Content  json.RawMessage
	// Redacts names the event a m.room.redaction removes.
	Redacts string
	// DeviceID and TxnID make sends idempotent; both may be empty.
	DeviceID string
	TxnID    string
}

// Send appends one event to a room and returns its ID. A repeated
// (device, txnID) returns the event first sent with it.
func (s *Service) Send(ctx context.Context, roomID string, ev Event) (string, error) {
	return s.SendWith(ctx, roomID, ev, nil)
}

// SendWith is Send with also run in the same transaction once the event is
// stored, so that the two are committed together or not at all.
func (s *Service) SendWith(ctx context.Context, roomID string, ev Event, also func(q storage.Q) error) (string, error) {
	if ev.Type == spec.MRoomCreate {
		return "", matrixerr.InvalidParam("a room has one create event, made with the room")
	}
	if buildsAhead(ctx, ev) {
		return s.sendAhead(ctx, roomID, ev, also)
	}
	return s.sendInside(ctx, roomID, ev, also)
}

// sendInside is SendWith with the event built inside its transaction.
func (s *Service) sendInside(ctx context.Context, roomID string, ev Event, also func(q storage.Q) error) (string, error) {
	var id string
	err := s.write(ctx, func(w *writer) (err error) {
		id, err = w.sendAlso(roomID, ev, nil, also)
		return err
	})
	return id, err
}

// sendAlso is send, then also (if any) once the event is stored.
func (w *writer) sendAlso(roomID string, ev Event, ahead *built, also func(q storage.Q) error) (string, error) {
	id, err := w.send(roomID, ev, ahead)
	if err != nil || also == nil {
		return id, err
	}
	return id, also(w.q)
}

// send appends a client's event, or returns the event its transaction or
// an identical state event already made. ahead is the event as built
// before the transaction, or nil; it is stored if the room's latest event
// is still the one it was built on, else the event is built here.
func (w *writer) send(roomID string, ev Event, ahead *built) (string, error) {
	if ahead != nil {
		// Unless ahead is stored, the head it left is wrong.
		defer func() {
			if len(w.appended) == 0 || w.appended[len(w.appended)-1].EventID != ahead.event.EventID {
				w.rebuilt = append(w.rebuilt, roomID)
			}
		}()
	}
	if ev.TxnID != "" {
		prev, err := w.q.EventIDByTxn(w.ctx, roomID, ev.Sender, ev.DeviceID, ev.TxnID)
		if err == nil {
			return prev, nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return "", err
		}
	}
	room, err := w.room(roomID)
	if err != nil {
		return "", err
	}
	if ahead != nil && ahead.pdu.PrevEventIDs()[0] == room.LatestEventID {
		if err := w.mayAct(ev.Sender, ev.Type, ev.StateKey, ahead.event.JSON, ev.Redacts); err != nil {
			return "", err
		}
		stored, err := w.store(room, ahead)
		if err != nil {
			return "", err
		}
		if len(ahead.members) > 0 {
			if w.joined == nil {
				w.joined = map[string][]storage.Member{}
			}
			w.joined[roomID] = ahead.members
		}
		return stored.EventID, nil
	}
	if same, err := w.unchangedState(roomID, ev); err != nil || same != "" {
		return same, err
	}
	if ev.Type == spec.MRoomCanonicalAlias && ev.StateKey != nil && *ev.StateKey == "" {
		if err := w.checkCanonicalAlias(roomID, ev.Content); err != nil {
			return "", err
		}
	}
	stored, err := w.append(room, ev)
	if err != nil {
		return "", err
	}
	return stored.EventID, nil
}

// unchangedState returns the ID of the current state event that a state
// event would only repeat (same sender, same content), or "": setting state
// twice to the same value is one event, as Synapse does it, so retries and
// clients re-applying settings do not grow the room. Memberships have rules
// of their own and are never deduplicated.
func (w *writer) unchangedState(roomID string, ev Event) (string, error) {
	if ev.StateKey == nil || ev.Type == spec.MRoomMember {
		return "", nil
	}
	cur, err := w.q.CurrentStateEvent(w.ctx, roomID, ev.Type, *ev.StateKey)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	if err != nil || cur.Sender != ev.Sender || cur.RedactedBy != "" {
		return "", err
	}
	content := ev.Content
	if len(content) == 0 {
		content = json.RawMessage(`{}`)
	}
	a, errA := gomatrixserverlib.CanonicalJSON([]byte(gjson.GetBytes(cur.JSON, "content").Raw))
	b, errB := gomatrixserverlib.CanonicalJSON(content)
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		return "", nil
	}
	return cur.EventID, nil
}

// writer is one write transaction of the rooms service; it collects the
// events it appends so they can be announced after commit.
type writer struct {
	s        *Service
	ctx      context.Context
	q        storage.Q
	appended []storage.Event
	// rebuilt lists the rooms where this write built an event itself,
	// which the heads of events built beforehand no longer follow.
	rebuilt []string
	// joined holds the joined members of the rooms whose last event in
	// this write was built at their head (Committed.Joined).
	joined map[string][]storage.Member
}

func (s *Service) write(ctx context.Context, fn func(w *writer) error) error {
	w, write := s.writing(ctx, fn)
	return s.committed(ctx, w, s.DB.Write(ctx, write))
}

// writing returns the storage write that runs fn as one rooms write, and
// the writer that collects what it appends.
func (s *Service) writing(ctx context.Context, fn func(w *writer) error) (*writer, func(storage.Q) error) {
	w := &writer{s: s, ctx: ctx}
	return w, func(q storage.Q) error {
		w.q, w.appended, w.rebuilt, w.joined = q, w.appended[:0], w.rebuilt[:0], nil
		return fn(w)
	}
}

// committed follows a rooms write: once it has committed, the heads it
// passed are forgotten and its events go to the reactors. A failed write
// changed nothing, but the heads of failed (an event built ahead there)
// may have passed events that will never be.
func (s *Service) committed(ctx context.Context, w *writer, err error, failed ...string) error {
	if err != nil {
		s.heads.forget(failed...)
		return err
	}
	appended, rebuilt, joined := w.appended, w.rebuilt, w.joined
	storage.AfterCommit(ctx, func() {
		s.heads.forget(rebuilt...)
		s.afterCommit(Committed{Events: appended, Joined: joined})
	})
	return nil
}

func (w *writer) room(roomID string) (*storage.Room, error) {
	r, err := w.q.Room(w.ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, matrixerr.NotFound("unknown room")
	}
	if err != nil {
		return nil, err
	}
	if deleted, err := w.q.RoomDeleted(w.ctx, roomID); err != nil || deleted {
		if err == nil {
			err = matrixerr.NotFound("unknown room")
		}
		return nil, err
	}
	return &r, nil
}

// ErrSuspended is the answer to a suspended user's send, join, invite or
// room creation (MSC3823).
var ErrSuspended = &matrixerr.Error{Kind: matrixerr.KindForbidden, Code: "M_USER_SUSPENDED",
	Message: "your account is suspended: you may read, leave rooms and redact your own messages"}

// mayAct refuses the events a suspended user may not send: anything but
// leaving (or rejecting an invite) and redacting their own events.
func (w *writer) mayAct(sender, typ string, stateKey *string, content json.RawMessage, redacts string) error {
	suspended, err := w.q.UserSuspended(w.ctx, sender)
	if err != nil || !suspended {
		return err
	}
	switch typ {
	case spec.MRoomMember:
		if stateKey != nil && *stateKey == sender && gjson.GetBytes(content, "membership").Str == spec.Leave {
			return nil
		}
	case spec.MRoomRedaction:
		if redacts == "" {
			redacts = gjson.GetBytes(content, "redacts").Str
		}
		if target, err := w.q.Event(w.ctx, redacts); err == nil && target.Sender == sender {
			return nil
		}
	}
	return ErrSuspended
}

// open refuses new members (joins, knocks, invites) to a room an admin
// blocked.
func (w *writer) open(roomID string) error {
	blocked, _, err := w.q.RoomBlock(w.ctx, roomID)
	if err == nil && blocked {
		err = matrixerr.Forbidden("this room is blocked by an administrator")
	}
	return err
}

// DeleteRoom is an administrator's removal of a room: every member and
// invitee leaves (as themselves, so their clients learn the room is gone),
// then everything but the create event and those leaves is deleted and the
// room leaves the admin lists; with block, no one may join it again. It
// returns who was removed and how many events went.
func (s *Service) DeleteRoom(ctx context.Context, roomID, admin string, block bool) ([]string, int64, error) {
	var removed []string
	err := s.write(ctx, func(w *writer) error {
		room, err := w.room(roomID)
		if err != nil {
			return err
		}
		if removed, err = w.q.RoomMembers(ctx, roomID, spec.Join, spec.Invite, spec.Knock); err != nil {
			return err
		}
		for _, u := range removed {
			if err := w.sendMember(room, u, u, map[string]any{"membership": spec.Leave}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	var purged int64
	err = s.DB.Write(ctx, func(q storage.Q) error {
		var err error
		if purged, err = q.PurgeRoom(ctx, roomID); err != nil {
			return err
		}
		if block {
			if err := q.BlockRoom(ctx, roomID, admin, s.Now().UnixMilli()); err != nil {
				return err
			}
		}
		return q.MarkRoomDeleted(ctx, roomID, s.Now().UnixMilli())
	})
	return removed, purged, err
}

// checkCanonicalAlias requires every alias a canonical alias event names to
// be well formed (M_INVALID_PARAM) and to exist and point to the room
// (M_BAD_ALIAS), as the spec asks.
func (w *writer) checkCanonicalAlias(roomID string, content json.RawMessage) error {
	c := gjson.ParseBytes(content)
	aliases := []gjson.Result{c.Get("alias")}
	aliases = append(aliases, c.Get("alt_aliases").Array()...)
	for _, a := range aliases {
		if !a.Exists() || a.Type == gjson.Null {
			continue
		}
		local, _, ok := strings.Cut(strings.TrimPrefix(a.Str, "#"), ":")
		if a.Type != gjson.String || !strings.HasPrefix(a.Str, "#") || !ok || local == "" {
			return matrixerr.InvalidParam("%s is not a room alias", a.Raw)
		}
		target, _, err := w.q.Alias(w.ctx, a.Str)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && target != roomID) {
			return matrixerr.BadAlias("%s is not an alias of this room", a.Raw)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// redact applies an accepted redaction to the event it names: the stored
// JSON is replaced by its redacted form at once, so the original content is
// gone from the database when the request returns.
func (w *writer) redact(room *storage.Room, redaction gomatrixserverlib.PDU, provider gomatrixserverlib.AuthEventProvider) error {
	targetID := redaction.Redacts()
	if targetID == "" {
		targetID = gjson.GetBytes(redaction.Content(), "redacts").Str
	}
	target, err := w.q.Event(w.ctx, targetID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && target.RoomID != room.RoomID) {
		return matrixerr.NotFound("unknown event")
	}
	if err != nil {
		return err
	}
	// The auth rules of room versions 3 and later accept any redaction
	// event; whether it may take effect is decided here: one's own events,
	// or anyone's with the redact power level.
	if target.Sender != string(redaction.SenderID()) {
		level, pl, err := Power(provider, room, string(redaction.SenderID()))
		if err != nil {
			return err
		}
		if level < pl.Redact {
			return matrixerr.Forbidden("you may not redact other users' events")
		}
	}
	if target.RedactedBy != "" {
		return nil
	}
	verImpl := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion(room.Version))
	redacted, err := verImpl.RedactEventJSON(target.JSON)
	if err != nil {
		return fmt.Errorf("redact %s: %w", targetID, err)
	}
	return w.q.ReplaceEventJSON(w.ctx, targetID, redacted, redaction.EventID())
}

// StateReader reads a room's current state.
type StateReader interface {
	CurrentState(ctx context.Context, roomID string) ([]storage.Event, error)
	CurrentStateEvent(ctx context.Context, roomID, typ, stateKey string) (storage.Event, error)
}

// PowerOf returns a user's power level in a room and the room's power level
// content, from its current state.
func PowerOf(ctx context.Context, q StateReader, room *storage.Room, userID string) (int64, gomatrixserverlib.PowerLevelContent, error) {
	provider, _ := gomatrixserverlib.NewAuthEvents(nil)
	for _, t := range []string{spec.MRoomCreate, spec.MRoomPowerLevels} {
		e, err := q.CurrentStateEvent(ctx, room.RoomID, t, "")
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, gomatrixserverlib.PowerLevelContent{}, err
		}
		pdu, err := toPDU(room.Version, e)
		if err != nil {
			return 0, gomatrixserverlib.PowerLevelContent{}, err
		}
		if err := provider.AddEvent(pdu); err != nil {
			return 0, gomatrixserverlib.PowerLevelContent{}, err
		}
	}
	return Power(provider, room, userID)
}

// Power returns a user's power level in a room and the room's power level
// content, from auth state holding its create and power levels events. From
// room version 12 the room's creators outrank everyone.
func Power(provider gomatrixserverlib.AuthEventProvider, room *storage.Room, userID string) (int64, gomatrixserverlib.PowerLevelContent, error) {
	pl, err := gomatrixserverlib.NewPowerLevelContentFromAuthEvents(provider, room.Creator)
	if err != nil {
		return 0, pl, err
	}
	verImpl, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(room.Version))
	if err != nil {
		return 0, pl, err
	}
	if create, _ := provider.Create(); create != nil && verImpl.PrivilegedCreators() {
		for _, c := range gomatrixserverlib.CreatorsFromCreateEvent(create) {
			if c == userID {
				return gomatrixserverlib.CreatorPowerLevel, pl, nil
			}
		}
	}
	return pl.UserLevel(spec.SenderID(userID)), pl, nil
}

// EraseSender makes every message a user sent, and their own membership
// events, redacted for everyone, with the content gone from the database:
// the last step of erasing an account. The room state they set stays (see
// storage.ErasableEvents).
// It works in batches, each its own write, so that other writes are not
// held up behind a prolific sender.
func (s *Service) EraseSender(ctx context.Context, userID string) (int, error) {
	var after int64
	total := 0
	versions := map[string]gomatrixserverlib.IRoomVersion{}
	for {
		var batch []storage.Event
		err := s.DB.Write(ctx, func(q storage.Q) error {
			var err error
			if batch, err = q.ErasableEvents(ctx, userID, after, 200); err != nil {
				return err
			}
			for _, e := range batch {
				verImpl := versions[e.RoomID]
				if verImpl == nil {
					room, err := q.Room(ctx, e.RoomID)
					if err != nil {
						return err
					}
					if verImpl, err = gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(room.Version)); err != nil {
						return err
					}
					versions[e.RoomID] = verImpl
				}
				redacted, err := verImpl.RedactEventJSON(e.JSON)
				if err != nil {
					return fmt.Errorf("erase %s: %w", e.EventID, err)
				}
				if err := q.EraseEvent(ctx, e.EventID, redacted); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		if len(batch) == 0 {
			return total, nil
		}
		for _, e := range batch {
			s.heads.forget(e.RoomID) // its state events may be among them
		}
		total += len(batch)
		after = batch[len(batch)-1].Pos
	}
}

// CheckContent accepts only event content canonical JSON can carry: an
// object whose numbers are all integers within its range.
func CheckContent(content json.RawMessage) error {
	if !gjson.ValidBytes(content) || !gjson.ParseBytes(content).IsObject() {
		return matrixerr.BadJSON("content must be a JSON object")
	}
	if bad := nonCanonicalNumber(gjson.ParseBytes(content)); bad != "" {
		return matrixerr.BadJSON("content has the number %s: event numbers must be integers from -(2^53)+1 to 2^53-1", bad)
	}
	return nil
}

// nonCanonicalNumber returns the first number in a JSON value that canonical
// JSON, and so an event, cannot hold (a fraction, an exponent, -0, or an
// integer past 2^53-1 either way), or "".
func nonCanonicalNumber(v gjson.Result) string {
	const limit = 1<<53 - 1
	switch {
	case v.Type == gjson.Number:
		n, err := strconv.ParseInt(v.Raw, 10, 64)
		if err != nil || n > limit || n < -limit || v.Raw == "-0" {
			return v.Raw
		}
	case v.IsObject() || v.IsArray():
		bad := ""
		v.ForEach(func(_, e gjson.Result) bool {
			bad = nonCanonicalNumber(e)
			return bad == ""
		})
		return bad
	}
	return ""
}
