package rooms

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/storage"
)

// StateEvent is one entry of createRoom's initial_state.
type StateEvent struct {
	Type     string          `json:"type"`
	StateKey string          `json:"state_key"`
	Content  json.RawMessage `json:"content"`
}

// CreateRequest is a /createRoom request.
type CreateRequest struct {
	Creator            string
	Visibility         string
	Preset             string
	Name               *string
	Topic              *string
	Invite             []string
	InitialState       []StateEvent
	RoomVersion        string
	PowerLevelOverride json.RawMessage
	CreationContent    json.RawMessage
	IsDirect           bool
	RoomAliasName      string
}

type presetRules struct {
	joinRule, history, guestAccess string
	// invitees get the creator's power level.
	trusted bool
}

var presets = map[string]presetRules{
	"private_chat":         {joinRule: "invite", history: "shared", guestAccess: "can_join"},
	"trusted_private_chat": {joinRule: "invite", history: "shared", guestAccess: "can_join", trusted: true},
	"public_chat":          {joinRule: "public", history: "shared", guestAccess: "forbidden"},
}

// CreateRoom creates a room with every event the spec's /createRoom lists,
// in its order, in one transaction: either the whole room exists or none of it.
func (s *Service) CreateRoom(ctx context.Context, req CreateRequest) (roomID string, err error) {
	version := req.RoomVersion
	if version == "" {
		version = s.DefaultVersion
	}
	if !Supported(version) {
		return "", matrixerr.UnsupportedRoom("room version %q is not supported", version)
	}
	verImpl := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion(version))
	if req.Preset == "" {
		req.Preset = "private_chat"
		if req.Visibility == "public" {
			req.Preset = "public_chat"
		}
	}
	preset, ok := presets[req.Preset]
	if !ok {
		return "", matrixerr.BadJSON("unknown preset %q", req.Preset)
	}
	for _, u := range req.Invite {
		if err := s.checkLocalUser(ctx, u); err != nil {
			return "", err
		}
	}
	var alias string
	if req.RoomAliasName != "" {
		if strings.ContainsAny(req.RoomAliasName, ": \t\n#") {
			return "", matrixerr.InvalidParam("room_alias_name may not contain ':', '#' or white space")
		}
		alias = "#" + req.RoomAliasName + ":" + string(s.ServerName)
	}
	createContent, err := s.createContent(req, verImpl, preset)
	if err != nil {
		return "", err
	}
	plContent, err := powerLevels(req, verImpl, preset)
	if err != nil {
		return "", err
	}
	profile, err := s.DB.R().User(ctx, req.Creator)
	if err != nil {
		return "", err
	}

	err = s.write(ctx, func(w *writer) error {
		room, err := w.createEvent(req.Creator, version, createContent)
		if err != nil {
			return err
		}
		roomID = room.RoomID
		send := func(typ string, stateKey *string, content any) error {
			b, err := json.Marshal(content)
			if err != nil {
				return err
			}
			_, err = w.append(room, Event{Sender: req.Creator, Type: typ, StateKey: stateKey, Content: b})
			return err
		}
		sendRaw := func(typ, stateKey string, content json.RawMessage) error {
			_, err := w.append(room, Event{Sender: req.Creator, Type: typ, StateKey: &stateKey, Content: content})
			return err
		}
		empty := ""
		if err := send(spec.MRoomMember, &req.Creator, memberContent(spec.Join, profile, "")); err != nil {
			return err
		}
		if err := sendRaw(spec.MRoomPowerLevels, "", plContent); err != nil {
			return err
		}
		if alias != "" {
			if err := w.q.SetAlias(ctx, alias, room.RoomID, req.Creator); err != nil {
				if err == storage.ErrConflict {
					return &matrixerr.Error{Kind: matrixerr.KindInvalid, Code: spec.ErrorRoomInUse, Message: "room alias already taken"}
				}
				return err
			}
			if err := send(spec.MRoomCanonicalAlias, &empty, map[string]any{"alias": alias}); err != nil {
				return err
			}
		}
		initial := map[[2]string]bool{}
		for _, e := range req.InitialState {
			initial[[2]string{e.Type, e.StateKey}] = true
		}
		defaults := []struct {
			typ     string
			content any
		}{
			{spec.MRoomJoinRules, map[string]any{"join_rule": preset.joinRule}},
			{spec.MRoomHistoryVisibility, map[string]any{"history_visibility": preset.history}},
			{"m.room.guest_access", map[string]any{"guest_access": preset.guestAccess}},
		}
		for _, d := range defaults {
			if initial[[2]string{d.typ, ""}] {
				continue
			}
			if err := send(d.typ, &empty, d.content); err != nil {
				return err
			}
		}
		for _, e := range req.InitialState {
			if e.Type == spec.MRoomCreate {
				return matrixerr.BadJSON("initial_state may not contain m.room.create")
			}
			if (req.Name != nil && e.Type == spec.MRoomName) || (req.Topic != nil && e.Type == spec.MRoomTopic) {
				continue // name and topic take precedence
			}
			if err := sendRaw(e.Type, e.StateKey, e.Content); err != nil {
				return err
			}
		}
		if req.Name != nil {
			if err := send(spec.MRoomName, &empty, map[string]any{"name": *req.Name}); err != nil {
				return err
			}
		}
		if req.Topic != nil {
			// The plain topic is also given in its rich form (m.topic, spec
			// v1.15), which newer clients read first.
			topic := map[string]any{"topic": *req.Topic, "m.topic": map[string]any{
				"m.text": []map[string]string{{"body": *req.Topic, "mimetype": "text/plain"}}}}
			if err := send(spec.MRoomTopic, &empty, topic); err != nil {
				return err
			}
		}
		for _, u := range req.Invite {
			invitee, err := w.q.User(ctx, u)
			if err != nil {
				return err
			}
			c := memberContent(spec.Invite, invitee, "")
			if req.IsDirect {
				c["is_direct"] = true
			}
			if err := send(spec.MRoomMember, &u, c); err != nil {
				return err
			}
		}
		return nil
	})
	return roomID, err
}

