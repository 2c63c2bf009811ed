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
		receipts, typing, err := b.slidingEphemeral(x, rooms, listRooms)
		if err != nil {
			return nil, false, err
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

// slidingEphemeral is the receipts and typing extensions: each room's
// m.receipt and m.typing events, for the rooms in their scopes.
func (b *builder) slidingEphemeral(x extensionsRequest, rooms map[string]any, listRooms map[string][]string) (receipts, typing map[string]json.RawMessage, err error) {
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
		out["prev_batch"] = streams.Subscriptions(subs[len(subs)-1].Pos - 1)
	}
	return out, nil
}
