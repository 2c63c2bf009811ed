package syncapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/devicelists"
	"github.com/redoubt-systems/redoubt/filter"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/notifier"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
	"github.com/redoubt-systems/redoubt/streams"
)

// Store is the part of storage.Q sync uses: what it reads
// and writes.
type Store interface {
	rooms.EventReader
	rooms.ViewerReader
	rooms.StateReader
	devicelists.Store
	UsersSharingRooms(ctx context.Context, userID string) (map[string]bool, error)
	AccountDataBetween(ctx context.Context, userID string, from, to int64) ([]storage.AccountDataEntry, error)
	DeleteToDeviceUpTo(ctx context.Context, userID, deviceID string, pos int64) error
	Event(ctx context.Context, eventID string) (storage.Event, error)
	EventsBetween(ctx context.Context, roomID string, from, to int64, limit int) (evs []storage.Event, more bool, err error)
	Filter(ctx context.Context, userID string, filterID int64) ([]byte, error)
	GetPresence(ctx context.Context, userID string) (storage.Presence, error)
	HasToDeviceUpTo(ctx context.Context, userID, deviceID string, pos int64) (bool, error)
	Heroes(ctx context.Context, roomID, userID string, n int) ([]string, error)
	JoinedMembersWithNames(ctx context.Context, roomID string) ([]storage.Member, error)
	MemberCounts(ctx context.Context, roomID string) (joined, invited int, err error)
	Memberships(ctx context.Context, userID string) ([]storage.RoomMembership, error)
	MembershipsIn(ctx context.Context, userID string, roomIDs []string) ([]storage.RoomMembership, error)
	Notifications(ctx context.Context, userID string, before int64, limit int, onlyHighlight bool) ([]storage.Notification, int64, error)
	DeviceKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, []string, error)
	PresenceBetween(ctx context.Context, from, to int64, seenBy string) ([]storage.Presence, error)
	ReceiptsBetween(ctx context.Context, roomID string, from, to int64) ([]storage.Receipt, error)
	RoomMembers(ctx context.Context, roomID string, memberships ...string) ([]string, error)
	RoomSummaries(ctx context.Context, userID string) ([]storage.RoomSummary, error)
	RoomsWithEventsBetween(ctx context.Context, from, to int64) (map[string]bool, error)
	RoomsWithReceiptsBetween(ctx context.Context, from, to int64) (map[string]bool, error)
	SetAccountData(ctx context.Context, userID, roomID, typ string, content []byte) (int64, error)
	SetPresence(ctx context.Context, p storage.Presence, touch bool) (bool, error)
	SetReceipt(ctx context.Context, r storage.Receipt) (bool, error)
	SpaceChildren(ctx context.Context, spaceID string) ([]string, error)
	StateAt(ctx context.Context, roomID string, pos int64) ([]storage.Event, error)
	MembersAt(ctx context.Context, roomID string, pos int64, userIDs []string) ([]storage.Event, error)
	StateChangesBetween(ctx context.Context, roomID string, from, to int64) ([]storage.Event, error)
	ThreadSubscriptionsBetween(ctx context.Context, userID string, from, to int64, limit int) ([]storage.ThreadSubscription, error)
	ToDeviceFor(ctx context.Context, userID, deviceID string, after, upto int64, limit int) ([]storage.ToDevice, error)
	UnreadCounts(ctx context.Context, userID, roomID string) (map[string]storage.Unread, error)
	UserExists(ctx context.Context, userID string) (bool, error)
}

var _ Store = storage.Q{}

// Service builds sync responses and serves the ephemeral endpoints.
type Service struct {
	Cfg      *config.Config
	DB       storage.View[Store]
	Rooms    *rooms.Service
	Notifier *notifier.Notifier
	Typing   *Typing
	Now      func() time.Time

	sliding slidingConns

	pollMu sync.Mutex
	polls  map[string]int // waiting long-polls per user
}

// maxPollsPerUser caps one user's waiting long-polls: more are answered at
// once instead of waiting, so one client cannot hold goroutines without end.
const maxPollsPerUser = 8

// startPoll reports whether the user may wait; if so, endPoll must follow.
func (s *Service) startPoll(userID string) bool {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	if s.polls == nil {
		s.polls = map[string]int{}
	}
	if s.polls[userID] >= maxPollsPerUser {
		return false
	}
	s.polls[userID]++
	return true
}

func (s *Service) endPoll(userID string) {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	if s.polls[userID]--; s.polls[userID] <= 0 {
		delete(s.polls, userID)
	}
}

// maxTimeout caps how long one /sync may wait.
const maxTimeout = 5 * time.Minute

