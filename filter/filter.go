// Package filter is the spec's event filtering: the filter object clients
// upload to /user/{userId}/filter or pass inline, and matching events with it.
package filter

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"
)

// EventFilter selects events by type and sender.
type EventFilter struct {
	Limit      *int     `json:"limit,omitempty"`
	Types      []string `json:"types,omitempty"`
	NotTypes   []string `json:"not_types,omitempty"`
	Senders    []string `json:"senders,omitempty"`
	NotSenders []string `json:"not_senders,omitempty"`
}

// RoomEventFilter also selects by room and content.
type RoomEventFilter struct {
	EventFilter
	Rooms                   []string `json:"rooms,omitempty"`
	NotRooms                []string `json:"not_rooms,omitempty"`
	ContainsURL             *bool    `json:"contains_url,omitempty"`
	LazyLoadMembers         bool     `json:"lazy_load_members,omitempty"`
	IncludeRedundantMembers bool     `json:"include_redundant_members,omitempty"`
	UnreadThreadNotifs      bool     `json:"unread_thread_notifications,omitempty"`
	// Relation types (MSC3874): only events with, or without, one of these
	// m.relates_to.rel_type values.
	RelTypes    []string `json:"org.matrix.msc3874.rel_types,omitempty"`
	NotRelTypes []string `json:"org.matrix.msc3874.not_rel_types,omitempty"`
}

// RoomFilter is the room part of a Filter.
type RoomFilter struct {
	Rooms        []string        `json:"rooms,omitempty"`
	NotRooms     []string        `json:"not_rooms,omitempty"`
	Timeline     RoomEventFilter `json:"timeline"`
	State        RoomEventFilter `json:"state"`
	Ephemeral    RoomEventFilter `json:"ephemeral"`
	AccountData  RoomEventFilter `json:"account_data"`
	IncludeLeave bool            `json:"include_leave,omitempty"`
}

// Filter is a whole filter as uploaded by a client.
type Filter struct {
	EventFields []string    `json:"event_fields,omitempty"`
	EventFormat string      `json:"event_format,omitempty"`
	Presence    EventFilter `json:"presence"`
	AccountData EventFilter `json:"account_data"`
	Room        RoomFilter  `json:"room"`
}

// Validate checks the values the spec constrains: the event format, and that
// rooms and senders are room and user IDs (a list of anything else is a
// mistake that would silently match nothing).
func (f *Filter) Validate() error {
	switch f.EventFormat {
	case "", "client", "federation":
	default:
		return errInvalid("event_format must be client or federation")
	}
	rooms := [][]string{f.Room.Rooms, f.Room.NotRooms}
	senders := [][]string{f.Presence.Senders, f.Presence.NotSenders, f.AccountData.Senders, f.AccountData.NotSenders}
	for _, r := range []*RoomEventFilter{&f.Room.Timeline, &f.Room.State, &f.Room.Ephemeral, &f.Room.AccountData} {
		rooms = append(rooms, r.Rooms, r.NotRooms)
		senders = append(senders, r.Senders, r.NotSenders)
	}
	for _, list := range rooms {
		for _, id := range list {
			if !strings.HasPrefix(id, "!") {
				return errInvalid(fmt.Sprintf("%q is not a room ID", id))
			}
		}
	}
	for _, list := range senders {
		for _, id := range list {
			if _, err := spec.NewUserID(id, false); err != nil {
				return errInvalid(fmt.Sprintf("%q is not a user ID", id))
			}
		}
	}
	return nil
}

type errInvalid string

func (e errInvalid) Error() string { return string(e) }

// Parse decodes a filter and validates it.
func Parse(b []byte) (*Filter, error) {
	var f Filter
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// match reports whether value is allowed by a list with "*" wildcards.
func match(patterns []string, value string) bool {
	for _, p := range patterns {
		if p == value {
			return true
		}
		if prefix, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(value, prefix) {
			return true
		}
	}
	return false
}

// AllowsType reports whether some event of this type may pass the filter
// (from some sender): false when the type is filtered out whoever sends it.
func (f *EventFilter) AllowsType(typ string) bool {
	return !match(f.NotTypes, typ) && (f.Types == nil || match(f.Types, typ))
}

// Allows reports whether an event of this type and sender passes the filter.
// A nil Types list allows every type; an empty one allows none.
func (f *EventFilter) Allows(typ, sender string) bool {
	return f.AllowsType(typ) && !match(f.NotSenders, sender) && (f.Senders == nil || match(f.Senders, sender))
}

// AllowsRoom reports whether a room passes the rooms/not_rooms lists.
func AllowsRoom(rooms, notRooms []string, roomID string) bool {
	for _, r := range notRooms {
		if r == roomID {
			return false
		}
	}
	if rooms == nil {
		return true
	}
	for _, r := range rooms {
		if r == roomID {
			return true
		}
	}
	return false
}

// AllowsEvent applies a room event filter to an event's type, sender, room
// and content.
func (f *RoomEventFilter) AllowsEvent(roomID, typ, sender string, content []byte) bool {
	if !f.Allows(typ, sender) || !AllowsRoom(f.Rooms, f.NotRooms, roomID) {
		return false
	}
	if f.ContainsURL != nil && gjson.GetBytes(content, "url").Exists() != *f.ContainsURL {
		return false
	}
	if f.RelTypes != nil || f.NotRelTypes != nil {
		rel := gjson.GetBytes(content, `m\.relates_to.rel_type`).Str
		if (f.RelTypes != nil && !slices.Contains(f.RelTypes, rel)) || (rel != "" && slices.Contains(f.NotRelTypes, rel)) {
			return false
		}
	}
	return true
}

// LimitOr returns the filter's limit, or def if unset, capped at max.
func (f *EventFilter) LimitOr(def, max int) int {
	if f.Limit == nil || *f.Limit <= 0 {
		return def
	}
	if *f.Limit > max {
		return max
	}
	return *f.Limit
}
