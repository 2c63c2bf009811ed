package syncapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/filter"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
	"github.com/redoubt-systems/redoubt/streams"
)

// slidingBuild computes one response: lists, the rooms to send, extensions.
// It reports whether there is nothing new for an incremental request.
func (s *Service) slidingBuild(r *http.Request, dev *httpapi.Device, have map[string]string, since *streams.Token, req *slidingRequest) (*slidingResponse, bool, streams.Token, map[string]string, error) {
	ctx := r.Context()
	res := &slidingResponse{}
	empty := true
	sent := map[string]string{}
	main := &syncRequest{since: since, filter: &filter.Filter{Room: filter.RoomFilter{Rooms: []string{}}}}
	b, err := s.run(ctx, dev, main, func(b *builder) error {
		summaries, err := b.q.RoomSummaries(ctx, dev.UserID)
		if err != nil {
			return err
		}
		byID := map[string]storage.RoomSummary{}
		for _, rs := range summaries {
			byID[rs.RoomID] = rs
		}
		configs, listsOut, listRooms, err := s.slidingLists(b, summaries, req)
		if err != nil {
			return err
		}
		for id, c := range req.RoomSubscriptions {
			if _, ok := byID[id]; ok {
				configs[id] = merge(configs[id], c)
			}
		}
		res.Lists = listsOut
		res.Rooms = map[string]*slidingRoom{}
		for g, ids := range roomGroups(configs, have, since, byID) {
			if err := s.slidingGroup(b, g, ids, since, byID, configs, res.Rooms); err != nil {
				return err
			}
		}
		for id, c := range configs {
			sent[id] = fingerprint(c)
		}
		empty = len(res.Rooms) == 0
		extEmpty, err := s.extensions(b, req, res, listRooms)
		if err != nil {
			return err
		}
		empty = empty && extEmpty
		return nil
	})
	if err != nil {
		return nil, false, streams.Token{}, nil, err
	}
	if since == nil {
		empty = false
	}
	return res, empty, b.to, sent, nil
}

// slidingLists filters each list's rooms, orders them by latest activity
// and cuts its windows: the lists' counts, each room in a window with its
// merged configuration, and the rooms of each list.
func (s *Service) slidingLists(b *builder, summaries []storage.RoomSummary, req *slidingRequest) (map[string]roomConfig, map[string]slidingListResult, map[string][]string, error) {
	dms := b.directRooms()
	configs := map[string]roomConfig{}
	listsOut := map[string]slidingListResult{}
	listRooms := map[string][]string{}
	for name, l := range req.Lists {
		var rooms []storage.RoomSummary
		for _, rs := range summaries {
			if rs.Membership == spec.Leave || rs.Membership == spec.Ban {
				continue
			}
			ok, err := s.matches(b, rs, l.Filters, dms)
			if err != nil {
				return nil, nil, nil, err
			}
			if ok {
				rooms = append(rooms, rs)
			}
		}
		sort.SliceStable(rooms, func(i, j int) bool {
			if rooms[i].Bump != rooms[j].Bump {
				return rooms[i].Bump > rooms[j].Bump
			}
			return rooms[i].RoomID < rooms[j].RoomID
		})
		listsOut[name] = slidingListResult{Count: len(rooms)}
		for _, rg := range l.Ranges {
			for i := rg[0]; i <= rg[1] && i < len(rooms); i++ {
				id := rooms[i].RoomID
				configs[id] = merge(configs[id], l.roomConfig)
				listRooms[name] = append(listRooms[name], id)
			}
		}
	}
	return configs, listsOut, listRooms, nil
}

// directRooms are the rooms the user's m.direct names, read once per
// response.
func (b *builder) directRooms() map[string]bool {
	if b.direct != nil {
		return b.direct
	}
	b.direct = map[string]bool{}
	if direct, err := b.q.AccountData(b.ctx, b.dev.UserID, "", "m.direct"); err == nil {
		gjson.ParseBytes(direct).ForEach(func(_, ids gjson.Result) bool {
			for _, id := range ids.Array() {
				b.direct[id.Str] = true
			}
			return true
		})
	}
	return b.direct
}

// roomGroup is rooms built alike: with an initial view (new to the
// connection, or asked for differently) or with what changed since the
// position, and one timeline limit.
type roomGroup struct {
	initial bool
	limit   int
}