type syncRequest struct {
	since     *streams.Token
	timeout   time.Duration
	fullState bool
	presence  string
	filter    *filter.Filter
	// stateAfter (MSC4222): send the state at the end of each timeline, as
	// state_after, instead of the state at its start.
	stateAfter bool
	// apply: set_presence and the to-device messages the token
	// acknowledges are still to be applied (builder.pending).
	apply bool
}

// GET /_matrix/client/v3/sync
func (s *Service) sync(r *http.Request, dev *httpapi.Device) httpapi.Response {
	req, err := s.parse(r, dev)
	if err != nil {
		return httpapi.Fail(err)
	}
	ctx := r.Context()
	req.apply = true
	// Listen before reading, so that a commit between the read and the wait
	// still wakes this request.
	l := s.Notifier.Listen(dev.UserID)
	defer l.Close()
	var timer <-chan time.Time
	if req.since != nil && !req.fullState && req.timeout > 0 && s.startPoll(dev.UserID) {
		defer s.endPoll(dev.UserID)
		t := time.NewTimer(req.timeout)
		defer t.Stop()
		timer = t.C
	}
	for {
		res, empty, err := s.build(ctx, dev, req)
		if err != nil {
			return httpapi.Fail(err)
		}
		if !empty || timer == nil {
			return httpapi.OK(res)
		}
		select {
		case <-l.C:
		case <-timer:
			return httpapi.OK(res)
		case <-ctx.Done():
			return httpapi.OK(res)
		}
	}
}

func (s *Service) parse(r *http.Request, dev *httpapi.Device) (*syncRequest, error) {
	q := r.URL.Query()
	req := &syncRequest{presence: q.Get("set_presence"), filter: &filter.Filter{}}
	if since := q.Get("since"); since != "" {
		t, err := streams.ParseToken(since)
		if err != nil {
			return nil, err
		}
		req.since = &t
	}
	if t := q.Get("timeout"); t != "" {
		ms, err := strconv.ParseInt(t, 10, 64)
		if err != nil || ms < 0 {
			return nil, httpapi.InvalidParam("timeout must be a non-negative number of milliseconds")
		}
		req.timeout = min(time.Duration(ms)*time.Millisecond, maxTimeout)
	}
	switch fs := q.Get("full_state"); fs {
	case "", "false":
	case "true":
		req.fullState = true
	default:
		return nil, httpapi.InvalidParam("full_state must be true or false")
	}
	for _, name := range []string{"use_state_after", "org.matrix.msc4222.use_state_after"} {
		switch v := q.Get(name); v {
		case "", "false":
		case "true":
			req.stateAfter = true
		default:
			return nil, httpapi.InvalidParam("%s must be true or false", name)
		}
	}
	switch req.presence {
	case "", "online", "offline", "unavailable":
	default:
		return nil, httpapi.InvalidParam("set_presence must be online, offline or unavailable")
	}
	if f := q.Get("filter"); f != "" {
		var raw []byte
		if strings.HasPrefix(f, "{") {
			raw = []byte(f)
		} else {
			id, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return nil, httpapi.InvalidParam("filter is neither a filter ID nor a JSON filter")
			}
			raw, err = s.DB.R().Filter(r.Context(), dev.UserID, id)
			if errors.Is(err, storage.ErrNotFound) {
				return nil, httpapi.InvalidParam("unknown filter ID %d", id)
			}
			if err != nil {
				return nil, err
			}
		}
		parsed, err := filter.Parse(raw)
		if err != nil {
			return nil, httpapi.InvalidParam("invalid filter: %v", err)
		}
		req.filter = parsed
	}
	return req, nil
}

// builder assembles one response inside one read transaction.
type builder struct {
	s     *Service
	ctx   context.Context
	q     Store
	dev   *httpapi.Device
	req   *syncRequest
	since streams.Token // zero for an initial sync
	to    streams.Token
	res   *Response
	empty bool
	// roomAccountData holds the room account data changed since the token.
	roomAccountData map[string][]json.RawMessage
	// newlyShared are users who came to share a room with the user since
	// the token: their presence is sent even if it did not change.
	newlyShared map[string]bool
	// ignored are the users the user ignores: none of their messages or
	// invites are sent. Read when first needed (ignoredUsers): a wake-up
	// for a to-device message or a receipt shows no events.
	ignored     map[string]bool
	readIgnored bool
	// direct are the rooms the user's m.direct names (sliding sync), read
	// once per response.
	direct map[string]bool
	// memberships are the user's current memberships of the rooms sent.
	memberships map[string]storage.RoomMembership
	// setPresence is the presence set_presence asks for, if it is not the
	// stored one; ack, whether to-device messages the token acknowledges
	// are still stored (pending).
	setPresence *storage.Presence
	ack         bool
}

