// Package e2e drives a real Redoubt with real Matrix clients.
package e2e

import (
	"context"
	"fmt"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/synapseadmin"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// newUser registers a user the way deployment tools do (shared-secret
// registration through mautrix's synapseadmin client), then logs in with a
// password like any client.
func newUser(t *testing.T, srv *ts.Server, name string) *mautrix.Client {
	t.Helper()
	ctx := context.Background()
	anon, err := mautrix.NewClient(srv.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	admin := synapseadmin.Client{Client: anon}
	if _, err := admin.SharedSecretRegister(ctx, ts.Secret, synapseadmin.ReqSharedSecretRegister{
		Username: name, Password: ts.Password(name), InhibitLogin: true,
	}); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	c, err := mautrix.NewClient(srv.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(ctx, &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: name},
		Password:         ts.Password(name),
		StoreCredentials: true,
	}); err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return c
}

func TestMautrixRoomLifecycle(t *testing.T) {
	ctx := context.Background()
	srv := ts.Start(t)
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")

	if who, err := alice.Whoami(ctx); err != nil || who.UserID != alice.UserID {
		t.Fatalf("whoami: %v %v", who, err)
	}
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "mautrix", Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	room := created.RoomID
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	members, err := alice.JoinedMembers(ctx, room)
	if err != nil || len(members.Joined) != 2 {
		t.Fatalf("joined members: %+v %v", members, err)
	}

	var sent []id.EventID
	for i := range 50 {
		sender := alice
		if i%2 == 1 {
			sender = bob
		}
		res, err := sender.SendText(ctx, room, fmt.Sprintf("message %02d", i))
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, res.EventID)
	}

	// Bob paginates the whole conversation back, ten at a time.
	var got []*event.Event
	from := ""
	for {
		page, err := bob.Messages(ctx, room, from, "", mautrix.DirectionBackward, &mautrix.FilterPart{Types: []event.Type{event.EventMessage}}, 10)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page.Chunk...)
		if page.End == "" {
			break
		}
		from = page.End
	}
	if len(got) != len(sent) {
		t.Fatalf("paginated %d messages, sent %d", len(got), len(sent))
	}
	for i, ev := range got {
		want := len(sent) - 1 - i
		if ev.ID != sent[want] {
			t.Fatalf("message %d out of order", i)
		}
		if err := ev.Content.ParseRaw(ev.Type); err != nil {
			t.Fatal(err)
		}
		if body := ev.Content.AsMessage().Body; body != fmt.Sprintf("message %02d", want) {
			t.Fatalf("message %d has body %q", want, body)
		}
	}

	// Alice redacts one of Bob's messages; Bob sees it redacted.
	victim := sent[13]
	redaction, err := alice.RedactEvent(ctx, room, victim, mautrix.ReqRedact{Reason: "off topic"})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := bob.GetEvent(ctx, room, victim)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Content.Raw) != 0 || ev.Unsigned.RedactedBecause == nil || ev.Unsigned.RedactedBecause.ID != redaction.EventID {
		t.Fatalf("redacted event: content %v, unsigned %+v", ev.Content.Raw, ev.Unsigned)
	}
	page, err := bob.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 60)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range page.Chunk {
		if e.ID == victim {
			found = true
			if len(e.Content.Raw) != 0 {
				t.Fatalf("redacted event still has content in /messages: %v", e.Content.Raw)
			}
		}
		if e.ID == redaction.EventID && e.Redacts != victim {
			t.Fatalf("redaction event names %s", e.Redacts)
		}
	}
	if !found {
		t.Fatal("redacted event missing from /messages")
	}
	// A second redaction by Bob of Alice's event is refused.
	if _, err := bob.RedactEvent(ctx, room, sent[0]); err == nil {
		t.Fatal("bob redacted alice's message without power")
	}
	if _, err := bob.LeaveRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Whoami(ctx); err == nil {
		t.Fatal("token still valid after logout")
	}
}
