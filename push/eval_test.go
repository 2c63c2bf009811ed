package push

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func TestConditions(t *testing.T) {
	ev := gjson.Parse(`{"type":"m.room.message","sender":"@a:x","room_id":"!r:x","state_key":"",
		"content":{"body":"Hello Alice, deploy now!","msgtype":"m.text","m.mentions":{"user_ids":["@bob:x"],"room":true},"n":5,"flag":false,"x.y":{"z":"dotted"}}}`)
	c := &Context{Event: ev, UserID: "@bob:x", DisplayName: "Alice", MemberCount: 3, SenderLevel: 50, NotificationLevels: map[string]int64{"room": 50}}
	p := func(s string) *string { return &s }
	for _, tc := range []struct {
		name string
		cond Condition
		want bool
	}{
		{"type glob", Condition{Kind: "event_match", Key: "type", Pattern: p("m.room.*")}, true},
		{"type exact miss", Condition{Kind: "event_match", Key: "type", Pattern: p("m.room")}, false},
		{"case-insensitive", Condition{Kind: "event_match", Key: "content.msgtype", Pattern: p("M.TEXT")}, true},
		{"body word", Condition{Kind: "event_match", Key: "content.body", Pattern: p("deploy")}, true},
		{"body part of word", Condition{Kind: "event_match", Key: "content.body", Pattern: p("dep")}, false},
		{"body glob", Condition{Kind: "event_match", Key: "content.body", Pattern: p("dep*")}, true},
		{"question mark", Condition{Kind: "event_match", Key: "sender", Pattern: p("@?:x")}, true},
		{"missing key", Condition{Kind: "event_match", Key: "content.nope", Pattern: p("*")}, false},
		{"non-string", Condition{Kind: "event_match", Key: "content.n", Pattern: p("5")}, false},
		{"empty state key", Condition{Kind: "event_match", Key: "state_key", Pattern: p("")}, true},
		{"escaped dot", Condition{Kind: "event_match", Key: `content.x\.y.z`, Pattern: p("dotted")}, true},
		{"property is bool", Condition{Kind: "event_property_is", Key: `content.m\.mentions.room`, Value: json.RawMessage(`true`)}, true},
		{"property is false", Condition{Kind: "event_property_is", Key: "content.flag", Value: json.RawMessage(`false`)}, true},
		{"property is int", Condition{Kind: "event_property_is", Key: "content.n", Value: json.RawMessage(`5`)}, true},
		{"property is type mismatch", Condition{Kind: "event_property_is", Key: "content.n", Value: json.RawMessage(`"5"`)}, false},
		{"contains", Condition{Kind: "event_property_contains", Key: `content.m\.mentions.user_ids`, Value: json.RawMessage(`"@bob:x"`)}, true},
		{"contains miss", Condition{Kind: "event_property_contains", Key: `content.m\.mentions.user_ids`, Value: json.RawMessage(`"@c:x"`)}, false},
		{"display name", Condition{Kind: "contains_display_name"}, true},
		{"member count", Condition{Kind: "room_member_count", Is: "3"}, true},
		{"member count <", Condition{Kind: "room_member_count", Is: "<3"}, false},
		{"member count >=", Condition{Kind: "room_member_count", Is: ">=2"}, true},
		{"member count bad", Condition{Kind: "room_member_count", Is: "lots"}, false},
		{"member count ==", Condition{Kind: "room_member_count", Is: "==3"}, true},
		{"member count <=", Condition{Kind: "room_member_count", Is: "<=3"}, true},
		{"member count >", Condition{Kind: "room_member_count", Is: ">3"}, false},
		{"member count one =", Condition{Kind: "room_member_count", Is: "=3"}, false},
		{"member count no number", Condition{Kind: "room_member_count", Is: ">="}, false},
		{"member count empty", Condition{Kind: "room_member_count", Is: ""}, false},
		{"member count sign", Condition{Kind: "room_member_count", Is: "+3"}, false},
		{"member count space", Condition{Kind: "room_member_count", Is: "3 "}, false},
		{"member count huge", Condition{Kind: "room_member_count", Is: "99999999999999999999"}, false},
		{"sender permission", Condition{Kind: "sender_notification_permission", Key: "room"}, true},
		{"unknown kind", Condition{Kind: "org.example.new"}, false},
	} {
		if got := c.match(tc.cond); got != tc.want {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
	c.SenderLevel = 0
	if c.match(Condition{Kind: "sender_notification_permission", Key: "room"}) {
		t.Error("sender without permission matched")
	}
}

func TestEvaluateOrderAndActions(t *testing.T) {
	rs := Defaults("@bob:x", false)
	msg := func(body string) *Context {
		return &Context{Event: gjson.Parse(`{"type":"m.room.message","sender":"@a:x","room_id":"!r:x","content":{"msgtype":"m.text","body":` + jsonString(body) + `}}`),
			UserID: "@bob:x", MemberCount: 5, NotificationLevels: map[string]int64{}}
	}
	if r := Evaluate(&rs, msg("hello")); !r.Notify || r.Highlight {
		t.Errorf("plain message: %+v", r)
	}
	if r := Evaluate(&rs, msg("hey bob")); !r.Notify || !r.Highlight {
		t.Errorf("user name: %+v", r)
	}
	rs.Override[0].Enabled = true // master: nothing notifies
	if r := Evaluate(&rs, msg("hey bob")); r.Notify {
		t.Errorf("master rule: %+v", r)
	}
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

// With thread subscriptions on (MSC4306), a reply in a thread notifies only
// users subscribed to it; mentions still do; off, every reply notifies.
func TestThreadSubscriptionRules(t *testing.T) {
	reply := func(subscribed bool, body string) *Context {
		c := &Context{Event: gjson.Parse(`{"type":"m.room.message","sender":"@a:x","room_id":"!r:x","content":{"msgtype":"m.text","body":` +
			jsonString(body) + `,"m.relates_to":{"rel_type":"m.thread","event_id":"$root"}}}`),
			UserID: "@bob:x", MemberCount: 5, NotificationLevels: map[string]int64{}, ThreadSubscribers: map[string]bool{}}
		c.ThreadSubscribers["@bob:x"] = subscribed
		return c
	}
	on, off := Defaults("@bob:x", true), Defaults("@bob:x", false)
	for _, tc := range []struct {
		name       string
		rs         *Ruleset
		c          *Context
		notify, hl bool
	}{
		{"subscribed", &on, reply(true, "hi"), true, false},
		{"not subscribed", &on, reply(false, "hi"), false, false},
		{"not subscribed, mentioned", &on, reply(false, "hi bob"), true, true},
		{"off", &off, reply(false, "hi"), true, false},
	} {
		if res := Evaluate(tc.rs, tc.c); res.Notify != tc.notify || res.Highlight != tc.hl {
			t.Errorf("%s: %+v", tc.name, res)
		}
	}
	if len(off.Postcontent) != 0 || len(on.Postcontent) != 2 {
		t.Errorf("postcontent rules: off %d, on %d", len(off.Postcontent), len(on.Postcontent))
	}
}

// A stored rule set gains the defaults added since it was stored, each in
// its place, and keeps what the user changed.
func TestParseMergesNewDefaults(t *testing.T) {
	old := Defaults("@bob:x", false)
	old.Underride = slices.DeleteFunc(old.Underride, func(r Rule) bool { return strings.Contains(r.RuleID, "msc3930") })
	old.Override[1].Enabled = false
	old.Override = slices.Insert(old.Override, 1, Rule{RuleID: "mine", Enabled: true, Actions: []json.RawMessage{[]byte(`"notify"`)}})
	rs := Parse("@bob:x", Marshal(old), true)
	if rs.Override[1].RuleID != "mine" || rs.Override[2].Enabled || len(rs.Postcontent) != 2 {
		t.Fatalf("merged: %+v", rs.Override[:3])
	}
	want := Defaults("@bob:x", true).Underride
	if len(rs.Underride) != len(want) {
		t.Fatalf("underride: %d rules, want %d", len(rs.Underride), len(want))
	}
	for i := range want {
		if rs.Underride[i].RuleID != want[i].RuleID {
			t.Fatalf("underride order: %s at %d, want %s", rs.Underride[i].RuleID, i, want[i].RuleID)
		}
	}
	// Thread rules go again when subscriptions are turned off.
	if back := Parse("@bob:x", Marshal(rs), false); len(back.Postcontent) != 0 {
		t.Fatalf("postcontent with subscriptions off: %+v", back.Postcontent)
	}
}