// build returns a response, and whether it has nothing new for the client.
// On the request's first build it also writes what the request asks for
// (req.apply), as read in the response's snapshot: the to-device messages
// its token acknowledges are deleted, and a presence to set is set before
// the response is built again.
func (s *Service) build(ctx context.Context, dev *httpapi.Device, req *syncRequest) (*Response, bool, error) {
	b, err := s.run(ctx, dev, req, nil)
	if err != nil || !req.apply {
		return b.res, b.empty, err
	}
	req.apply = false
	if b.ack {
		if err := s.deleteToDevice(ctx, dev, req.since.ToDevice); err != nil {
			return nil, false, err
		}
	}
	if p := b.setPresence; p != nil {
		if err := s.setPresence(ctx, dev.UserID, p.State, p.StatusMsg, false); err != nil {
			return nil, false, err
		}
		return s.build(ctx, dev, req)
	}
	return b.res, b.empty, nil
}

// pending reads, in the response's snapshot rather than in reads of their
// own, what the request asks to be written: set_presence (default online)
// if it differs from the stored presence, and the token's acknowledgement
// of the to-device messages delivered before it, if any are still stored.
func (b *builder) pending() error {
	if b.s.Cfg.Presence.Enabled {
		state := cmp.Or(b.req.presence, "online")
		cur, err := b.q.GetPresence(b.ctx, b.dev.UserID)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if err != nil || cur.State != state {
			b.setPresence = &storage.Presence{State: state, StatusMsg: cur.StatusMsg}
		}
	}
	if b.req.since != nil && b.req.since.ToDevice > 0 {
		var err error
		b.ack, err = b.q.HasToDeviceUpTo(b.ctx, b.dev.UserID, b.dev.DeviceID, b.req.since.ToDevice)
		return err
	}
	return nil
}

// run builds a response in one read transaction and returns the builder
// (sliding sync reads its parts); then, if set, runs in that transaction.
func (s *Service) run(ctx context.Context, dev *httpapi.Device, req *syncRequest, then func(b *builder) error) (*builder, error) {
	b := &builder{s: s, ctx: ctx, dev: dev, req: req, empty: true, roomAccountData: map[string][]json.RawMessage{}, newlyShared: map[string]bool{}}
	if req.since != nil {
		b.since = *req.since
	}
	err := s.DB.ReadPositioned(ctx, func(q Store, pos storage.Positions) error {
		b.q = q
		if req.apply {
			// A presence to set is set before the response is built.
			if err := b.pending(); err != nil || b.setPresence != nil {
				return err
			}
		}
		b.to = streams.Token{Events: pos.Events, AccountData: pos.AccountData, Receipts: pos.Receipts,
			Typing: s.Typing.Pos(), Presence: pos.Presence, ToDevice: pos.ToDevice, DeviceLists: pos.DeviceLists}
		// A token from the future (another instance's, or hand-made) is
		// treated as now rather than hiding everything until it is reached.
		b.clampSince()
		b.res = &Response{NextBatch: b.to.String(),
			Rooms:       roomsSection{Join: map[string]*joinedRoom{}, Invite: map[string]*invitedRoom{}, Leave: map[string]*leftRoom{}, Knock: map[string]*knockedRoom{}},
			AccountData: eventsSection{Events: []json.RawMessage{}},
			Presence:    eventsSection{Events: []json.RawMessage{}},
			ToDevice:    eventsSection{Events: []json.RawMessage{}},
		}
		if err := b.accountData(); err != nil {
			return err
		}
		if err := b.rooms(); err != nil {
			return err
		}
		if err := b.presence(); err != nil {
			return err
		}
		if err := b.e2ee(); err != nil {
			return err
		}
		b.res.NextBatch = b.to.String()
		if then != nil {
			return then(b)
		}
		return nil
	})
	return b, err
}

func (b *builder) clampSince() {
	if b.req.since == nil {
		return
	}
	s, t := &b.since, b.to
	s.Events, s.AccountData, s.Receipts = min(s.Events, t.Events), min(s.AccountData, t.AccountData), min(s.Receipts, t.Receipts)
	s.Typing, s.Presence = min(s.Typing, t.Typing), min(s.Presence, t.Presence)
	s.ToDevice, s.DeviceLists = min(s.ToDevice, t.ToDevice), min(s.DeviceLists, t.DeviceLists)
}

func (b *builder) initial() bool { return b.req.since == nil }

// ignoredUsers returns the users the user ignores, read once per response.
func (b *builder) ignoredUsers() (map[string]bool, error) {
	if !b.readIgnored {
		var err error
		if b.ignored, err = rooms.IgnoredUsers(b.ctx, b.q, b.dev.UserID); err != nil {
			return nil, err
		}
		b.readIgnored = true
	}
	return b.ignored, nil
}
