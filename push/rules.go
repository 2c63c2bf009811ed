// Package push owns push rules: the spec's default rule set per user, the
// /pushrules API, and evaluating each new event for every member of its
// room, which is where notification and highlight counts come from.
package push

import (
	"encoding/json"
	"slices"
	"strings"
)

// Condition is one push rule condition.
type Condition struct {
	Kind    string          `json:"kind"`
	Key     string          `json:"key,omitempty"`
	Pattern *string         `json:"pattern,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
	Is      string          `json:"is,omitempty"`
	// Subscribed is the io.element.msc4306.thread_subscription condition's.
	Subscribed *bool `json:"subscribed,omitempty"`
}

// Rule is one push rule.
type Rule struct {
	RuleID     string            `json:"rule_id"`
	Default    bool              `json:"default"`
	Enabled    bool              `json:"enabled"`
	Actions    []json.RawMessage `json:"actions"`
	Conditions []Condition       `json:"conditions,omitempty"`
	Pattern    *string           `json:"pattern,omitempty"`
}

// Ruleset is a user's rules by kind, in evaluation order.
type Ruleset struct {
	Override []Rule `json:"override"`
	Content  []Rule `json:"content"`
	// Postcontent (MSC4306) holds server-default rules only.
	Postcontent []Rule `json:"postcontent"`
	Room        []Rule `json:"room"`
	Sender      []Rule `json:"sender"`
	Underride   []Rule `json:"underride"`
}

// Kinds are the rule kinds in the order they are evaluated.
var Kinds = []string{"override", "content", "postcontent", "room", "sender", "underride"}

// Kind returns the rules of one kind, or nil for an unknown kind.
func (rs *Ruleset) Kind(kind string) *[]Rule {
	switch kind {
	case "override":
		return &rs.Override
	case "content":
		return &rs.Content
	case "postcontent":
		return &rs.Postcontent
	case "room":
		return &rs.Room
	case "sender":
		return &rs.Sender
	case "underride":
		return &rs.Underride
	}
	return nil
}

// The spec's server-default rules. USER_ID and LOCALPART are replaced per user.
const defaultRules = `{
"override": [
 {"rule_id": ".m.rule.master", "default": true, "enabled": false, "conditions": [], "actions": []},
 {"rule_id": ".m.rule.suppress_notices", "default": true, "enabled": true,
  "conditions": [{"kind": "event_match", "key": "content.msgtype", "pattern": "m.notice"}], "actions": []},
 {"rule_id": ".m.rule.invite_for_me", "default": true, "enabled": true,
  "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.room.member"},
   {"kind": "event_match", "key": "content.membership", "pattern": "invite"},
   {"kind": "event_match", "key": "state_key", "pattern": "USER_ID"}],
  "actions": ["notify", {"set_tweak": "sound", "value": "default"}]},
 {"rule_id": ".m.rule.member_event", "default": true, "enabled": true,
  "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.room.member"}], "actions": []},
 {"rule_id": ".m.rule.is_user_mention", "default": true, "enabled": true,
  "conditions": [{"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids", "value": "USER_ID"}],
  "actions": ["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}]},
 {"rule_id": ".m.rule.contains_display_name", "default": true, "enabled": true,
  "conditions": [{"kind": "contains_display_name"}],
  "actions": ["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}]},
 {"rule_id": ".m.rule.is_room_mention", "default": true, "enabled": true,
  "conditions": [{"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": true},
   {"kind": "sender_notification_permission", "key": "room"}],
  "actions": ["notify", {"set_tweak": "highlight"}]},
 {"rule_id": ".m.rule.roomnotif", "default": true, "enabled": true,
  "conditions": [{"kind": "sender_notification_permission", "key": "room"},
   {"kind": "event_match", "key": "content.body", "pattern": "@room"}],
  "actions": ["notify", {"set_tweak": "highlight"}]},
 {"rule_id": ".m.rule.tombstone", "default": true, "enabled": true,
  "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.room.tombstone"},
   {"kind": "event_match", "key": "state_key", "pattern": ""}],
  "actions": ["notify", {"set_tweak": "highlight"}]},
 {"rule_id": ".m.rule.reaction", "default": true, "enabled": true,
  "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.reaction"}], "actions": []},
 {"rule_id": ".m.rule.room.server_acl", "default": true, "enabled": true,
  "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.room.server_acl"},
   {"kind": "event_match", "key": "state_key", "pattern": ""}], "actions": []},
 {"rule_id": ".m.rule.suppress_edits", "default": true, "enabled": true,
  "conditions": [{"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type", "value": "m.replace"}], "actions": []},
 {"rule_id": ".org.matrix.msc3930.rule.poll_response", "default": true, "enabled": true,
  "conditions": [{"kind": "event_match", "key": "type", "pattern": "org.matrix.msc3381.poll.response"}], "actions": []}
],
"content": [
 {"rule_id": ".m.rule.contains_user_name", "default": true, "enabled": true, "pattern": "LOCALPART",
  "actions": ["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}]}
],
"postcontent": [
 {"rule_id": ".io.element.msc4306.rule.unsubscribed_thread", "default": true, "enabled": true,
  "conditions": [{"kind": "io.element.msc4306.thread_subscription", "subscribed": false}], "actions": []},
 {"rule_id": ".io.element.msc4306.rule.subscribed_thread", "default": true, "enabled": true,
  "conditions": [{"kind": "io.element.msc4306.thread_subscription", "subscribed": true}],
  "actions": ["notify", {"set_tweak": "sound", "value": "default"}]}
],
"room": [],
"sender": [],
"underride": [
 {"rule_id": ".m.rule.call", "default": true, "enabled": true,
  "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.call.invite"}],
  "actions": ["notify", {"set_tweak": "sound", "value": "ring"}]},
 {"rule_id": ".m.rule.encrypted_room_one_to_one", "default": true, "enabled": true,
  "conditions": [{"kind": "room_member_count", "is": "2"}, {"kind": "event_match", "key": "type", "pattern": "m.room.encrypted"}],
  "actions": ["notify", {"set_tweak": "sound", "value": "default"}]},
 {"rule_id": ".m.rule.room_one_to_one", "default": true, "enabled": true,
  "conditions": [{"kind": "room_member_count", "is": "2"}, {"kind": "event_match", "key": "type", "pattern": "m.room.message"}],
  "actions": ["notify", {"set_tweak": "sound", "value": "default"}]},
 {"rule_id": ".m.rule.message", "default": true, "enabled": true,
  "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.room.message"}], "actions": ["notify"]},
 {"rule_id": ".m.rule.encrypted", "default": true, "enabled": true,
  "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.room.encrypted"}], "actions": ["notify"]},
 {"rule_id": ".org.matrix.msc3930.rule.poll_start_one_to_one", "default": true, "enabled": true,
  "conditions": [{"kind": "room_member_count", "is": "2"}, {"kind": "event_match", "key": "type", "pattern": "org.matrix.msc3381.poll.start"}],
  "actions": ["notify", {"set_tweak": "sound", "value": "default"}]},
 {"rule_id": ".org.matrix.msc3930.rule.poll_start", "default": true, "enabled": true,
  "conditions": [{"kind": "event_match", "key": "type", "pattern": "org.matrix.msc3381.poll.start"}], "actions": ["notify"]},
 {"rule_id": ".org.matrix.msc3930.rule.poll_end_one_to_one", "default": true, "enabled": true,
  "conditions": [{"kind": "room_member_count", "is": "2"}, {"kind": "event_match", "key": "type", "pattern": "org.matrix.msc3381.poll.end"}],
  "actions": ["notify", {"set_tweak": "sound", "value": "default"}]},
 {"rule_id": ".org.matrix.msc3930.rule.poll_end", "default": true, "enabled": true,
  "conditions": [{"kind": "event_match", "key": "type", "pattern": "org.matrix.msc3381.poll.end"}], "actions": ["notify"]}
]}`

// defaultTemplate is defaultRules parsed once; Defaults copies it per user.
var defaultTemplate = func() Ruleset {
	var rs Ruleset
	if err := json.Unmarshal([]byte(defaultRules), &rs); err != nil {
		panic("push: default rules do not parse: " + err.Error())
	}
	return rs
}()

// Defaults returns the server-default rule set for a user. threads says
// whether thread subscriptions (MSC4306) are on: the postcontent rules
// exist only then.
func Defaults(userID string, threads bool) Ruleset {
	local, _, _ := strings.Cut(strings.TrimPrefix(userID, "@"), ":")
	userJSON, _ := json.Marshal(userID)
	fill := func(rules []Rule) []Rule {
		out := make([]Rule, len(rules))
		for i, r := range rules {
			r.Conditions = append([]Condition(nil), r.Conditions...)
			for j, c := range r.Conditions {
				if c.Pattern != nil && *c.Pattern == "USER_ID" {
					r.Conditions[j].Pattern = &userID
				}
				if string(c.Value) == `"USER_ID"` {
					r.Conditions[j].Value = userJSON
				}
			}
			if r.Pattern != nil && *r.Pattern == "LOCALPART" {
				r.Pattern = &local
			}
			out[i] = r
		}
		return out
	}
	t := &defaultTemplate
	rs := Ruleset{Override: fill(t.Override), Content: fill(t.Content), Postcontent: []Rule{}, Room: fill(t.Room),
		Sender: fill(t.Sender), Underride: fill(t.Underride)}
	if threads {
		rs.Postcontent = fill(t.Postcontent)
	}
	return rs
}

// Parse reads a stored rule set, falling back to the defaults. Server-default
// rules added since the set was stored are added in their places, and those
// that no longer apply (thread rules with subscriptions off) are left out;
// the user's own rules and settings are kept as stored.
func Parse(userID string, stored []byte, threads bool) Ruleset {
	defaults := Defaults(userID, threads)
	if len(stored) == 0 {
		return defaults
	}
	var wrapper struct {
		Global Ruleset `json:"global"`
	}
	if err := json.Unmarshal(stored, &wrapper); err != nil {
		return defaults
	}
	rs := wrapper.Global
	for _, k := range Kinds {
		*rs.Kind(k) = mergeDefaults(*rs.Kind(k), *defaults.Kind(k))
	}
	return rs
}

// mergeDefaults keeps a stored list's rules, drops server-default rules
// that are not defaults any more, and inserts missing defaults after the
// default that precedes them (or at the end).
func mergeDefaults(stored, defaults []Rule) []Rule {
	isDefault := map[string]bool{}
	for _, d := range defaults {
		isDefault[d.RuleID] = true
	}
	out := make([]Rule, 0, len(stored)+len(defaults))
	for _, r := range stored {
		if !r.Default || isDefault[r.RuleID] {
			out = append(out, r)
		}
	}
	for i, d := range defaults {
		if slices.ContainsFunc(out, func(r Rule) bool { return r.RuleID == d.RuleID }) {
			continue
		}
		at := len(out)
		if i > 0 {
			if j := slices.IndexFunc(out, func(r Rule) bool { return r.RuleID == defaults[i-1].RuleID }); j >= 0 {
				at = j + 1
			}
		}
		out = slices.Insert(out, at, d)
	}
	return out
}

// Marshal is the m.push_rules account data content for a rule set.
func Marshal(rs Ruleset) []byte {
	b, _ := json.Marshal(map[string]Ruleset{"global": rs})
	return b
}
