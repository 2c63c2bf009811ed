package syncapi

import (
	"encoding/json"
)

// The /sync response's shape.

// Response is a /sync response.
type Response struct {
	NextBatch   string        `json:"next_batch"`
	Rooms       roomsSection  `json:"rooms"`
	AccountData eventsSection `json:"account_data"`
	Presence    eventsSection `json:"presence"`
	ToDevice    eventsSection `json:"to_device"`
	DeviceLists *deviceLists  `json:"device_lists,omitempty"`
	// The device's key counts, sent with every response.
	OTKCounts         map[string]int `json:"device_one_time_keys_count"`
	UnusedFallbackKey []string       `json:"device_unused_fallback_key_types"`
}

type deviceLists struct {
	Changed []string `json:"changed,omitempty"`
	Left    []string `json:"left,omitempty"`
}

type eventsSection struct {
	Events []json.RawMessage `json:"events"`
}

type roomsSection struct {
	Join   map[string]*joinedRoom  `json:"join"`
	Invite map[string]*invitedRoom `json:"invite"`
	Leave  map[string]*leftRoom    `json:"leave"`
	Knock  map[string]*knockedRoom `json:"knock"`
}

type timeline struct {
	Events    []json.RawMessage `json:"events"`
	Limited   bool              `json:"limited"`
	PrevBatch string            `json:"prev_batch,omitempty"`
}

type summary struct {
	Heroes  []string `json:"m.heroes,omitempty"`
	Joined  int      `json:"m.joined_member_count"`
	Invited int      `json:"m.invited_member_count"`
}

type unreadCounts struct {
	Notifications int `json:"notification_count"`
	Highlights    int `json:"highlight_count"`
}

type joinedRoom struct {
	Timeline      timeline                `json:"timeline"`
	State         *eventsSection          `json:"state,omitempty"`
	StateAfter    *eventsSection          `json:"state_after,omitempty"`
	Ephemeral     eventsSection           `json:"ephemeral"`
	AccountData   eventsSection           `json:"account_data"`
	Summary       *summary                `json:"summary,omitempty"`
	Unread        unreadCounts            `json:"unread_notifications"`
	UnreadThreads map[string]unreadCounts `json:"unread_thread_notifications,omitempty"`
}

type invitedRoom struct {
	InviteState eventsSection `json:"invite_state"`
}

type knockedRoom struct {
	KnockState eventsSection `json:"knock_state"`
}

type leftRoom struct {
	Timeline    timeline       `json:"timeline"`
	State       *eventsSection `json:"state,omitempty"`
	StateAfter  *eventsSection `json:"state_after,omitempty"`
	AccountData eventsSection  `json:"account_data"`
}
