package storage

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

// A database written by an older binary: migrations 1..version run on it
// by hand, as they ran then.
func databaseAt(t testing.TB, version int, fill string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "old.db")
	conn, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	names, err := migrationNames()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names[:version] {
		body, _ := schemaFS.ReadFile("schema/" + name)
		if _, err := conn.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := conn.Exec(fill); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec("PRAGMA user_version = " + itoa(int64(version))); err != nil {
		t.Fatal(err)
	}
	return path
}

// Push actions keep their meaning through their compaction (018): the
// same notifications, counts, actions and times.
func TestPushActionsCompaction(t *testing.T) {
	ctx := context.Background()
	path := databaseAt(t, 17, `
		INSERT INTO rooms(room_id, version, creator, created_ts, latest_event_id, depth) VALUES ('!r:hs', '10', '@a:hs', 1, '$2', 2);
		INSERT INTO events(pos, event_id, room_id, type, sender, origin_ts, json) VALUES
			(1, '$1', '!r:hs', 'm.room.message', '@a:hs', 1000, '{}'),
			(2, '$2', '!r:hs', 'm.room.message', '@a:hs', 2000, '{}');
		INSERT INTO push_actions(user_id, event_pos, room_id, thread_id, highlight, actions, ts) VALUES
			('@b:hs', 1, '!r:hs', '', 0, CAST('["notify"]' AS BLOB), 1000),
			('@b:hs', 2, '!r:hs', '$1', 1, CAST('["notify",{"set_tweak":"highlight"}]' AS BLOB), 2000),
			('@c:hs', 2, '!r:hs', '', 0, CAST('["notify"]' AS BLOB), 2000);
		INSERT INTO room_state(room_id, type, state_key, event_id, pos, membership) VALUES
			('!r:hs', 'm.room.member', '@b:hs', '$1', 1, 'join'), ('!r:hs', 'm.room.member', '@c:hs', '$1', 1, 'join'),
			('!r:hs', 'm.room.member', '@d:hs', '$1', 1, 'join'), ('!r:hs', 'm.room.member', '@e:hs', '$1', 1, 'join');`)
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	counts, err := db.R().UnreadCounts(ctx, "@b:hs", "!r:hs")
	if err != nil {
		t.Fatal(err)
	}
	if counts[""] != (Unread{Notifications: 1}) || counts["$1"] != (Unread{Notifications: 1, Highlights: 1}) {
		t.Errorf("unread counts after the migration: %+v", counts)
	}
	ns, _, err := db.R().Notifications(ctx, "@b:hs", 0, 10, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 2 || string(ns[0].Actions) != `["notify",{"set_tweak":"highlight"}]` || ns[0].TS != 2000 ||
		string(ns[1].Actions) != `["notify"]` || ns[1].TS != 1000 {
		t.Errorf("notifications after the migration: %+v", ns)
	}
	var stored int
	if err := db.RawRead(ctx, `SELECT COUNT(*) FROM push_actions WHERE actions IS NULL`, &stored); err != nil || stored != 2 {
		t.Errorf(`["notify"] kept as NULL: %d rows, %v`, stored, err)
	}
	// New rows read back the same way.
	err = db.Write(ctx, func(q Q) error {
		return q.AddPushActions(ctx, 2, "!r:hs", "", []PushAction{{UserID: "@d:hs", Actions: notifyOnly},
			{UserID: "@e:hs", Highlight: true, Actions: []byte(`["notify",{"set_tweak":"highlight"}]`)}})
	})
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]string{}
	for _, u := range []string{"@d:hs", "@e:hs"} {
		ns, _, err := db.R().Notifications(ctx, u, 0, 10, false)
		if err != nil || len(ns) != 1 {
			t.Fatalf("%s: %v %v", u, ns, err)
		}
		targets[u] = string(ns[0].Actions)
	}
	if targets["@d:hs"] != `["notify"]` || targets["@e:hs"] != `["notify",{"set_tweak":"highlight"}]` {
		t.Errorf("actions read back: %v", targets)
	}
}

// The unread counts a file had counted (before 023) are the ones it keeps.
func TestUnreadCountsMigration(t *testing.T) {
	ctx := context.Background()
	path := databaseAt(t, 22, `
		INSERT INTO rooms(room_id, version, creator, created_ts, latest_event_id, depth) VALUES ('!r:hs', '10', '@a:hs', 1, '$6', 6);
		INSERT INTO events(pos, event_id, room_id, type, sender, origin_ts, json) VALUES
			(1, '$1', '!r:hs', 'm.room.message', '@a:hs', 1, '{}'), (2, '$2', '!r:hs', 'm.room.message', '@a:hs', 2, '{}'),
			(3, '$3', '!r:hs', 'm.room.message', '@a:hs', 3, '{}'), (4, '$4', '!r:hs', 'm.room.message', '@a:hs', 4, '{}'),
			(5, '$5', '!r:hs', 'm.room.message', '@a:hs', 5, '{}'), (6, '$6', '!r:hs', 'm.room.message', '@a:hs', 6, '{}');
		INSERT INTO push_actions(event_pos, user_id, room_id, thread_id, highlight, actions) VALUES
			(1, '@b:hs', '!r:hs', '', 0, NULL), (2, '@b:hs', '!r:hs', '$1', 1, NULL), (3, '@b:hs', '!r:hs', '', 1, NULL),
			(4, '@b:hs', '!r:hs', '$1', 0, NULL), (5, '@b:hs', '!r:hs', '', 0, NULL), (6, '@b:hs', '!r:hs', '$1', 0, NULL),
			(1, '@c:hs', '!r:hs', '', 0, NULL), (3, '@c:hs', '!r:hs', '', 1, NULL), (6, '@c:hs', '!r:hs', '$1', 1, NULL);
		INSERT INTO receipts(room_id, user_id, type, thread_id, event_id, event_pos, ts, pos) VALUES
			('!r:hs', '@b:hs', 'm.read', '', '$2', 2, 1, 1), ('!r:hs', '@b:hs', 'm.read.private', '$1', '$4', 4, 1, 2),
			('!r:hs', '@c:hs', 'm.read', 'main', '$3', 3, 1, 3), ('!r:hs', '@c:hs', 'm.fully_read', '', '$6', 6, 1, 4);`)
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for user, want := range map[string]string{"@b:hs": "map[:{2 1} $1:{1 0}]", "@c:hs": "map[$1:{1 1}]"} {
		got, err := db.R().UnreadCounts(ctx, user, "!r:hs")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != want || fmt.Sprint(got) != fmt.Sprint(countUnread(t, db, user, "!r:hs")) {
			t.Errorf("%s: kept %v, want %s", user, got, want)
		}
	}
}

