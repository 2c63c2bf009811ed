package e2ekeys_test

import (
	"fmt"
	"testing"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
	"github.com/redoubt-systems/redoubt/storage"
)

// BenchmarkClaimKey: claiming one one-time key in the write transaction.
func BenchmarkClaimKey(b *testing.B) {
	srv := ts.Start(b)
	alice := srv.Register(b, "alice")
	ctx := b.Context()
	err := srv.DB.Write(ctx, func(q storage.Q) error {
		for i := range b.N {
			if err := q.AddOneTimeKey(ctx, alice.UserID, alice.DeviceID, "signed_curve25519", fmt.Sprintf("k%09d", i), []byte(`{"key":"x"}`)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		err := srv.DB.Write(ctx, func(q storage.Q) error {
			_, _, err := q.ClaimKey(ctx, alice.UserID, alice.DeviceID, "signed_curve25519")
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQuery100Users: /keys/query of 100 users with a device each,
// through the HTTP handler.
func BenchmarkQuery100Users(b *testing.B) {
	srv := ts.Start(b)
	want := map[string]any{}
	for i := range 100 {
		c := srv.Register(b, fmt.Sprintf("user%03d", i))
		dk, _ := deviceKeys(b, c)
		c.MustDo(b, "POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": dk}, 200)
		want[c.UserID] = []string{}
	}
	reader := srv.Register(b, "reader")
	b.ResetTimer()
	for range b.N {
		reader.MustDo(b, "POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": want}, 200)
	}
}
