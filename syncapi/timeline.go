package syncapi

import (
	"context"
	"encoding/json"
	"maps"
	"slices"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/filter"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
	"github.com/redoubt-systems/redoubt/streams"
)

// The timeline and state streams: which rooms a sync shows, and each
// room's events, state, summary and unread counts.

func (b *builder) rooms() error {
	memberships, changed, err := b.roomMemberships()
	if err != nil {
		return err
	}
	rf := &b.req.filter.Room
	b.memberships = map[string]storage.RoomMembership{}
	for _, m := range memberships {
		if !filter.AllowsRoom(rf.Rooms, rf.NotRooms, m.RoomID) {
			continue
		}
		b.memberships[m.RoomID] = m
		if err := b.room(m, changed[m.RoomID]); err != nil {
			return err
		}
	}
	return nil
}

// roomMemberships returns the user's memberships this sync looks at (all
// of them for an initial or full-state sync, else those of the rooms where
// something happened since the token), and which rooms had new events or
// receipts.
func (b *builder) roomMemberships() ([]storage.RoomMembership, map[string]bool, error) {
	changed := map[string]bool{}
	if !b.initial() {
		for _, stream := range []struct {
			from, to int64
			rooms    func(context.Context, int64, int64) (map[string]bool, error)
		}{{b.since.Events, b.to.Events, b.q.RoomsWithEventsBetween}, {b.since.Receipts, b.to.Receipts, b.q.RoomsWithReceiptsBetween}} {
			if stream.from >= stream.to {
				continue
			}
			ids, err := stream.rooms(b.ctx, stream.from, stream.to)
			if err != nil {
				return nil, nil, err
			}
			for id := range ids {
				changed[id] = true
			}
		}
	}
	if b.initial() || b.req.fullState {
		m, err := b.q.Memberships(b.ctx, b.dev.UserID)
		return m, changed, err
	}
	// Only rooms where something happened since the token, not every room
	// of the user.
	candidates := maps.Clone(changed)
	for id := range b.roomAccountData {
		candidates[id] = true
	}
	for _, id := range b.s.Typing.ChangedRooms(b.since.Typing, b.to.Typing) {
		candidates[id] = true
	}
	m, err := b.q.MembershipsIn(b.ctx, b.dev.UserID, slices.Collect(maps.Keys(candidates)))
	return m, changed, err
}

// room adds one room to the response, by the user's membership in it;
// changed is whether it had new events or receipts since the token.
func (b *builder) room(m storage.RoomMembership, changed bool) error {
	newMembership := !b.initial() && m.Pos > b.since.Events && m.Pos <= b.to.Events
	switch m.Membership {
	case spec.Join:
		full := b.initial() || newMembership || b.req.fullState
		if !full && !changed && b.roomAccountData[m.RoomID] == nil && !b.s.Typing.Changed(m.RoomID, b.since.Typing, b.to.Typing) {
			return nil
		}
		return b.joinedRoom(m, full, newMembership)
	case spec.Invite:
		if b.initial() || newMembership {
			return b.invitedRoom(m)
		}
	case spec.Knock:
		if b.initial() || newMembership {
			stripped, err := b.s.Rooms.StrippedState(b.ctx, b.q, m.RoomID, b.dev.UserID)
			if err != nil {
				return err
			}
			b.res.Rooms.Knock[m.RoomID] = &knockedRoom{KnockState: eventsSection{Events: stripped}}
			b.empty = false
		}
	case spec.Leave, spec.Ban:
		// Rooms left since the token are always sent, so clients learn of
		// kicks and bans, even if forgotten since (another device of the
		// user's must learn of the leave); older ones only on request, and
		// never once forgotten.
		if newMembership || (!m.Forgotten && b.initial() && b.req.filter.Room.IncludeLeave) {
			return b.leftRoom(m)
		}
	}
	return nil
}

// timelineFor returns the visible, filtered events of a room in (from, to]
// (the newest limit of them), whether older ones were left out, and the
// position before the first.
//
// joinedAt is the position of the user's current join (0 if they are not
// joined): every event after it is visible to them, so the history
// visibility rules need not be read for those.
func (b *builder) timelineFor(roomID string, from, to, joinedAt int64) (timelineEvents, error) {
	f := &b.req.filter.Room.Timeline
	limit := f.LimitOr(10, 500)
	if f.Limit != nil && *f.Limit == 0 {
		// An empty timeline on request: everything is state at the end.
		return timelineEvents{limited: from < to, before: to}, nil
	}
	evs, more, err := b.q.EventsBetween(b.ctx, roomID, from, to, limit)
	if err != nil {
		return timelineEvents{}, err
	}
	// Edits and thread replies come after what they relate to, in the
	// same room, and evs are every event of the room from the first up
	// to `to`: if none of them is one, the timeline has nothing to bundle.
	unbundled := true
	for _, e := range evs {
		if rel := gjson.GetBytes(e.JSON, `content.m\.relates_to.rel_type`).Str; rel == "m.thread" || rel == "m.replace" {
			unbundled = false
			break
		}
	}
	before := to
	if len(evs) > 0 {
		before = evs[0].Pos - 1
	}
	// The ignored users' list is read only for a timeline with events (a
	// receipt or typing wake-up has none), once per response.
	var ignored map[string]bool
	if len(evs) > 0 {
		if ignored, err = b.ignoredUsers(); err != nil {
			return timelineEvents{}, err
		}
	}
	visible := evs
	if len(evs) > 0 && (joinedAt == 0 || evs[0].Pos <= joinedAt) {
		if visible, err = b.s.Rooms.Visible(b.ctx, b.q, roomID, b.dev.UserID, ignored, evs); err != nil {
			return timelineEvents{}, err
		}
	}
	out := visible[:0:0]
	for _, e := range visible {
		if !rooms.Hidden(ignored, e) && f.AllowsEvent(roomID, e.Type, e.Sender, []byte(gjson.GetBytes(e.JSON, "content").Raw)) {
			out = append(out, e)
		}
	}
	// Events the user may not see mean the history stops there for them.
	if len(visible) < len(evs) {
		more = false
	}
	return timelineEvents{events: out, limited: more, before: before, unbundled: unbundled}, nil
}

