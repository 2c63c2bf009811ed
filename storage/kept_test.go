package storage

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
)

// perUser is what a /sync reads of its user that a snapshot of
// ReadPositioned may take from memory.
type perUser struct {
	Counts   map[string]int
	Fallback []string
	Ignored  string
	Other    string
	InRoom   string // room account data, never kept
}

func readPerUser(ctx context.Context, q Q) (perUser, error) {
	var p perUser
	var err error
	if p.Counts, p.Fallback, err = q.DeviceKeyCounts(ctx, "@u0:hs", "D"); err != nil {
		return p, err
	}
	for _, ad := range []struct {
		typ  string
		to   *string
		room string
	}{{"m.ignored_user_list", &p.Ignored, ""}, {"m.other", &p.Other, ""}, {"m.fully_read", &p.InRoom, "!r:hs"}} {
		c, err := q.AccountData(ctx, "@u0:hs", ad.room, ad.typ)
		*ad.to = fmt.Sprintf("%s %v", c, err)
	}
	return p, nil
}

// keptDB is sessionDB with a one-time key, a fallback key and the users
// @u0:hs ignores.
func keptDB(t *testing.T) (*DB, string) {
	ctx := context.Background()
	db, path := sessionDB(t, 2)
	err := db.Write(ctx, func(q Q) error {
		if err := q.AddOneTimeKey(ctx, "@u0:hs", "D", "signed_curve25519", "K1", []byte(`{}`)); err != nil {
			return err
		}
		if err := q.SetFallbackKey(ctx, "@u0:hs", "D", "signed_curve25519", "F1", []byte(`{}`)); err != nil {
			return err
		}
		_, err := q.SetAccountData(ctx, "@u0:hs", "", "m.ignored_user_list", []byte(`{"ignored_users":{}}`))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return db, path
}

// What a snapshot of ReadPositioned takes from memory is what the file
// holds after every change to keys or account data, made by this server
// or by any other connection to the file.
func TestKeptFollowsSyncEpoch(t *testing.T) {
	for _, tc := range []struct{ name, change string }{
		{"one-time key added", `INSERT INTO one_time_keys(user_id, device_id, algorithm, key_id, key_json) VALUES('@u0:hs', 'D', 'signed_curve25519', 'K2', '{}')`},
		{"one-time key claimed", `DELETE FROM one_time_keys WHERE key_id = 'K1'`},
		{"one-time key changed", `UPDATE one_time_keys SET algorithm = 'other' WHERE key_id = 'K1'`},
		{"fallback key added", `INSERT INTO fallback_keys(user_id, device_id, algorithm, key_id, key_json) VALUES('@u0:hs', 'D', 'other', 'F2', '{}')`},
		{"fallback key used", `UPDATE fallback_keys SET used = 1`},
		{"fallback key deleted", `DELETE FROM fallback_keys`},
		{"device deleted", `DELETE FROM devices WHERE user_id = '@u0:hs'`}, // by cascade
		{"account data added", `INSERT INTO account_data(user_id, room_id, type, content, pos) VALUES('@u0:hs', '', 'm.other', '{}', 100)`},
		{"account data changed", `UPDATE account_data SET content = '{"ignored_users":{"@u1:hs":{}}}'`},
		{"account data deleted", `DELETE FROM account_data WHERE user_id = '@u0:hs'`},
		// REPLACE deletes the row it conflicts with without delete triggers.
		{"account data replaced", `REPLACE INTO account_data(user_id, room_id, type, content, pos) VALUES('@u0:hs', '', 'm.ignored_user_list', '{"a":1}', 100)`},
		{"room account data added", `INSERT INTO account_data(user_id, room_id, type, content, pos) VALUES('@u0:hs', '!r:hs', 'm.fully_read', '{}', 100)`},
	} {
		for _, by := range []string{"server", "other connection"} {
			t.Run(tc.name+"/"+by, func(t *testing.T) {
				ctx := context.Background()
				db, path := keptDB(t)
				read := func() (got perUser) {
					t.Helper()
					err := db.ReadPositioned(ctx, func(q Q, _ Positions) (err error) {
						got, err = readPerUser(ctx, q)
						return err
					})
					if err != nil {
						t.Fatal(err)
					}
					return got
				}
				before := read()
				before.Counts["scribbled"] = 1 // a caller's change stays its own
				before.Fallback[0] = "scribbled"
				err := db.ReadPositioned(ctx, func(q Q, _ Positions) error {
					_, okCounts := db.keyCounts.get("@u0:hs\x00D", q.syncEpoch)
					_, okIgnored := db.accountData.get("@u0:hs\x00m.ignored_user_list", q.syncEpoch)
					if !okCounts || !okIgnored {
						return fmt.Errorf("not kept: key counts %v, ignored users %v", okCounts, okIgnored)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if again := read(); !reflect.DeepEqual(again.Counts, map[string]int{"signed_curve25519": 1}) ||
					!reflect.DeepEqual(again.Fallback, []string{"signed_curve25519"}) {
					t.Fatalf("before, from memory: %+v", again)
				}
				change(t, db, path, by, tc.change, "?_pragma=foreign_keys(1)") // so that devices cascade
				want, err := readPerUser(ctx, db.R())
				if err != nil {
					t.Fatal(err)
				}
				delete(before.Counts, "scribbled")
				before.Fallback[0] = "signed_curve25519"
				if reflect.DeepEqual(want, before) {
					t.Fatalf("the change changed nothing: %+v", want)
				}
				if got := read(); !reflect.DeepEqual(got, want) {
					t.Fatalf("after: %+v; stored %+v", got, want)
				}
			})
		}
	}
}

// Once a claim has committed, no snapshot that begins after it counts the
// key, however many readers were filling the memory at the time.
func TestKeyCountAfterClaim(t *testing.T) {
	ctx := context.Background()
	db, _ := keptDB(t)
	var claimed atomic.Bool
	var wg, started sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				if i == 1 {
					started.Done() // the claim waits until every reader has begun
				}
				after := claimed.Load()
				err := db.ReadPositioned(ctx, func(q Q, _ Positions) error {
					counts, _, err := q.DeviceKeyCounts(ctx, "@u0:hs", "D")
					if err == nil && after && counts["signed_curve25519"] != 0 {
						err = fmt.Errorf("after the claim: %v", counts)
					}
					return err
				})
				if err != nil {
					errs <- err
					if i == 0 {
						started.Done()
					}
					return
				}
			}
		}()
	}
	started.Wait()
	err := db.Write(ctx, func(q Q) error {
		_, _, err := q.ClaimKey(ctx, "@u0:hs", "D", "signed_curve25519")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	claimed.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
