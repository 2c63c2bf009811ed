package push

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
)

// Rules holds each user's parsed push rules, read from their m.push_rules
// account data. It is a cache of the database, filled and invalidated only
// inside write transactions (evaluate reads, Save writes and invalidates),
// which the one writer serialises: it is never stale.
type Rules struct {
	// Threads is whether thread subscriptions (MSC4306) are on.
	Threads bool
	mu      sync.Mutex
	cache   map[string]*Ruleset
	// saves counts Save's calls: an evaluation made before the write
	// transaction is made again inside it if rules were saved meanwhile.
	saves atomic.Uint64
}

// RuleStore is where push rules live: the user's m.push_rules account
// data.
type RuleStore interface {
	AccountData(ctx context.Context, userID, roomID, typ string) ([]byte, error)
	SetAccountData(ctx context.Context, userID, roomID, typ string, content []byte) (int64, error)
}

// NewRules returns an empty cache.
func NewRules(threads bool) *Rules { return &Rules{Threads: threads, cache: map[string]*Ruleset{}} }

func (r *Rules) get(ctx context.Context, q RuleStore, userID string, cachedOnly bool) (*Ruleset, error) {
	r.mu.Lock()
	rs := r.cache[userID]
	r.mu.Unlock()
	if rs != nil {
		return rs, nil
	}
	if cachedOnly {
		return nil, errUncached
	}
	stored, err := q.AccountData(ctx, userID, "", "m.push_rules")
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	parsed := Parse(userID, stored, r.Threads)
	r.mu.Lock()
	r.cache[userID] = &parsed
	r.mu.Unlock()
	return &parsed, nil
}

// Save stores a user's rules in the write transaction q.
func (r *Rules) Save(ctx context.Context, q RuleStore, userID string, rs Ruleset) error {
	r.mu.Lock()
	delete(r.cache, userID)
	r.saves.Add(1)
	r.mu.Unlock()
	_, err := q.SetAccountData(ctx, userID, "", "m.push_rules", Marshal(rs))
	return err
}

// Prepare evaluates an event's push rules for every member it may notify
// (rooms' InTransaction step) and returns the write of the notifying ones,
// so that the counts commit with the event. Before the write transaction
// (a.Snapshot) it uses only rules already cached: reading them from a
// snapshot could put rules a concurrent write just replaced back in the
// cache, so on a miss the evaluation waits for the transaction; and if any
// rules are saved between the two, it is made again there.
func (r *Rules) Prepare(a rooms.Appended) (rooms.Then, error) {
	// Thread subscriptions change outside Save, so a threaded message
	// (with subscriptions on) is evaluated in its transaction only.
	if a.Snapshot && r.Threads && threadOf(a.Event) != "" {
		return r.inside, nil
	}
	saves := r.saves.Load()
	thread, notified, err := r.evaluate(a)
	if errors.Is(err, errUncached) {
		return r.inside, nil
	}
	if err != nil || (!a.Snapshot && len(notified) == 0) {
		return nil, err
	}
	return func(a rooms.Appended) error {
		if r.saves.Load() != saves {
			return r.inside(a) // rules were saved before this event's turn
		}
		return a.Q.AddPushActions(a.Ctx, a.Event.Pos, a.Event.RoomID, thread, notified)
	}, nil
}

// inside evaluates an event's push rules in its transaction and records
// whom it notifies.
func (r *Rules) inside(a rooms.Appended) error {
	thread, notified, err := r.evaluate(a)
	if err != nil {
		return err
	}
	return a.Q.AddPushActions(a.Ctx, a.Event.Pos, a.Event.RoomID, thread, notified)
}

// threadOf is the thread an event is a reply in, or "".
func threadOf(ev *storage.Event) string {
	if ev.RelType == "m.thread" {
		return ev.RelatesTo
	}
	return ""
}

// errUncached is evaluate's answer, when it may use only cached rules, to
// a member whose rules are not.
var errUncached = errors.New("push: rules not cached")

// evaluate returns the event's thread and the members it notifies, with
// what to do for each.
func (r *Rules) evaluate(a rooms.Appended) (string, []storage.PushAction, error) {
	ctx, q, ev := a.Ctx, a.Q, a.Event
	event := gjson.ParseBytes(ev.JSON)
	members := a.Members
	var err error
	if members == nil {
		if members, err = joinedMembers(ctx, q, ev.RoomID, event); err != nil {
			return "", nil, err
		}
	}
	targets := members
	// An invite notifies its target, who is not yet a member.
	if ev.Type == spec.MRoomMember && ev.Membership == spec.Invite && ev.StateKey != nil && *ev.StateKey != ev.Sender {
		targets = append(targets, storage.Member{UserID: *ev.StateKey})
	}
	if len(targets) == 0 || (len(targets) == 1 && targets[0].UserID == ev.Sender) {
		return "", nil, nil
	}
	c := Context{Event: event, MemberCount: len(members)}
	if err := senderLevels(a.Auth, a.Room, ev.Sender, &c); err != nil {
		return "", nil, err
	}
	thread := threadOf(ev)
	if thread != "" && r.Threads {
		if c.ThreadSubscribers, err = q.ThreadSubscribers(ctx, ev.RoomID, thread); err != nil {
			return "", nil, err
		}
	}
	var notified []storage.PushAction
	for _, m := range targets {
		if m.UserID == ev.Sender {
			continue
		}
		rs, err := r.get(ctx, q, m.UserID, a.Snapshot) // before the transaction: cached rules only
		if err != nil {
			return "", nil, err
		}
		c.UserID, c.DisplayName = m.UserID, m.DisplayName
		res := Evaluate(rs, &c)
		if !res.Notify {
			continue
		}
		actions, err := marshalActions(res.Actions)
		if err != nil {
			return "", nil, err
		}
		notified = append(notified, storage.PushAction{UserID: m.UserID, Highlight: res.Highlight, Actions: actions})
	}
	return thread, notified, nil
}

// joinedMembers lists a room's members, with display names only if the
// event has a body they could be mentioned in (contains_display_name):
// encrypted events have none, and reading names costs a JSON parse each.
func joinedMembers(ctx context.Context, q Store, roomID string, event gjson.Result) ([]storage.Member, error) {
	if event.Get("content.body").Type == gjson.String {
		return q.JoinedMembersWithNames(ctx, roomID)
	}
	ids, err := q.JoinedMembers(ctx, roomID)
	members := make([]storage.Member, len(ids))
	for i, id := range ids {
		members[i].UserID = id
	}
	return members, err
}

// senderLevels fills in the sender's power level and the room's
// notification levels, for sender_notification_permission, from the state
// the event was authorised against.
func senderLevels(auth gomatrixserverlib.AuthEventProvider, room *storage.Room, sender string, c *Context) error {
	level, pl, err := rooms.Power(auth, room, sender)
	if err != nil {
		return err
	}
	c.SenderLevel, c.NotificationLevels = level, map[string]int64{"room": 50}
	for k, v := range pl.Notifications {
		c.NotificationLevels[k] = v
	}
	return nil
}
