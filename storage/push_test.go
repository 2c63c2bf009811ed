package storage

import (
	"context"
	"fmt"
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
	db := unreadDB(t, 0, true)
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
			err := db.Write(ctx, func(q Q) error {
				if _, err := q.exec(ctx, `DELETE FROM receipts`); err != nil {
					return err
				}
				for thread, pos := range tc.receipts {
					if _, err := q.exec(ctx, `INSERT INTO receipts(room_id, user_id, type, thread_id, event_id, event_pos, ts, pos)
						VALUES ('!r:hs', '@b:hs', 'm.read', ?, '$x', ?, 1, 1)`, thread, pos); err != nil {
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