// The member counts of a file from before 024 are its member rows counted.
func TestMemberCountsMigration(t *testing.T) {
	ctx := context.Background()
	path := databaseAt(t, 23, `
		INSERT INTO rooms(room_id, version, creator, created_ts, latest_event_id, depth) VALUES
			('!r:hs', '10', '@a:hs', 1, '$1', 1), ('!s:hs', '10', '@a:hs', 1, '$1', 1);
		INSERT INTO room_state(room_id, type, state_key, event_id, pos, membership) VALUES
			('!r:hs', 'm.room.member', '@a:hs', '$1', 1, 'join'), ('!r:hs', 'm.room.member', '@b:hs', '$2', 2, 'join'),
			('!r:hs', 'm.room.member', '@c:hs', '$3', 3, 'invite'), ('!r:hs', 'm.room.member', '@d:hs', '$4', 4, 'leave'),
			('!r:hs', 'm.room.name', '', '$5', 5, NULL), ('!s:hs', 'm.room.member', '@a:hs', '$6', 6, 'invite');`)
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for room, want := range map[string][2]int{"!r:hs": {2, 1}, "!s:hs": {0, 1}} {
		if j, i, err := db.R().MemberCounts(ctx, room); err != nil || [2]int{j, i} != want {
			t.Errorf("%s: %d joined, %d invited (%v), want %v", room, j, i, err, want)
		}
	}
}

// A new file gets 8 KiB pages; a file an older binary made keeps its own.
func TestPageSize(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		path string
		want int
	}{
		{"new", filepath.Join(t.TempDir(), "new.db"), pageSize},
		{"existing", databaseAt(t, 17, "SELECT 1"), 4096},
	} {
		db, err := Open(ctx, tc.path)
		if err != nil {
			t.Fatal(err)
		}
		var got int
		if err := db.RawRead(ctx, "PRAGMA page_size", &got); err != nil || got != tc.want {
			t.Errorf("%s file: page size %d (%v), want %d", tc.name, got, err, tc.want)
		}
		db.Close()
	}
}

// A room's bump stamp is backfilled from its events (019) and moves with
// each event that bumps it, not with others.
func TestRoomBump(t *testing.T) {
	ctx := context.Background()
	path := databaseAt(t, 18, `
		INSERT INTO rooms(room_id, version, creator, created_ts, latest_event_id, depth) VALUES ('!r:hs', '10', '@a:hs', 1, '$3', 3);
		INSERT INTO events(pos, event_id, room_id, type, state_key, sender, origin_ts, membership, json) VALUES
			(1, '$1', '!r:hs', 'm.room.create', '', '@a:hs', 1, NULL, '{}'),
			(2, '$2', '!r:hs', 'm.room.member', '@a:hs', '@a:hs', 2, 'join', '{}'),
			(3, '$3', '!r:hs', 'm.room.message', NULL, '@a:hs', 3, NULL, '{}'),
			(4, '$4', '!r:hs', 'm.reaction', NULL, '@a:hs', 4, NULL, '{}');
		INSERT INTO room_state(room_id, type, state_key, event_id, pos, membership) VALUES
			('!r:hs', 'm.room.create', '', '$1', 1, NULL), ('!r:hs', 'm.room.member', '@a:hs', '$2', 2, 'join');`)
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bump := func() int64 {
		t.Helper()
		rs, err := db.R().RoomSummaries(ctx, "@a:hs")
		if err != nil || len(rs) != 1 {
			t.Fatalf("summaries: %v %v", rs, err)
		}
		return rs[0].Bump
	}
	if b := bump(); b != 3 {
		t.Errorf("backfilled bump %d, want 3 (the message, not the reaction after it)", b)
	}
	for _, tc := range []struct {
		typ  string
		want int64
	}{{"m.reaction", 3}, {"m.room.encrypted", 6}} {
		err := db.Write(ctx, func(q Q) error {
			_, err := q.AppendEvent(ctx, &Event{EventID: "$" + tc.typ, RoomID: "!r:hs", Type: tc.typ, Sender: "@a:hs", JSON: []byte("{}")}, 5)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if b := bump(); b != tc.want {
			t.Errorf("after %s: bump %d, want %d", tc.typ, b, tc.want)
		}
	}
}
