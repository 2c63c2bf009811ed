package syncapi

import (
	"encoding/json"

	"github.com/redoubt-systems/redoubt/threads"
)

// The shape of a sliding sync response (MSC4186). Fields a client reads as
// "absent means none" are left out when empty: strict clients take a null
// for a malformed response.

type slidingResponse struct {
	Pos        string                       `json:"pos"`
	Lists      map[string]slidingListResult `json:"lists"`
	Rooms      map[string]*slidingRoom      `json:"rooms,omitempty"`
	Extensions slidingExtensions            `json:"extensions"`
}

type slidingListResult struct {
	Count int `json:"count"`
}

// slidingRoom is one room of a response. What it carries depends on the
// user's membership: a joined room its timeline, state and counts, an
// invite or knock its stripped state, a room left its last events.
type slidingRoom struct {
	Membership    string            `json:"membership"`
	Initial       bool              `json:"initial"`
	Name          string            `json:"name,omitempty"`
	Avatar        string            `json:"avatar,omitempty"`
	Heroes        []slidingHero     `json:"heroes,omitempty"`
	IsDM          *bool             `json:"is_dm,omitempty"`
	InviteState   []json.RawMessage `json:"invite_state,omitempty"`
	KnockState    *eventsSection    `json:"knock_state,omitempty"`
	RequiredState []json.RawMessage `json:"required_state,omitempty"`
	Timeline      []json.RawMessage `json:"timeline,omitempty"`
	Limited       bool              `json:"limited,omitempty"`
	PrevBatch     string            `json:"prev_batch,omitempty"`
	NumLive       *int              `json:"num_live,omitempty"`
	BumpStamp     int64             `json:"bump_stamp"`
	JoinedCount   *int              `json:"joined_count,omitempty"`
	InvitedCount  *int              `json:"invited_count,omitempty"`
	*unreadCounts
}

type slidingHero struct {
	UserID      string `json:"user_id"`
	DisplayName string `json:"displayname,omitempty"`
}

type slidingExtensions struct {
	ToDevice            *toDeviceExtension    `json:"to_device,omitempty"`
	E2EE                *e2eeExtension        `json:"e2ee,omitempty"`
	AccountData         *accountDataExtension `json:"account_data,omitempty"`
	Receipts            *roomsExtension       `json:"receipts,omitempty"`
	Typing              *roomsExtension       `json:"typing,omitempty"`
	ThreadSubscriptions *threads.Changes      `json:"io.element.msc4308.thread_subscriptions,omitempty"`
}

type toDeviceExtension struct {
	NextBatch string            `json:"next_batch"`
	Events    []json.RawMessage `json:"events"`
}

type e2eeExtension struct {
	OTKCounts         map[string]int `json:"device_one_time_keys_count"`
	UnusedFallbackKey []string       `json:"device_unused_fallback_key_types"`
	DeviceLists       *deviceLists   `json:"device_lists,omitempty"`
}

type accountDataExtension struct {
	Global []json.RawMessage            `json:"global"`
	Rooms  map[string][]json.RawMessage `json:"rooms"`
}

// roomsExtension is the receipts and typing extensions: each room's one
// ephemeral event of the kind.
type roomsExtension struct {
	Rooms map[string]json.RawMessage `json:"rooms"`
}