// createContent is creation_content with the room version (and, before
// version 11, the creator) set by the server.
func (s *Service) createContent(req CreateRequest, verImpl gomatrixserverlib.IRoomVersion, preset presetRules) (json.RawMessage, error) {
	content := map[string]any{}
	if len(req.CreationContent) > 0 {
		if err := json.Unmarshal(req.CreationContent, &content); err != nil {
			return nil, matrixerr.BadJSON("creation_content must be an object")
		}
		// gomatrixserverlib panics on create content it cannot parse, so
		// the fields it reads are checked here.
		var typed gomatrixserverlib.CreateContent
		if err := json.Unmarshal(req.CreationContent, &typed); err != nil {
			return nil, matrixerr.BadJSON("creation_content has a field of the wrong type")
		}
	}
	content["room_version"] = string(verImpl.Version())
	// Before version 11 the create event names the creator in its content.
	if v, err := strconv.Atoi(string(verImpl.Version())); err == nil && v <= 10 {
		content["creator"] = req.Creator
	} else {
		delete(content, "creator")
	}
	if extra, ok := content["additional_creators"]; ok {
		if !verImpl.PrivilegedCreators() {
			return nil, matrixerr.BadJSON("additional_creators needs room version 12 or later")
		}
		list, ok := extra.([]any)
		if !ok {
			return nil, matrixerr.BadJSON("additional_creators must be a list of user IDs")
		}
		for _, c := range list {
			id, ok := c.(string)
			if _, err := spec.NewUserID(id, true); !ok || err != nil {
				return nil, matrixerr.BadJSON("additional_creators: %v is not a user ID", c)
			}
		}
	}
	if verImpl.PrivilegedCreators() && preset.trusted && len(req.Invite) > 0 {
		creators := map[string]bool{}
		var list []string
		if existing, ok := content["additional_creators"].([]any); ok {
			for _, c := range existing {
				if s, ok := c.(string); ok && !creators[s] {
					creators[s] = true
					list = append(list, s)
				}
			}
		}
		for _, u := range req.Invite {
			if !creators[u] {
				creators[u] = true
				list = append(list, u)
			}
		}
		content["additional_creators"] = list
	}
	return json.Marshal(content)
}