// roomGroups sorts the rooms to send into groups, adding the rooms sent
// before that the user has since left, so they learn of it.
func roomGroups(configs map[string]roomConfig, have map[string]string, since *streams.Token, byID map[string]storage.RoomSummary) map[roomGroup][]string {
	groups := map[roomGroup][]string{}
	for id, c := range configs {
		g := roomGroup{initial: since == nil || have[id] != fingerprint(c), limit: c.TimelineLimit}
		groups[g] = append(groups[g], id)
	}
	if since != nil {
		for id := range have {
			if rs, ok := byID[id]; ok && (rs.Membership == spec.Leave || rs.Membership == spec.Ban) && rs.MembershipPos > since.Events {
				if _, shown := configs[id]; !shown {
					g := roomGroup{limit: 1}
					groups[g] = append(groups[g], id)
				}
			}
		}
	}
	return groups
}

// slidingGroup builds one group's rooms with a /sync builder of their own
// and adds them, in sliding sync's form, to roomsOut.
func (s *Service) slidingGroup(b *builder, g roomGroup, ids []string, since *streams.Token, byID map[string]storage.RoomSummary,
	configs map[string]roomConfig, roomsOut map[string]*slidingRoom) error {
	sub := &builder{s: s, ctx: b.ctx, q: b.q, dev: b.dev, to: b.to, empty: true, roomAccountData: map[string][]json.RawMessage{},
		res: &Response{Rooms: roomsSection{Join: map[string]*joinedRoom{}, Invite: map[string]*invitedRoom{}, Leave: map[string]*leftRoom{}, Knock: map[string]*knockedRoom{}}}}
	lim := max(1, g.limit)
	sub.req = &syncRequest{filter: &filter.Filter{Room: filter.RoomFilter{Rooms: ids, IncludeLeave: true,
		Timeline: filter.RoomEventFilter{EventFilter: filter.EventFilter{Limit: &lim}}}}}
	if !g.initial {
		sub.req.since = since
		sub.since = *since
	}
	if err := sub.accountData(); err != nil {
		return err
	}
	if err := sub.rooms(); err != nil {
		return err
	}
	for id, jr := range sub.res.Rooms.Join {
		room, err := s.slidingRoom(b, b.dev, byID[id], configs[id], g.initial, g.limit, since, jr.Timeline, jr.State.Events, jr.Unread)
		if err != nil {
			return err
		}
		roomsOut[id] = room
	}
	for id, ir := range sub.res.Rooms.Invite {
		roomsOut[id] = &slidingRoom{Membership: spec.Invite, Initial: true, InviteState: ir.InviteState.Events,
			BumpStamp: byID[id].Bump, Name: byID[id].Name}
	}
	for id, kr := range sub.res.Rooms.Knock {
		roomsOut[id] = &slidingRoom{Membership: spec.Knock, Initial: true, KnockState: &kr.KnockState, BumpStamp: byID[id].Bump}
	}
	for id, lr := range sub.res.Rooms.Leave {
		roomsOut[id] = &slidingRoom{Membership: byID[id].Membership, Initial: g.initial, Timeline: lr.Timeline.Events,
			Limited: lr.Timeline.Limited, PrevBatch: lr.Timeline.PrevBatch, BumpStamp: byID[id].Bump}
	}
	if g.initial {
		for _, id := range ids {
			if _, ok := roomsOut[id]; !ok {
				// Nothing the builder sends (say, a room with no visible
				// history): still tell the client of it.
				rs := byID[id]
				roomsOut[id] = &slidingRoom{Membership: rs.Membership, Initial: true, BumpStamp: rs.Bump,
					JoinedCount: &rs.Joined, InvitedCount: &rs.Invited}
			}
		}
	}
	return nil
}

