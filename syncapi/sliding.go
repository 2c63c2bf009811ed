package syncapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/filter"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
	"github.com/redoubt-systems/redoubt/streams"
	"github.com/redoubt-systems/redoubt/threads"
)

// Simplified Sliding Sync (MSC4186), as Element X speaks it. It is built
// from the same streams as /sync (the builder of sync.go does the work for
// the rooms a response carries) and waits on the same notifier. What a
// connection has already sent lives in memory: after a restart, or with a
// pos the server does not know, the client gets M_UNKNOWN_POS and starts
// over.

const slidingPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

var errUnknownPos = &httpapi.Error{Status: http.StatusBadRequest, Code: "M_UNKNOWN_POS", Message: "unknown position; start a new connection"}

type roomConfig struct {
	RequiredState [][]string `json:"required_state"`
	TimelineLimit int        `json:"timeline_limit"`
}

type listFilters struct {
	IsDM         *bool     `json:"is_dm"`
	IsEncrypted  *bool     `json:"is_encrypted"`
	IsInvite     *bool     `json:"is_invite"`
	Spaces       []string  `json:"spaces"`
	RoomTypes    []*string `json:"room_types"`
	NotRoomTypes []*string `json:"not_room_types"`
}

type slidingList struct {
	roomConfig
	Ranges  [][]int      `json:"ranges"`
	Filters *listFilters `json:"filters"`
}

type extScope struct {
	Enabled *bool    `json:"enabled"`
	Lists   []string `json:"lists"`
	Rooms   []string `json:"rooms"`
}

func (e *extScope) on() bool { return e != nil && e.Enabled != nil && *e.Enabled }

type slidingRequest struct {
	ConnID            string                 `json:"conn_id"`
	Lists             map[string]slidingList `json:"lists"`
	RoomSubscriptions map[string]roomConfig  `json:"room_subscriptions"`
	Extensions        struct {
		ToDevice *struct {
			extScope
			Since string `json:"since"`
		} `json:"to_device"`
		E2EE        *extScope `json:"e2ee"`
		AccountData *extScope `json:"account_data"`
		Receipts    *extScope `json:"receipts"`
		Typing      *extScope `json:"typing"`
		// Thread subscriptions (MSC4308).
		ThreadSubscriptions *struct {
			extScope
			Limit *int `json:"limit"`
		} `json:"io.element.msc4308.thread_subscriptions"`
	} `json:"extensions"`
}

// slidingConn is one connection (user, device, conn_id): what the client
// has, as of each position it may still send.
type slidingConn struct {
	mu sync.Mutex
	// have maps each valid position's version to the rooms the client had
	// then, each with the config it was sent with. The version the client
	// last sent stays valid alongside those answered since: a response the
	// client never got (it aborted the request, or the network lost it) is
	// answered again from the same position, as Synapse does.
	have   map[int]map[string]string
	latest int
	used   time.Time
	// gen counts requests; supersede is closed when a newer one arrives.
	gen       int
	supersede chan struct{}
}

// Connections are kept in memory (a restart means M_UNKNOWN_POS and a fresh
// start) and bounded: idle ones expire, and a device has only so many.
const (
	connIdle      = 30 * time.Minute
	connsPerDev   = 16
	versionsKept  = 8
	sweepInterval = time.Minute
)

type slidingConns struct {
	mu        sync.Mutex
	byDevice  map[string]map[string]*slidingConn // user|device -> conn_id -> conn
	lastSweep time.Time
}

// get returns a device's connection; create starts it afresh.
func (c *slidingConns) get(device, connID string, create bool, now time.Time) *slidingConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byDevice == nil {
		c.byDevice = map[string]map[string]*slidingConn{}
	}
	if now.Sub(c.lastSweep) > sweepInterval {
		c.lastSweep = now
		for d, conns := range c.byDevice {
			for id, conn := range conns {
				if conn.lastUsed().Before(now.Add(-connIdle)) {
					delete(conns, id)
				}
			}
			if len(conns) == 0 {
				delete(c.byDevice, d)
			}
		}
	}
	conns := c.byDevice[device]
	if !create {
		return conns[connID]
	}
	if conns == nil {
		conns = map[string]*slidingConn{}
		c.byDevice[device] = conns
	}
	if _, ok := conns[connID]; !ok && len(conns) >= connsPerDev {
		// The device's least recently used connection makes way.
		oldest := ""
		for id, conn := range conns {
			if oldest == "" || conn.lastUsed().Before(conns[oldest].lastUsed()) {
				oldest = id
			}
		}
		delete(conns, oldest)
	}
	conn := &slidingConn{have: map[int]map[string]string{0: {}}, used: now}
	conns[connID] = conn
	return conn
}

