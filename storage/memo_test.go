package storage

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
)

// What a settled snapshot shares with the syncs beside it (memo) is what
// it would have read itself: after events are added, and after one is
// rewritten in place at the same position (as erasure does). Each reader
// may change its own slice.
func TestMemoIsTheSnapshot(t *testing.T) {
	db := unreadDB(t, 0, false)
	ctx := context.Background()
	shared := 0
	for step := int64(10); step < 60; step++ {
		err := db.Write(ctx, func(q Q) error {
			if step%2 == 0 { // a new event, a membership every other time; else a rewrite, at the same position
				if step%4 == 0 {
					if _, err := q.exec(ctx, `INSERT INTO events(pos, event_id, room_id, type, state_key, membership, sender, origin_ts, json)
						VALUES (?1, '$e' || ?1, '!r:hs', 'm.room.member', '@u' || ?1 || ':hs', 'join', '@a:hs', ?1, '{}')`, step); err != nil {
						return err
					}
					return q.AddDeviceListChange(ctx, fmt.Sprintf("@u%d:hs", step))
				}
				_, err := q.exec(ctx, `INSERT INTO events(pos, event_id, room_id, type, sender, origin_ts, json)
					VALUES (?1, '$e' || ?1, '!r:hs', 'm.room.message', '@a:hs', ?1, '{}')`, step)
				return err
			}
			_, err := q.exec(ctx, `UPDATE events SET json = ? WHERE pos = (SELECT MAX(pos) FROM events)`, fmt.Sprintf(`{"rewritten":%d}`, step))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		// The syncs a commit wakes, at once.
		var wg sync.WaitGroup
		var mu sync.Mutex
		for r := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := db.ReadPositioned(ctx, func(q Q, pos Positions) error {
					type reads struct {
						evs     []Event
						more    bool
						rooms   map[string]bool
						members []MemberChange
						users   []string
					}
					read := func(q Q) (rd reads, err error) {
						if rd.evs, rd.more, err = q.EventsBetween(ctx, "!r:hs", pos.Events/2, pos.Events, 5+r%2); err != nil {
							return rd, err
						}
						if rd.rooms, err = q.RoomsWithEventsBetween(ctx, pos.Events/2, pos.Events); err != nil {
							return rd, err
						}
						if rd.members, err = q.MemberChangesBetween(ctx, pos.Events/int64(2+r), pos.Events); err != nil {
							return rd, err
						}
						rd.users, err = q.DeviceListChangesBetween(ctx, pos.DeviceLists/int64(2+r), pos.DeviceLists)
						return rd, err
					}
					got, err := read(q)
					if err != nil {
						return err
					}
					own := q
					own.memo = nil
					want, err := read(own)
					if err != nil {
						return err
					}
					if !reflect.DeepEqual(got, want) {
						return fmt.Errorf("at %d: shared %+v, the snapshot's %+v", pos.Events, got, want)
					}
					got.evs[0] = Event{} // a reader's own slices
					if len(got.members) > 0 {
						got.members[0] = MemberChange{}
					}
					if len(got.users) > 0 {
						got.users[0] = ""
					}
					mu.Lock()
					if q.memo != nil {
						shared++
					}
					mu.Unlock()
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	if shared == 0 {
		t.Error("no read was shared")
	}
}

// An event rewritten in place by another process (an erasure run beside
// the server) is not served from what was shared before it: that write
// does not move this process's commits, nor the events' position.
func TestMemoSeesOtherProcesses(t *testing.T) {
	db := unreadDB(t, 0, false)
	ctx := context.Background()
	other, err := Open(ctx, db.path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	read := func() string {
		var js string
		err := db.ReadPositioned(ctx, func(q Q, pos Positions) error {
			evs, _, err := q.EventsBetween(ctx, "!r:hs", 4, pos.Events, 10)
			if err == nil {
				js = string(evs[len(evs)-1].JSON)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	read() // settles and keeps
	if before := read(); before != "{}" {
		t.Fatalf("the event before: %s", before)
	}
	if err := other.Write(ctx, func(q Q) error { return q.EraseEvent(ctx, "$8", []byte(`{"erased":true}`)) }); err != nil {
		t.Fatal(err)
	}
	if after := read(); after != `{"erased":true}` {
		t.Errorf("after another process's erasure: %s", after)
	}
}

// memberRoomDB is a room of n users, @m0:hs to @m{n-1}:hs, who have
// joined, been invited, left (some forgetting the room) or been banned by
// turns, the joined ones with unread notifications in the main timeline
// and a thread.
func memberRoomDB(t *testing.T, n int) *DB {
	db := unreadDB(t, 0, false)
	ctx := context.Background()
	err := db.Write(ctx, func(q Q) error {
		for i := range n {
			user := fmt.Sprintf("@m%d:hs", i)
			membership := []string{"join", "join", "invite", "leave", "ban"}[i%5]
			if _, err := q.exec(ctx, `INSERT INTO room_state(room_id, type, state_key, event_id, pos, membership)
				VALUES ('!r:hs', 'm.room.member', ?1, '$m' || ?1, ?2, ?3)`, user, i+1, membership); err != nil {
				return err
			}
			if i%10 == 3 {
				if _, err := q.exec(ctx, `INSERT INTO forgotten_rooms(user_id, room_id) VALUES (?, '!r:hs')`, user); err != nil {
					return err
				}
			}
			if membership == "join" {
				if _, err := q.exec(ctx, `INSERT INTO unread_counts(room_id, user_id, thread_id, notifications, highlights)
					VALUES ('!r:hs', ?1, '', ?2, 1), ('!r:hs', ?1, '$t', ?2 % 3, 0)`, user, i); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// The syncs a commit wakes in one room look up their users' memberships
// and unread counts; past a few, the room's are read at once, and each is
// what the sync would have read alone, after every kind of change.
func TestMemoReadsRoomAtOnce(t *testing.T) {
	const members, syncs = 30, 24
	db := memberRoomDB(t, members)
	ctx := context.Background()
	changes := []string{
		`UPDATE room_state SET membership = 'leave' WHERE state_key = '@m0:hs'`,
		`UPDATE room_state SET membership = 'join' WHERE state_key = '@m2:hs'`,
		`UPDATE unread_counts SET notifications = notifications + 1 WHERE user_id = '@m1:hs'`,
		`UPDATE unread_counts SET notifications = 0, highlights = 0 WHERE user_id = '@m5:hs'`,
		`DELETE FROM forgotten_rooms WHERE user_id = '@m3:hs'`,
		`INSERT INTO forgotten_rooms(user_id, room_id) VALUES ('@m6:hs', '!r:hs')`,
	}
	bulk := 0
	for _, change := range append([]string{""}, changes...) {
		if change != "" {
			if err := db.Write(ctx, func(q Q) error { _, err := q.exec(ctx, change); return err }); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for s := range syncs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				user := fmt.Sprintf("@m%d:hs", (s*7)%(members+2)) // two who never were members
				err := db.ReadPositioned(ctx, func(q Q, _ Positions) error {
					shared := q.memo != nil && q.memo.loaded("!r:hs") != nil
					read := func(q Q) (m []RoomMembership, u map[string]Unread, err error) {
						if m, err = q.MembershipsIn(ctx, user, []string{"!r:hs"}); err != nil {
							return nil, nil, err
						}
						u, err = q.UnreadCounts(ctx, user, "!r:hs")
						return m, u, err
					}
					gotM, gotU, err := read(q)
					if err != nil {
						return err
					}
					own := q
					own.memo = nil
					wantM, wantU, err := read(own)
					if err != nil {
						return err
					}
					if !reflect.DeepEqual(gotM, wantM) || !reflect.DeepEqual(gotU, wantU) {
						return fmt.Errorf("%s after %q: shared %+v %v, the snapshot's %+v %v", user, change, gotM, gotU, wantM, wantU)
					}
					gotU["scribbled"] = Unread{} // a reader's own map
					if again, err := q.UnreadCounts(ctx, user, "!r:hs"); err != nil || !reflect.DeepEqual(again, wantU) {
						return fmt.Errorf("%s read again: %v %v, want %v", user, again, err, wantU)
					}
					if shared {
						mu.Lock()
						bulk++
						mu.Unlock()
					}
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	if bulk == 0 {
		t.Error("no sync looked itself up in the room read at once")
	}
}

// In a room with many members of whom few sync, each looks itself up;
// once one member in bulkShare has, the room is read at once.
func TestMemoLargeRoomLooksUpAlone(t *testing.T) {
	db := memberRoomDB(t, 1000) // 600 joined or invited: read at once at the 64th lookup
	ctx := context.Background()
	err := db.ReadPositioned(ctx, func(q Q, _ Positions) error {
		if q.memo == nil {
			return fmt.Errorf("not a settled snapshot")
		}
		for i := range 64 {
			if q.memo.loaded("!r:hs") != nil {
				return fmt.Errorf("read at once after %d lookups", i)
			}
			if _, err := q.MembershipsIn(ctx, fmt.Sprintf("@m%d:hs", i), []string{"!r:hs"}); err != nil {
				return err
			}
		}
		if q.memo.loaded("!r:hs") == nil {
			return fmt.Errorf("not read at once after 64 lookups")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