// powerLevels is the initial m.room.power_levels content: the spec's
// defaults, the preset's changes, then the client's override key by key.
func powerLevels(req CreateRequest, verImpl gomatrixserverlib.IRoomVersion, preset presetRules) (json.RawMessage, error) {
	users := map[string]any{}
	// From version 12 the creators hold unlimited power through the create
	// event, and may not be listed in power levels.
	if !verImpl.PrivilegedCreators() {
		users[req.Creator] = 100
		if preset.trusted {
			for _, u := range req.Invite {
				users[u] = 100
			}
		}
	}
	pl := map[string]any{
		"users":          users,
		"users_default":  0,
		"events_default": 0,
		"state_default":  50,
		"ban":            50,
		"kick":           50,
		"redact":         50,
		"invite":         0,
		"events": map[string]any{
			spec.MRoomName:              50,
			spec.MRoomPowerLevels:       100,
			spec.MRoomHistoryVisibility: 100,
			spec.MRoomCanonicalAlias:    50,
			"m.room.avatar":             50,
			"m.room.tombstone":          tombstoneLevel(verImpl),
			"m.room.server_acl":         100,
			"m.room.encryption":         100,
		},
		"notifications": map[string]any{"room": 50},
	}
	if req.Preset == "public_chat" {
		pl["invite"] = 50
	}
	if len(req.PowerLevelOverride) > 0 {
		override := map[string]json.RawMessage{}
		if err := json.Unmarshal(req.PowerLevelOverride, &override); err != nil {
			return nil, matrixerr.BadJSON("power_level_content_override must be an object")
		}
		for k, v := range override {
			pl[k] = v
		}
	}
	b, err := json.Marshal(pl)
	if err != nil {
		return nil, err
	}
	var parsed gomatrixserverlib.PowerLevelContent
	if err := verImpl.ParsePowerLevels(b, &parsed); err != nil {
		return nil, matrixerr.BadJSON("power_level_content_override: %v", err)
	}
	return b, nil
}

// tombstoneLevel is the power level upgrading a room needs: from version 12,
// above the room's admins (150), as only its creators should (MSC4289).
func tombstoneLevel(v gomatrixserverlib.IRoomVersion) int {
	if v.PrivilegedCreators() {
		return 150
	}
	return 100
}

// createEvent builds and stores a room's m.room.create event and its row.
// In room version 12 the room ID is derived from this event's ID.
func (w *writer) createEvent(creator, version string, content json.RawMessage) (*storage.Room, error) {
	if err := w.mayAct(creator, spec.MRoomCreate, nil, content, ""); err != nil {
		return nil, err
	}
	verImpl := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion(version))
	roomID := ""
	if !verImpl.DomainlessRoomIDs() {
		roomID = "!" + RandomID(18) + ":" + string(w.s.ServerName)
	}
	empty := ""
	builder := verImpl.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{
		SenderID: creator, RoomID: roomID, Type: spec.MRoomCreate, StateKey: &empty,
		PrevEvents: []string{}, AuthEvents: []string{}, Depth: 1, Content: spec.RawJSON(content),
	})
	pdu, err := builder.Build(w.s.Now(), w.s.ServerName, w.s.KeyID, w.s.Key)
	if err != nil {
		return nil, err
	}
	provider, _ := gomatrixserverlib.NewAuthEvents(nil)
	if err := gomatrixserverlib.Allowed(pdu, provider, userIDForSender); err != nil {
		return nil, err
	}
	if roomID == "" {
		roomID = "!" + strings.TrimPrefix(pdu.EventID(), "$")
	}
	room := &storage.Room{RoomID: roomID, Version: version, Creator: creator, CreatedTS: w.s.Now().UnixMilli(),
		LatestEventID: pdu.EventID(), Depth: 1}
	if err := w.q.CreateRoom(w.ctx, *room); err != nil {
		return nil, err
	}
	b, err := w.s.prepare(w.ctx, w.q, room, pdu, provider, Event{}, nil)
	if err != nil {
		return nil, err
	}
	if _, err := w.store(room, b); err != nil {
		return nil, err
	}
	return room, nil
}