// timelineEvents is a room's timeline for a response: its events, whether
// older ones were left out, the position before the first, and whether
// none of them has anything to bundle.
type timelineEvents struct {
	events    []storage.Event
	limited   bool
	before    int64
	unbundled bool
}

// stateFor returns the state to send with a timeline: all of it at `before`
// for a full sync, else what changed between the token and `before`. With
// lazy loading, only the members the timeline needs.
func (b *builder) stateFor(roomID string, full bool, before int64, tl []storage.Event) ([]storage.Event, error) {
	var state []storage.Event
	var err error
	switch {
	case full:
		state, err = b.q.StateAt(b.ctx, roomID, before)
	case before > b.since.Events:
		state, err = b.q.StateChangesBetween(b.ctx, roomID, b.since.Events, before)
	}
	if err != nil {
		return nil, err
	}
	f := &b.req.filter.Room.State
	lazy := f.LazyLoadMembers
	var needed map[string]bool
	if lazy {
		needed = map[string]bool{b.dev.UserID: true}
		for _, e := range tl {
			needed[e.Sender] = true
		}
		if !full {
			// Members the timeline needs may not have changed since the
			// token; send them from the state before the timeline.
			users := make([]string, 0, len(needed))
			for u := range needed {
				if u != b.dev.UserID {
					users = append(users, u)
				}
			}
			if len(users) > 0 {
				// MembersAt returns just these users' member events.
				at, err := b.q.MembersAt(b.ctx, roomID, before, users)
				if err != nil {
					return nil, err
				}
				have := map[string]bool{}
				for _, e := range state {
					have[e.EventID] = true
				}
				for _, e := range at {
					if !have[e.EventID] {
						state = append(state, e)
					}
				}
			}
		}
	}
	out := state[:0:0]
	for _, e := range state {
		if lazy && e.Type == spec.MRoomMember && !needed[*e.StateKey] {
			continue
		}
		if f.AllowsEvent(roomID, e.Type, e.Sender, nil) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (b *builder) format(evs []storage.Event, unbundled bool) ([]json.RawMessage, error) {
	out, err := b.s.Rooms.FormatKnowing(b.ctx, b.q, evs, b.dev, rooms.Known{Current: b.memberships, Unbundled: unbundled})
	if out == nil {
		out = []json.RawMessage{}
	}
	return out, err
}

func (b *builder) joinedRoom(m storage.RoomMembership, full, newlyJoined bool) error {
	from := b.since.Events
	if b.initial() || newlyJoined {
		from = 0
	}
	t, err := b.timelineFor(m.RoomID, from, b.to.Events, m.Pos)
	if err != nil {
		return err
	}
	tl, limited, before := t.events, t.limited, t.before
	state, err := b.stateFor(m.RoomID, full, b.stateAt(before, b.to.Events), tl)
	if err != nil {
		return err
	}
	if err := b.noteNewMembers(m.RoomID, newlyJoined, tl, state); err != nil {
		return err
	}
	jr := &joinedRoom{Timeline: timeline{Limited: limited, PrevBatch: streams.Pagination(prevBatch(tl, limited, before))}}
	if jr.Timeline.Events, err = b.format(tl, t.unbundled); err != nil {
		return err
	}
	if jr.State, jr.StateAfter, err = b.stateSection(state); err != nil {
		return err
	}
	if jr.Ephemeral.Events, err = b.ephemeral(m.RoomID); err != nil {
		return err
	}
	jr.AccountData.Events = b.roomAccountData[m.RoomID]
	if b.initial() {
		if jr.AccountData.Events, err = b.allRoomAccountData(m.RoomID); err != nil {
			return err
		}
	}
	if jr.AccountData.Events == nil {
		jr.AccountData.Events = []json.RawMessage{}
	}
	// The summary changes only with membership, so an incremental sync
	// sends it only when members came or went.
	if full || hasMembers(tl) || hasMembers(state) {
		if jr.Summary, err = b.summary(m.RoomID); err != nil {
			return err
		}
	}
	if err := b.unread(m.RoomID, jr); err != nil {
		return err
	}
	if len(tl) > 0 || len(state) > 0 || len(jr.Ephemeral.Events) > 0 || len(jr.AccountData.Events) > 0 || full {
		b.empty = false
	}
	b.res.Rooms.Join[m.RoomID] = jr
	return nil
}

// noteNewMembers records who came to share a room with the user since the
// token: everyone in a room the user just joined, else whoever joined it.
func (b *builder) noteNewMembers(roomID string, newlyJoined bool, evs ...[]storage.Event) error {
	if b.initial() || !b.s.Cfg.Presence.Enabled {
		return nil
	}
	if newlyJoined {
		members, err := b.q.RoomMembers(b.ctx, roomID, spec.Join)
		for _, u := range members {
			b.newlyShared[u] = true
		}
		return err
	}
	for _, list := range evs {
		for _, e := range list {
			if e.Type == spec.MRoomMember && e.Membership == spec.Join && e.Pos > b.since.Events {
				b.newlyShared[*e.StateKey] = true
			}
		}
	}
	return nil
}

// prevBatch is where a timeline's prev_batch points: before its first
// event, except for a timeline that holds the room from its creation, where
// there is nothing earlier. There it is the timeline's end, as Synapse and
// Dendrite give it: clients take it as the point for /members?at=, and the
// members at the very beginning are none.
func prevBatch(tl []storage.Event, limited bool, before int64) int64 {
	if !limited && len(tl) > 0 && tl[0].Type == spec.MRoomCreate {
		return tl[len(tl)-1].Pos
	}
	return before
}

// stateAt is where a room's state is taken: before its timeline, or at its
// end with use_state_after.
func (b *builder) stateAt(before, end int64) int64 {
	if b.req.stateAfter {
		return end
	}
	return before
}

// stateSection formats a room's state as state, or as state_after.
func (b *builder) stateSection(state []storage.Event) (*eventsSection, *eventsSection, error) {
	evs, err := b.format(state, false)
	if b.req.stateAfter {
		return nil, &eventsSection{Events: evs}, err
	}
	return &eventsSection{Events: evs}, nil, err
}

func hasMembers(evs []storage.Event) bool {
	for _, e := range evs {
		if e.Type == spec.MRoomMember {
			return true
		}
	}
	return false
}

func (b *builder) summary(roomID string) (*summary, error) {
	joined, invited, err := b.q.MemberCounts(b.ctx, roomID)
	if err != nil {
		return nil, err
	}
	heroes, err := b.q.Heroes(b.ctx, roomID, b.dev.UserID, 5)
	if err != nil {
		return nil, err
	}
	return &summary{Heroes: heroes, Joined: joined, Invited: invited}, nil
}

func (b *builder) unread(roomID string, jr *joinedRoom) error {
	counts, err := b.q.UnreadCounts(b.ctx, b.dev.UserID, roomID)
	if err != nil {
		return err
	}
	perThread := b.req.filter.Room.Timeline.UnreadThreadNotifs
	for thread, c := range counts {
		if thread != "" && perThread {
			if jr.UnreadThreads == nil {
				jr.UnreadThreads = map[string]unreadCounts{}
			}
			jr.UnreadThreads[thread] = unreadCounts{Notifications: c.Notifications, Highlights: c.Highlights}
			continue
		}
		jr.Unread.Notifications += c.Notifications
		jr.Unread.Highlights += c.Highlights
	}
	return nil
}

func (b *builder) invitedRoom(m storage.RoomMembership) error {
	ignored, err := b.ignoredUsers()
	if err != nil {
		return err
	}
	if len(ignored) > 0 {
		invite, err := b.q.CurrentStateEvent(b.ctx, m.RoomID, spec.MRoomMember, b.dev.UserID)
		if err != nil || ignored[invite.Sender] {
			return err
		}
	}
	stripped, err := b.s.Rooms.StrippedState(b.ctx, b.q, m.RoomID, b.dev.UserID)
	if err != nil {
		return err
	}
	b.res.Rooms.Invite[m.RoomID] = &invitedRoom{InviteState: eventsSection{Events: stripped}}
	b.empty = false
	return nil
}

func (b *builder) leftRoom(m storage.RoomMembership) error {
	// History up to and including the leave; nothing after it.
	t, err := b.timelineFor(m.RoomID, b.since.Events, m.Pos, 0)
	if err != nil {
		return err
	}
	tl, limited, before := t.events, t.limited, t.before
	state, err := b.stateFor(m.RoomID, b.initial(), b.stateAt(before, m.Pos), tl)
	if err != nil {
		return err
	}
	lr := &leftRoom{Timeline: timeline{Limited: limited, PrevBatch: streams.Pagination(before)}, AccountData: eventsSection{Events: []json.RawMessage{}}}
	if lr.Timeline.Events, err = b.format(tl, t.unbundled); err != nil {
		return err
	}
	if lr.State, lr.StateAfter, err = b.stateSection(state); err != nil {
		return err
	}
	b.res.Rooms.Leave[m.RoomID] = lr
	b.empty = false
	return nil
}
