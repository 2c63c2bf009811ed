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
