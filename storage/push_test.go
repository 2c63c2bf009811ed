package storage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// unreadDB is a database where @b:hs has main-timeline notifications at
// positions 1-5 (5 a highlight) and in thread $t at 6-8 (7 a highlight;
// in the main timeline too if not threads), and n more in the main
// timeline after those.
func unreadDB(t testing.TB, n int, threads bool) *DB {
	names, err := migrationNames()
	if err != nil {
		t.Fatal(err)
	}
	var events, actions []string
	for pos := 1; pos <= 8+n; pos++ {
		thread, hl := "", 0
		if threads && pos >= 6 && pos <= 8 {
			thread = "$t"
		}
		if pos == 5 || pos == 7 {
			hl = 1
		}
		events = append(events, fmt.Sprintf("(%d, '$%d', '!r:hs', 'm.room.message', '@a:hs', %d, '{}')", pos, pos, pos))
		actions = append(actions, fmt.Sprintf("('@b:hs', %d, '!r:hs', '%s', %d, NULL)", pos, thread, hl),
			fmt.Sprintf("('@c:hs', %d, '!r:hs', '%s', %d, NULL)", pos, thread, hl))
	}
	path := databaseAt(t, len(names), `
		INSERT INTO rooms(room_id, version, creator, created_ts, latest_event_id, depth) VALUES ('!r:hs', '10', '@a:hs', 1, '$1', 1);
		INSERT INTO events(pos, event_id, room_id, type, sender, origin_ts, json) VALUES `+strings.Join(events, ",")+`;
		INSERT INTO push_actions(user_id, event_pos, room_id, thread_id, highlight, actions) VALUES `+strings.Join(actions, ",")+`;`)
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Unread counts per thread: each thread is read up to its own receipt
// ("main" for the main timeline) or the unthreaded one, whichever is later.
func TestUnreadCounts(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		receipts map[string]int // thread ("" unthreaded, "main") -> event position
		want     map[string]Unread
	}{
		{"nothing read", nil, map[string]Unread{"": {5, 1}, "$t": {3, 1}}},
		{"unthreaded up to 3", map[string]int{"": 3}, map[string]Unread{"": {2, 1}, "$t": {3, 1}}},
		{"main timeline up to 5", map[string]int{"main": 5}, map[string]Unread{"$t": {3, 1}}},
		{"the thread up to 7", map[string]int{"$t": 7}, map[string]Unread{"": {5, 1}, "$t": {1, 0}}},
		{"unthreaded 2, main 4, thread 6", map[string]int{"": 2, "main": 4, "$t": 6}, map[string]Unread{"": {1, 1}, "$t": {2, 1}}},
		{"a thread receipt behind the unthreaded one", map[string]int{"": 7, "$t": 6}, map[string]Unread{"$t": {1, 0}}},
		{"all read", map[string]int{"": 8}, map[string]Unread{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := unreadDB(t, 0, true)
			err := db.Write(ctx, func(q Q) error {
				for thread, pos := range tc.receipts {
					if _, err := q.SetReceipt(ctx, Receipt{RoomID: "!r:hs", UserID: "@b:hs", Type: "m.read",
						ThreadID: thread, EventID: "$x", EventPos: int64(pos), TS: 1}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := db.R().UnreadCounts(ctx, "@b:hs", "!r:hs")
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("counts %v, want %v", got, tc.want)
			}
		})
	}
}

// BenchmarkUnreadCounts: a room with 300 unread notifications, as each
// woken /sync counts them; in the main timeline only (most rooms), and
// with three in a thread.
func BenchmarkUnreadCounts(b *testing.B) {
	for _, threads := range []bool{false, true} {
		b.Run(map[bool]string{false: "main", true: "threads"}[threads], func(b *testing.B) {
			db := unreadDB(b, 292, threads)
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				if _, err := db.R().UnreadCounts(ctx, "@b:hs", "!r:hs"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// countUnread is the rule the kept counts follow, counted from the rows:
// a notification is unread if it is past every read receipt of its thread
// (its own, "main" for the main timeline, and the unthreaded one).
func countUnread(t *testing.T, db *DB, userID, roomID string) map[string]Unread {
	t.Helper()
	ctx := context.Background()
	floors := map[string]int64{} // receipt thread -> latest position, either type
	rows, err := db.R().query(ctx, `SELECT thread_id, event_pos FROM receipts
		WHERE room_id = ? AND user_id = ? AND type IN ('m.read', 'm.read.private')`, roomID, userID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var thread string
		var pos int64
		if err := rows.Scan(&thread, &pos); err != nil {
			t.Fatal(err)
		}
		floors[thread] = max(floors[thread], pos)
	}
	rows.Close()
	out := map[string]Unread{}
	rows, err = db.R().query(ctx, `SELECT thread_id, event_pos, highlight FROM push_actions WHERE user_id = ? AND room_id = ?`, userID, roomID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var thread string
		var pos int64
		var hl int
		if err := rows.Scan(&thread, &pos, &hl); err != nil {
			t.Fatal(err)
		}
		key := thread
		if key == "" {
			key = "main"
		}
		if pos > max(floors[""], floors[key]) {
			u := out[thread]
			u.Notifications++
			u.Highlights += hl
			out[thread] = u
		}
	}
	return out
}

// The kept unread counts stay what counting the rows gives, through
// notifications in threads, receipts of every kind in any order (older ones
// too), and events deleted.
func TestUnreadCountsKept(t *testing.T) {
	db := unreadDB(t, 0, true)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(20, 23))
	users := []string{"@b:hs", "@c:hs"}
	threads := []string{"", "$t", "$u"}
	last := int64(8)
	for step := range 600 {
		err := db.Write(ctx, func(q Q) error {
			switch op := rng.IntN(10); {
			case op < 5: // an event, notifying some of the users
				last++
				if _, err := q.exec(ctx, `INSERT INTO events(pos, event_id, room_id, type, sender, origin_ts, json)
					VALUES (?1, '$e' || ?1, '!r:hs', 'm.room.message', '@a:hs', ?1, '{}')`, last); err != nil {
					return err
				}
				var actions []PushAction
				for _, u := range users {
					if rng.IntN(4) > 0 {
						actions = append(actions, PushAction{UserID: u, Highlight: rng.IntN(5) == 0, Actions: notifyOnly})
					}
				}
				return q.AddPushActions(ctx, last, "!r:hs", threads[rng.IntN(len(threads))], actions)
			case op < 9: // a receipt, possibly behind one the user has
				_, err := q.SetReceipt(ctx, Receipt{RoomID: "!r:hs", UserID: users[rng.IntN(len(users))],
					Type:     []string{"m.read", "m.read.private", "m.fully_read"}[rng.IntN(3)],
					ThreadID: []string{"", "main", "$t", "$u"}[rng.IntN(4)], EventID: "$x",
					EventPos: 1 + rng.Int64N(last), TS: 1})
				return err
			default: // an event deleted (retention), with its notifications
				_, err := q.exec(ctx, `DELETE FROM events WHERE pos = ?`, 1+rng.Int64N(last))
				return err
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			got, err := db.R().UnreadCounts(ctx, u, "!r:hs")
			if err != nil {
				t.Fatal(err)
			}
			if want := countUnread(t, db, u, "!r:hs"); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("step %d, %s: kept %v, counted %v", step, u, got, want)
			}
		}
	}
}

// A room's kept member counts are its member rows counted, through joins,
// invites, leaves, bans and knocks in any order, and a purge.
func TestMemberCountsKept(t *testing.T) {
	db := unreadDB(t, 0, false)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(24, 1))
	check := func(step int) {
		t.Helper()
		var joined, invited int
		if err := db.RawRead(ctx, `SELECT COUNT(*) FILTER (WHERE membership = 'join'), COUNT(*) FILTER (WHERE membership = 'invite')
			FROM room_state WHERE room_id = '!r:hs' AND type = 'm.room.member'`, &joined, &invited); err != nil {
			t.Fatal(err)
		}
		j, i, err := db.R().MemberCounts(ctx, "!r:hs")
		if err != nil || j != joined || i != invited {
			t.Fatalf("step %d: kept %d joined, %d invited (%v), counted %d, %d", step, j, i, err, joined, invited)
		}
	}
	for step := range 300 {
		user := fmt.Sprintf("@u%d:hs", rng.IntN(12))
		membership := []string{"join", "invite", "leave", "ban", "knock"}[rng.IntN(5)]
		err := db.Write(ctx, func(q Q) error {
			_, err := q.AppendEvent(ctx, &Event{EventID: fmt.Sprintf("$m%d", step), RoomID: "!r:hs", Type: "m.room.member",
				StateKey: &user, Sender: user, OriginTS: 1, Membership: membership, JSON: []byte(`{}`)}, int64(step+10))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		check(step)
	}
	if j, _, _ := db.R().MemberCounts(ctx, "!r:hs"); j == 0 {
		t.Fatal("nobody joined: the test shows nothing")
	}
	if err := db.Write(ctx, func(q Q) error { _, err := q.PurgeRoom(ctx, "!r:hs"); return err }); err != nil {
		t.Fatal(err)
	}
	check(300)
	if j, i, err := db.R().MemberCounts(ctx, "!nowhere:hs"); j != 0 || i != 0 || err != nil {
		t.Errorf("a room that is not there: %d joined, %d invited, %v", j, i, err)
	}
}

// A page of /notifications looks at notificationScan positions at most: a
// user whose one notification is far back gets empty pages that say where
// to go on, then it, then no more.
func TestNotificationsBoundedScan(t *testing.T) {
	db := unreadDB(t, 0, false)
	ctx := context.Background()
	last := 2*notificationScan + 500
	err := db.Write(ctx, func(q Q) error {
		for _, query := range []string{
			`WITH RECURSIVE n(pos) AS (SELECT 9 UNION ALL SELECT pos + 1 FROM n WHERE pos < ?1)
				INSERT INTO events(pos, event_id, room_id, type, sender, origin_ts, json) SELECT pos, '$n' || pos, '!r:hs', 'm.room.message', '@a:hs', pos, '{}' FROM n`,
			`INSERT INTO push_actions(user_id, event_pos, room_id, thread_id, highlight, actions) SELECT '@c:hs', pos, room_id, '', 0, NULL FROM events WHERE pos > 8`,
			`DELETE FROM push_actions WHERE user_id = '@b:hs' AND event_pos > 1`,
			`INSERT INTO room_state(room_id, type, state_key, event_id, pos, membership) VALUES ('!r:hs', 'm.room.member', '@b:hs', '$1', 1, 'join')`,
		} {
			if _, err := q.exec(ctx, query, last); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var pages []string
	for from := int64(0); ; {
		ns, next, err := db.R().Notifications(ctx, "@b:hs", from, 10, false)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, n := range ns {
			got = append(got, n.EventPos)
		}
		pages = append(pages, fmt.Sprint(got, next))
		if next == 0 || len(pages) > 5 {
			break
		}
		from = next
	}
	want := fmt.Sprint([]int64{}, last+2-notificationScan) + " " + fmt.Sprint([]int64{}, last+3-2*notificationScan) + " " + fmt.Sprint([]int64{1}, 0)
	if strings.Join(pages, " ") != want {
		t.Errorf("pages %q, want %q", strings.Join(pages, " "), want)
	}
}
