package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// sessionDB is a database with n users, each with device D and the token
// whose hash is tokenHash(i).
func sessionDB(t testing.TB, n int) (*DB, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	err = db.Write(ctx, func(q Q) error {
		for i := range n {
			u := fmt.Sprintf("@u%d:hs", i)
			if err := q.CreateUser(ctx, User{UserID: u, CreatedTS: 1}); err != nil {
				return err
			}
			if _, err := q.exec(ctx, `INSERT INTO devices(user_id, device_id, created_ts) VALUES(?, 'D', 1)`, u); err != nil {
				return err
			}
			if err := q.AddAccessToken(ctx, AccessToken{Hash: tokenHash(i), UserID: u, DeviceID: "D", CreatedTS: 1}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return db, path
}

func tokenHash(i int) []byte { return fmt.Appendf(nil, "%032d", i) }

// change runs a query by the server's writer, or else through another
// connection to the file at path, opened with params ("?_pragma=...").
func change(t *testing.T, db *DB, path, by, query, params string) {
	t.Helper()
	if by == "server" {
		ctx := context.Background()
		if err := db.Write(ctx, func(q Q) error { _, err := q.exec(ctx, query); return err }); err != nil {
			t.Fatal(err)
		}
		return
	}
	other, err := sql.Open("sqlite", "file:"+path+params)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec(query); err != nil {
		t.Fatal(err)
	}
}

// A session kept in memory is the stored one after every change that can
// alter it, made by this server or by any other connection to the file
// (a command run beside the server, or sqlite3's shell, which does not
// enforce foreign keys, so deleting a device leaves its tokens).
func TestSessionFollowsAuthEpoch(t *testing.T) {
	for _, tc := range []struct{ name, change string }{
		{"token deleted", `DELETE FROM access_tokens WHERE user_id = '@u0:hs'`},
		{"device deleted", `DELETE FROM devices WHERE user_id = '@u0:hs'`},
		{"user deleted", `DELETE FROM users WHERE user_id = '@u0:hs'`},
		{"deactivated", `UPDATE users SET deactivated = 1 WHERE user_id = '@u0:hs'`},
		{"made admin", `UPDATE users SET is_admin = 1 WHERE user_id = '@u0:hs'`},
		{"expiry set", `UPDATE access_tokens SET expires_ts = 5 WHERE user_id = '@u0:hs'`},
		{"token moved", `INSERT INTO devices(user_id, device_id, created_ts) VALUES('@u0:hs', 'E', 1);
			UPDATE access_tokens SET device_id = 'E' WHERE user_id = '@u0:hs'`},
		// REPLACE deletes the row it conflicts with without delete triggers.
		{"token replaced", `REPLACE INTO access_tokens(token_hash, user_id, device_id, created_ts, expires_ts)
			SELECT token_hash, '@u1:hs', 'D', 1, 5 FROM access_tokens WHERE user_id = '@u0:hs'`},
		{"user replaced", `REPLACE INTO users(user_id, is_admin, created_ts) VALUES('@u0:hs', 1, 1)`},
	} {
		for _, by := range []string{"server", "other connection"} {
			t.Run(tc.name+"/"+by, func(t *testing.T) {
				ctx := context.Background()
				db, path := sessionDB(t, 2)
				var before Session
				for range 2 { // the second from memory
					s, err := db.Session(ctx, tokenHash(0))
					if err != nil || s.UserID != "@u0:hs" {
						t.Fatalf("before: %+v, %v", s, err)
					}
					before = s
				}
				change(t, db, path, by, tc.change, "")
				want, wantErr := db.R().SessionByToken(ctx, tokenHash(0))
				if wantErr == nil && want == before {
					t.Fatalf("the change changed nothing: %+v", want)
				}
				s, err := db.Session(ctx, tokenHash(0))
				if s != want || !errors.Is(err, wantErr) && err != wantErr {
					t.Fatalf("after: %+v, %v; stored %+v, %v", s, err, want, wantErr)
				}
				if s, err := db.Session(ctx, tokenHash(1)); err != nil || s.UserID != "@u1:hs" {
					t.Fatalf("the other user: %+v, %v", s, err)
				}
			})
		}
	}
}

// Once a logout has committed, no request that starts after it finds its
// session, however many readers were filling the memory at the time.
func TestSessionGoneAfterLogout(t *testing.T) {
	ctx := context.Background()
	db, _ := sessionDB(t, 4)
	var loggedOut atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 300 {
				after := loggedOut.Load()
				s, err := db.Session(ctx, tokenHash(r%4))
				switch {
				case r%4 == 0 && after && !errors.Is(err, ErrNotFound):
					errs <- fmt.Errorf("after the logout: %+v, %v", s, err)
					return
				case r%4 != 0 && err != nil:
					errs <- err
					return
				}
			}
		}()
	}
	err := db.Write(ctx, func(q Q) error { return q.DeleteDevices(ctx, "@u0:hs", []string{"D"}) })
	if err != nil {
		t.Fatal(err)
	}
	loggedOut.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// BenchmarkSession: a commit, then a request's authentication (as under
// load, where every commit empties the readers' page caches), by the
// three-table lookup and from memory. The commit is timed too (stopping
// the timer would leave its aftermath on the other core in the timing),
// so compare the difference.
func BenchmarkSession(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background()) // as a request's
	defer cancel()
	db, _ := sessionDB(b, 1000)
	commit := func() {
		if err := db.Write(ctx, func(q Q) error { return q.AddDeviceListChange(ctx, "@u1:hs") }); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("lookup", func(b *testing.B) {
		for i := range b.N {
			commit()
			if _, err := db.R().SessionByToken(ctx, tokenHash(i%1000)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("commit only", func(b *testing.B) {
		for range b.N {
			commit()
		}
	})
	b.Run("kept", func(b *testing.B) {
		for i := range b.N {
			commit()
			if _, err := db.Session(ctx, tokenHash(i%1000)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