// SlidingConnections is how many sliding sync connections are kept.
func (s *Service) SlidingConnections() int { return s.sliding.count() }

func (c *slidingConns) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, conns := range c.byDevice {
		n += len(conns)
	}
	return n
}

func (c *slidingConn) lastUsed() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync
func (s *Service) slidingSync(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req slidingRequest
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	q := r.URL.Query()
	if id := q.Get("conn_id"); id != "" {
		req.ConnID = id
	}
	timeout := time.Duration(0)
	if t := q.Get("timeout"); t != "" {
		ms, err := strconv.ParseInt(t, 10, 64)
		if err != nil || ms < 0 {
			return httpapi.Fail(httpapi.InvalidParam("timeout must be a non-negative number of milliseconds"))
		}
		timeout = min(time.Duration(ms)*time.Millisecond, maxTimeout)
	}
	for name, l := range req.Lists {
		for _, rg := range l.Ranges {
			if len(rg) != 2 || rg[0] < 0 || rg[1] < rg[0] {
				return httpapi.Fail(httpapi.InvalidParam("list %q: ranges are [start, end] pairs", name))
			}
		}
	}
	device := dev.UserID + "|" + dev.DeviceID
	pos := q.Get("pos")
	var conn *slidingConn
	var since *streams.Token
	version := 0
	if pos == "" {
		conn = s.sliding.get(device, req.ConnID, true, s.Now())
	} else {
		conn = s.sliding.get(device, req.ConnID, false, s.Now())
		ver, tok, ok := strings.Cut(pos, "~")
		v, err := strconv.Atoi(ver)
		if !ok || err != nil || conn == nil {
			return httpapi.Fail(errUnknownPos)
		}
		t, err := streams.ParseToken(tok)
		if err != nil {
			return httpapi.Fail(errUnknownPos)
		}
		if !conn.use(v, s.Now()) {
			return httpapi.Fail(errUnknownPos)
		}
		since, version = &t, v
	}
	if since != nil && req.Extensions.ToDevice != nil && req.Extensions.ToDevice.Since != "" {
		if upTo, err := strconv.ParseInt(req.Extensions.ToDevice.Since, 10, 64); err == nil && upTo > 0 {
			if err := s.ackToDevice(r.Context(), dev, upTo); err != nil {
				return httpapi.Fail(err)
			}
		}
	}
	// A newer request on the connection supersedes one still waiting (a
	// client that gave up on it and asked again). The connection's lock is
	// held only to read and record positions, never while building or
	// waiting.
	conn.mu.Lock()
	conn.gen++
	gen := conn.gen
	if conn.supersede != nil {
		close(conn.supersede)
	}
	superseded := make(chan struct{})
	conn.supersede = superseded
	conn.mu.Unlock()

	l := s.Notifier.Listen(dev.UserID)
	defer l.Close()
	var timer <-chan time.Time
	if since != nil && timeout > 0 && s.startPoll(dev.UserID) {
		defer s.endPoll(dev.UserID)
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	for {
		conn.mu.Lock()
		have := conn.have[version]
		if conn.gen != gen || have == nil {
			conn.mu.Unlock()
			return httpapi.Fail(errUnknownPos)
		}
		conn.mu.Unlock()
		// Building reads the database, not the connection: what the client
		// had at this position does not change once answered.
		res, empty, to, sent, err := s.slidingBuild(r, dev, have, since, &req)
		if err != nil {
			return httpapi.Fail(err)
		}
		if !empty || timer == nil {
			return s.answer(conn, gen, version, res, to, sent)
		}
		select {
		case <-l.C:
			continue
		case <-superseded:
			return httpapi.Fail(errUnknownPos)
		case <-r.Context().Done():
			// The client hung up: nothing was sent, so nothing changes.
			return httpapi.OK(res)
		case <-timer:
		}
		// Timed out: the empty answer of the last build.
		return s.answer(conn, gen, version, res, to, sent)
	}
}

// answer records a response as sent, from the position version, and gives
// it its new position; a request superseded meanwhile gets M_UNKNOWN_POS.
func (s *Service) answer(conn *slidingConn, gen, version int, res map[string]any, to streams.Token, sent map[string]string) httpapi.Response {
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if conn.gen != gen || conn.have[version] == nil {
		return httpapi.Fail(errUnknownPos)
	}
	res["pos"] = conn.commit(version, to, sent)
	return httpapi.OK(res)
}

// use marks a position as the one the client goes on from: older ones are
// forgotten. It reports whether the position is still valid.
func (c *slidingConn) use(version int, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.have[version] == nil {
		return false
	}
	for v := range c.have {
		if v < version {
			delete(c.have, v)
		}
	}
	c.used = now
	return true
}

// commit records a response built from position from: the client now has
// what it had there plus the rooms this response carried, at a new
// position. The caller holds c.mu.
func (c *slidingConn) commit(from int, to streams.Token, sent map[string]string) string {
	have := make(map[string]string, len(c.have[from])+len(sent))
	for id, f := range c.have[from] {
		have[id] = f
	}
	for id, f := range sent {
		have[id] = f
	}
	c.latest++
	c.have[c.latest] = have
	// A client retrying without end keeps only the newest answers.
	for len(c.have) > versionsKept {
		oldest := c.latest
		for v := range c.have {
			if v != from && v < oldest {
				oldest = v
			}
		}
		delete(c.have, oldest)
	}
	return fmt.Sprintf("%d~%s", c.latest, to.String())
}

func fingerprint(c roomConfig) string {
	b, _ := json.Marshal(c)
	return string(b)
}

// merge combines two configs of a room shown by several lists.
func merge(a, b roomConfig) roomConfig {
	out := roomConfig{TimelineLimit: max(a.TimelineLimit, b.TimelineLimit)}
	out.RequiredState = append(slices.Clone(a.RequiredState), b.RequiredState...)
	return out
}

// slidingBuild computes one response: lists, the rooms to send, extensions.
// It reports whether there is nothing new for an incremental request.
func (s *Service) slidingBuild(r *http.Request, dev *httpapi.Device, have map[string]string, since *streams.Token, req *slidingRequest) (map[string]any, bool, streams.Token, map[string]string, error) {
	ctx := r.Context()
	res := map[string]any{}
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
		dms := map[string]bool{}
		if direct, err := b.q.AccountData(ctx, dev.UserID, "", "m.direct"); err == nil {
			gjson.ParseBytes(direct).ForEach(func(_, ids gjson.Result) bool {
				for _, id := range ids.Array() {
					dms[id.Str] = true
				}
				return true
			})
		}
		// Lists: filter, order by latest activity, cut the windows.
		configs := map[string]roomConfig{}
		listsOut := map[string]any{}
		listRooms := map[string][]string{}
		for name, l := range req.Lists {
			var rooms []storage.RoomSummary
			for _, rs := range summaries {
				if rs.Membership == spec.Leave || rs.Membership == spec.Ban {
					continue
				}
				ok, err := s.matches(b, rs, l.Filters, dms)
				if err != nil {
					return err
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
			listsOut[name] = map[string]any{"count": len(rooms)}
			for _, rg := range l.Ranges {
				for i := rg[0]; i <= rg[1] && i < len(rooms); i++ {
					id := rooms[i].RoomID
					configs[id] = merge(configs[id], l.roomConfig)
					listRooms[name] = append(listRooms[name], id)
				}
			}
		}
		for id, c := range req.RoomSubscriptions {
			if _, ok := byID[id]; ok {
				configs[id] = merge(configs[id], c)
			}
		}
		res["lists"] = listsOut
		// Rooms: new to the connection (or asked for differently) get an
		// initial view; the others what changed since the position.
		roomsOut := map[string]any{}
		groups := map[string][]string{} // "i<limit>" or "u<limit>" -> rooms
		for id, c := range configs {
			kind := "u"
			if since == nil || have[id] != fingerprint(c) {
				kind = "i"
			}
			groups[fmt.Sprintf("%s%d", kind, c.TimelineLimit)] = append(groups[fmt.Sprintf("%s%d", kind, c.TimelineLimit)], id)
		}
		// Rooms sent before that the user has since left: they learn of it.
		if since != nil {
			for id := range have {
				if rs, ok := byID[id]; ok && (rs.Membership == spec.Leave || rs.Membership == spec.Ban) && rs.MembershipPos > since.Events {
					if _, shown := configs[id]; !shown {
						groups["u1"] = append(groups["u1"], id)
					}
				}
			}
		}
		for g, ids := range groups {
			limit, _ := strconv.Atoi(g[1:])
			sub := &builder{s: s, ctx: ctx, q: b.q, dev: dev, to: b.to, empty: true, roomAccountData: map[string][]json.RawMessage{},
				res: &Response{Rooms: roomsSection{Join: map[string]*joinedRoom{}, Invite: map[string]*invitedRoom{}, Leave: map[string]*leftRoom{}, Knock: map[string]any{}}}}
			lim := max(1, limit)
			sub.req = &syncRequest{filter: &filter.Filter{Room: filter.RoomFilter{Rooms: ids, IncludeLeave: true,
				Timeline: filter.RoomEventFilter{EventFilter: filter.EventFilter{Limit: &lim}}}}}
			initial := g[0] == 'i'
			if !initial {
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
				room, err := s.slidingRoom(b, dev, byID[id], configs[id], initial, limit, since, jr.Timeline, jr.State.Events, jr.Unread)
				if err != nil {
					return err
				}
				roomsOut[id] = room
			}
			for id, ir := range sub.res.Rooms.Invite {
				room := map[string]any{"membership": "invite", "initial": true, "invite_state": ir.InviteState.Events,
					"bump_stamp": byID[id].Bump, "timeline": []any{}}
				setNonEmpty(room, "name", byID[id].Name)
				roomsOut[id] = room
			}
			for id, kr := range sub.res.Rooms.Knock {
				roomsOut[id] = map[string]any{"membership": "knock", "initial": true, "knock_state": kr.(map[string]any)["knock_state"],
					"bump_stamp": byID[id].Bump}
			}
			for id, lr := range sub.res.Rooms.Leave {
				roomsOut[id] = map[string]any{"membership": byID[id].Membership, "initial": initial, "timeline": lr.Timeline.Events,
					"limited": lr.Timeline.Limited, "prev_batch": lr.Timeline.PrevBatch, "bump_stamp": byID[id].Bump}
			}
			if initial {
				for _, id := range ids {
					if _, ok := roomsOut[id]; !ok {
						// Nothing the builder sends (say, a room with no
						// visible history): still tell the client of it.
						rs := byID[id]
						roomsOut[id] = map[string]any{"membership": rs.Membership, "initial": true, "timeline": []any{},
							"bump_stamp": rs.Bump, "joined_count": rs.Joined, "invited_count": rs.Invited}
					}
				}
			}
		}
		for id, c := range configs {
			sent[id] = fingerprint(c)
		}
		if len(roomsOut) > 0 {
			res["rooms"] = roomsOut
			empty = false
		}
		ext, extEmpty, err := s.extensions(b, req, roomsOut, listRooms)
		if err != nil {
			return err
		}
		res["extensions"] = ext
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

// setNonEmpty sets a room's field, or leaves it out: strict clients take a
// null for a malformed response, and an absent name is no name.
func setNonEmpty(room map[string]any, key, s string) {
	if s == "" {
		delete(room, key)
		return
	}
	room[key] = s
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
	since *streams.Token, tl timeline, state []json.RawMessage, unread unreadCounts) (map[string]any, error) {
	events := tl.Events
	if limit == 0 {
		events = []json.RawMessage{}
	}
	numLive := 0
	if !initial {
		numLive = len(events)
	}
	room := map[string]any{"membership": "join", "initial": initial, "timeline": events, "limited": tl.Limited,
		"bump_stamp": rs.Bump, "joined_count": rs.Joined, "invited_count": rs.Invited, "num_live": numLive,
		"notification_count": unread.Notifications, "highlight_count": unread.Highlights}
	if tl.PrevBatch != "" {
		room["prev_batch"] = tl.PrevBatch
	}
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
	var required []json.RawMessage
	for _, k := range order {
		e := latest[k]
		typ, key := gjson.GetBytes(e, "type").Str, gjson.GetBytes(e, "state_key").Str
		if wanted(c.RequiredState, typ, key, dev.UserID, senders) {
			required = append(required, e)
		}
	}
	if required == nil {
		required = []json.RawMessage{}
	}
	room["required_state"] = required
	if initial {
		setNonEmpty(room, "name", rs.Name)
		setNonEmpty(room, "avatar", rs.Avatar)
		if rs.Name == "" {
			members, err := b.q.JoinedMembersWithNames(b.ctx, rs.RoomID)
			if err != nil {
				return nil, err
			}
			var heroes []map[string]any
			for _, m := range members {
				if m.UserID != dev.UserID && len(heroes) < 5 {
					h := map[string]any{"user_id": m.UserID}
					if m.DisplayName != "" {
						h["displayname"] = m.DisplayName
					}
					heroes = append(heroes, h)
				}
			}
			if heroes != nil {
				room["heroes"] = heroes
			}
		}
	} else {
		// A rename or new avatar since the position.
		for _, e := range append(slices.Clone(state), events...) {
			switch gjson.GetBytes(e, "type").Str {
			case spec.MRoomName:
				setNonEmpty(room, "name", gjson.GetBytes(e, "content.name").Str)
			case "m.room.avatar":
				setNonEmpty(room, "avatar", gjson.GetBytes(e, "content.url").Str)
			}
		}
	}
	dms, _ := b.q.AccountData(b.ctx, dev.UserID, "", "m.direct")
	isDM := false
	gjson.ParseBytes(dms).ForEach(func(_, ids gjson.Result) bool {
		for _, id := range ids.Array() {
			isDM = isDM || id.Str == rs.RoomID
		}
		return !isDM
	})
	room["is_dm"] = isDM
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

// inScope reports whether an extension covers a room: by default the rooms
// of this response.
func inScope(e *extScope, roomID string, rooms map[string]any, listRooms map[string][]string) bool {
	if e.Lists == nil && e.Rooms == nil {
		_, ok := rooms[roomID]
		return ok
	}
	if slices.Contains(e.Rooms, "*") || slices.Contains(e.Rooms, roomID) {
		return true
	}
	for _, l := range e.Lists {
		if l == "*" {
			for _, ids := range listRooms {
				if slices.Contains(ids, roomID) {
					return true
				}
			}
		}
		if slices.Contains(listRooms[l], roomID) {
			return true
		}
	}
	return false
}

// extensions fills the requested extensions from the main builder, which
// read the user's streams since the position.
func (s *Service) extensions(b *builder, req *slidingRequest, rooms map[string]any, listRooms map[string][]string) (map[string]any, bool, error) {
	out := map[string]any{}
	empty := true
	x := req.Extensions
	if x.ToDevice != nil && x.ToDevice.on() {
		out["to_device"] = map[string]any{"next_batch": strconv.FormatInt(b.to.ToDevice, 10), "events": b.res.ToDevice.Events}
		empty = empty && len(b.res.ToDevice.Events) == 0
	}
	if x.E2EE.on() {
		e := map[string]any{"device_one_time_keys_count": b.res.OTKCounts, "device_unused_fallback_key_types": b.res.UnusedFallbackKey}
		if b.res.DeviceLists != nil {
			e["device_lists"] = b.res.DeviceLists
			empty = false
		}
		out["e2ee"] = e
	}
	if x.AccountData.on() {
		perRoom := map[string][]json.RawMessage{}
		for id, evs := range b.roomAccountData {
			if inScope(x.AccountData, id, rooms, listRooms) {
				perRoom[id] = evs
			}
		}
		out["account_data"] = map[string]any{"global": b.res.AccountData.Events, "rooms": perRoom}
		empty = empty && len(b.res.AccountData.Events) == 0 && len(perRoom) == 0
	}
	if x.Receipts.on() || x.Typing.on() {
		receipts, typing := map[string]json.RawMessage{}, map[string]json.RawMessage{}
		for id := range rooms {
			if !inScope(x.Receipts, id, rooms, listRooms) && !inScope(x.Typing, id, rooms, listRooms) {
				continue
			}
			evs, err := b.ephemeral(id)
			if err != nil {
				return nil, false, err
			}
			for _, e := range evs {
				switch gjson.GetBytes(e, "type").Str {
				case "m.receipt":
					if x.Receipts.on() {
						receipts[id] = e
					}
				case "m.typing":
					if x.Typing.on() {
						typing[id] = e
					}
				}
			}
		}
		if x.Receipts.on() {
			out["receipts"] = map[string]any{"rooms": receipts}
		}
		if x.Typing.on() {
			out["typing"] = map[string]any{"rooms": typing}
		}
		empty = empty && len(receipts) == 0 && len(typing) == 0
	}
	if ts := x.ThreadSubscriptions; ts != nil && ts.on() && b.s.Cfg.Push.ThreadSubscriptions {
		e, err := b.threadSubscriptions(ts.Limit)
		if err != nil {
			return nil, false, err
		}
		if e != nil {
			out["io.element.msc4308.thread_subscriptions"] = e
			empty = false
		}
	}
	return out, empty, nil
}

// threadSubscriptions is the MSC4308 extension: the newest subscription
// changes since the position (they are on the account data stream), or nil
// if there are none.
func (b *builder) threadSubscriptions(limit *int) (map[string]any, error) {
	n := 100
	if limit != nil && *limit > 0 {
		n = min(*limit, 1000)
	}
	subs, err := b.q.ThreadSubscriptionsBetween(b.ctx, b.dev.UserID, b.since.AccountData, b.to.AccountData, n)
	if err != nil || len(subs) == 0 {
		return nil, err
	}
	out := threads.Changes(subs)
	// More than fit: the client pages back with the companion endpoint.
	if len(subs) == n {
		out["prev_batch"] = threads.Token(subs[len(subs)-1].Pos - 1)
	}
	return out, nil
}
