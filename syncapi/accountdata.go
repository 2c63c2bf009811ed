package syncapi

import (
	"encoding/json"

	"github.com/redoubt-systems/redoubt/push"
)

// The account data stream: global and per-room account data since the
// token (push rules included).

func accountDataEvent(typ string, content []byte) json.RawMessage {
	ev, _ := json.Marshal(map[string]any{"type": typ, "content": json.RawMessage(content)})
	return ev
}

func (b *builder) accountData() error {
	// Each stream is read only when its position moved.
	if !b.initial() && b.since.AccountData == b.to.AccountData {
		return nil
	}
	entries, err := b.q.AccountDataBetween(b.ctx, b.dev.UserID, b.since.AccountData, b.to.AccountData)
	if err != nil {
		return err
	}
	f := &b.req.filter.AccountData
	sawPushRules := false
	for _, e := range entries {
		// Deleted entries (content {}, MSC3391) are news only to a client
		// that may have them.
		if b.initial() && string(e.Content) == "{}" {
			continue
		}
		if e.RoomID != "" {
			if b.req.filter.Room.AccountData.Allows(e.Type, b.dev.UserID) {
				b.roomAccountData[e.RoomID] = append(b.roomAccountData[e.RoomID], accountDataEvent(e.Type, e.Content))
			}
			continue
		}
		sawPushRules = sawPushRules || e.Type == "m.push_rules"
		if f.Allows(e.Type, b.dev.UserID) {
			b.res.AccountData.Events = append(b.res.AccountData.Events, accountDataEvent(e.Type, e.Content))
		}
	}
	// A user who never changed their push rules has the defaults, which
	// clients read from account data.
	if b.initial() && !sawPushRules && f.Allows("m.push_rules", b.dev.UserID) {
		b.res.AccountData.Events = append(b.res.AccountData.Events, accountDataEvent("m.push_rules", push.Marshal(push.Defaults(b.dev.UserID, b.s.Cfg.Push.ThreadSubscriptions))))
	}
	if len(b.res.AccountData.Events) > 0 {
		b.empty = false
	}
	return nil
}

func (b *builder) allRoomAccountData(roomID string) ([]json.RawMessage, error) {
	entries, err := b.q.AccountDataBetween(b.ctx, b.dev.UserID, 0, b.to.AccountData)
	if err != nil {
		return nil, err
	}
	var out []json.RawMessage
	for _, e := range entries {
		if e.RoomID == roomID && string(e.Content) != "{}" && b.req.filter.Room.AccountData.Allows(e.Type, b.dev.UserID) {
			out = append(out, accountDataEvent(e.Type, e.Content))
		}
	}
	return out, nil
}