// matches applies a list's filters to a room.
func (s *Service) matches(b *builder, rs storage.RoomSummary, f *listFilters, dms map[string]bool) (bool, error) {
	if f == nil {
		return true, nil
	}
	if f.IsDM != nil && dms[rs.RoomID] != *f.IsDM {
		return false, nil
	}
	if f.IsEncrypted != nil && rs.Encrypted != *f.IsEncrypted {
		return false, nil
	}
	if f.IsInvite != nil && (rs.Membership == spec.Invite) != *f.IsInvite {
		return false, nil
	}
	typeIn := func(list []*string) bool {
		for _, t := range list {
			if (t == nil && rs.Type == "") || (t != nil && *t == rs.Type) {
				return true
			}
		}
		return false
	}
	if f.RoomTypes != nil && !typeIn(f.RoomTypes) {
		return false, nil
	}
	if f.NotRoomTypes != nil && typeIn(f.NotRoomTypes) {
		return false, nil
	}
	if f.Spaces != nil {
		in := false
		for _, space := range f.Spaces {
			children, err := b.q.SpaceChildren(b.ctx, space)
			if err != nil {
				return false, err
			}
			if slices.Contains(children, rs.RoomID) {
				in = true
				break
			}
		}
		if !in {
			return false, nil
		}
	}
	return true, nil
}

// slidingRoom shapes a joined room as MSC4186 has it.
func (s *Service) slidingRoom(b *builder, dev *httpapi.Device, rs storage.RoomSummary, c roomConfig, initial bool, limit int,
	since *streams.Token, tl timeline, state []json.RawMessage, unread unreadCounts) (*slidingRoom, error) {
	events := tl.Events
	if limit == 0 {
		events = nil
	}
	numLive := 0
	if !initial {
		numLive = len(events)
	}
	room := &slidingRoom{Membership: spec.Join, Initial: initial, Timeline: events, Limited: tl.Limited, PrevBatch: tl.PrevBatch,
		BumpStamp: rs.Bump, JoinedCount: &rs.Joined, InvitedCount: &rs.Invited, NumLive: &numLive, unreadCounts: &unread}
	// required_state: the state entries asked for; $LAZY members are those
	// the timeline needs.
	senders := map[string]bool{dev.UserID: true}
	for _, e := range events {
		senders[gjson.GetBytes(e, "sender").Str] = true
	}
	// The state before the timeline, then the timeline's own state events:
	// required_state is the room's state as of the response.
	var order []string
	latest := map[string]json.RawMessage{}
	for _, e := range append(slices.Clone(state), tl.Events...) {
		key := gjson.GetBytes(e, "state_key")
		if !key.Exists() {
			continue
		}
		k := gjson.GetBytes(e, "type").Str + "\x00" + key.Str
		if _, seen := latest[k]; !seen {
			order = append(order, k)
		}
		latest[k] = e
	}
	for _, k := range order {
		e := latest[k]
		typ, key := gjson.GetBytes(e, "type").Str, gjson.GetBytes(e, "state_key").Str
		if wanted(c.RequiredState, typ, key, dev.UserID, senders) {
			room.RequiredState = append(room.RequiredState, e)
		}
	}
	if initial {
		room.Name, room.Avatar = rs.Name, rs.Avatar
		if rs.Name == "" {
			members, err := b.q.JoinedMembersWithNames(b.ctx, rs.RoomID)
			if err != nil {
				return nil, err
			}
			for _, m := range members {
				if m.UserID != dev.UserID && len(room.Heroes) < 5 {
					room.Heroes = append(room.Heroes, slidingHero{UserID: m.UserID, DisplayName: m.DisplayName})
				}
			}
		}
	} else {
		// A rename or new avatar since the position.
		for _, e := range append(slices.Clone(state), events...) {
			switch gjson.GetBytes(e, "type").Str {
			case spec.MRoomName:
				room.Name = gjson.GetBytes(e, "content.name").Str
			case "m.room.avatar":
				room.Avatar = gjson.GetBytes(e, "content.url").Str
			}
		}
	}
	isDM := b.directRooms()[rs.RoomID]
	room.IsDM = &isDM
	return room, nil
}

// wanted reports whether required_state asks for a state entry.
func wanted(required [][]string, typ, key, me string, senders map[string]bool) bool {
	for _, r := range required {
		if len(r) != 2 {
			continue
		}
		t, k := r[0], r[1]
		if t != "*" && t != typ {
			continue
		}
		switch k {
		case "*":
			return true
		case "$ME":
			if key == me {
				return true
			}
		case "$LAZY":
			if typ == spec.MRoomMember && senders[key] {
				return true
			}
		default:
			if k == key {
				return true
			}
		}
	}
	return false
}
