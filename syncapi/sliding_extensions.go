package syncapi

import (
	"encoding/json"
	"slices"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/streams"
	"github.com/redoubt-systems/redoubt/threads"
)

// inScope reports whether an extension covers a room: by default the rooms
// of this response.
func inScope(e *extScope, roomID string, rooms map[string]*slidingRoom, listRooms map[string][]string) bool {
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

// extensions fills the requested extensions of a response from the main
// builder, which read the user's streams since the position. It reports
// whether they carry nothing new.
func (s *Service) extensions(b *builder, req *slidingRequest, res *slidingResponse, listRooms map[string][]string) (bool, error) {
	out := &res.Extensions
	empty := true
	x := req.Extensions
	if x.ToDevice != nil && x.ToDevice.on() {
		out.ToDevice = &toDeviceExtension{NextBatch: strconv.FormatInt(b.to.ToDevice, 10), Events: b.res.ToDevice.Events}
		empty = empty && len(b.res.ToDevice.Events) == 0
	}
	if x.E2EE.on() {
		out.E2EE = &e2eeExtension{OTKCounts: b.res.OTKCounts, UnusedFallbackKey: b.res.UnusedFallbackKey, DeviceLists: b.res.DeviceLists}
		empty = empty && b.res.DeviceLists == nil
	}
	if x.AccountData.on() {
		perRoom := map[string][]json.RawMessage{}
		for id, evs := range b.roomAccountData {
			if inScope(x.AccountData, id, res.Rooms, listRooms) {
				perRoom[id] = evs
			}
		}
		out.AccountData = &accountDataExtension{Global: b.res.AccountData.Events, Rooms: perRoom}
		empty = empty && len(b.res.AccountData.Events) == 0 && len(perRoom) == 0
	}
	if x.Receipts.on() || x.Typing.on() {
		receipts, typing, err := b.slidingEphemeral(x, res.Rooms, listRooms)
		if err != nil {
			return false, err
		}
		if x.Receipts.on() {
			out.Receipts = &roomsExtension{Rooms: receipts}
		}
		if x.Typing.on() {
			out.Typing = &roomsExtension{Rooms: typing}
		}
		empty = empty && len(receipts) == 0 && len(typing) == 0
	}
	if ts := x.ThreadSubscriptions; ts != nil && ts.on() && b.s.Cfg.Push.ThreadSubscriptions {
		changes, err := b.threadSubscriptions(ts.Limit)
		if err != nil {
			return false, err
		}
		out.ThreadSubscriptions = changes
		empty = empty && changes == nil
	}
	return empty, nil
}

// slidingEphemeral is the receipts and typing extensions: each room's
// m.receipt and m.typing events, for the rooms in their scopes.
func (b *builder) slidingEphemeral(x extensionsRequest, rooms map[string]*slidingRoom, listRooms map[string][]string) (receipts, typing map[string]json.RawMessage, err error) {
	receipts, typing = map[string]json.RawMessage{}, map[string]json.RawMessage{}
	for id := range rooms {
		wantReceipts := x.Receipts.on() && inScope(x.Receipts, id, rooms, listRooms)
		wantTyping := x.Typing.on() && inScope(x.Typing, id, rooms, listRooms)
		if !wantReceipts && !wantTyping {
			continue
		}
		evs, err := b.ephemeral(id)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range evs {
			switch typ := gjson.GetBytes(e, "type").Str; {
			case typ == "m.receipt" && wantReceipts:
				receipts[id] = e
			case typ == "m.typing" && wantTyping:
				typing[id] = e
			}
		}
	}
	return receipts, typing, nil
}

// threadSubscriptions is the MSC4308 extension: the newest subscription
// changes since the position (they are on the account data stream), or nil
// if there are none.
func (b *builder) threadSubscriptions(limit *int) (*threads.Changes, error) {
	n := 100
	if limit != nil && *limit > 0 {
		n = min(*limit, 1000)
	}
	subs, err := b.q.ThreadSubscriptionsBetween(b.ctx, b.dev.UserID, b.since.AccountData, b.to.AccountData, n)
	if err != nil || len(subs) == 0 {
		return nil, err
	}
	out := threads.NewChanges(subs)
	// More than fit: the client pages back with the companion endpoint.
	if len(subs) == n {
		out.PrevBatch = streams.Subscriptions(subs[len(subs)-1].Pos - 1)
	}
	return out, nil
}
