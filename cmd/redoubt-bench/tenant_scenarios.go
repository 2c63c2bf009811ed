package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// benchUsers measures what a tenant's people cost, for sizing: users
// registered with a device each, that device's identity keys and 50
// one-time keys uploaded (as Element does on first login), and every user
// joined to one organisation-wide room. It reports the disk (database and
// WAL) each user adds, and the resident memory once the server settles.
func benchUsers(ctx context.Context, cfg *config) ([]row, error) {
	n := 500
	if cfg.quick {
		n = 20
	}
	owner, err := cfg.users(ctx, "org", 1)
	if err != nil {
		return nil, err
	}
	room, err := owner[0].createRoom(ctx, true)
	if err != nil {
		return nil, err
	}
	dbBefore := diskSize(cfg.db)
	users, err := cfg.users(ctx, "people", n)
	if err != nil {
		return nil, err
	}
	_, err = parallel(users, func(_ int, c *client) ([]time.Duration, error) {
		keys := map[string]any{}
		for k := range 50 {
			keys[fmt.Sprintf("signed_curve25519:AAAAA%d", k)] = map[string]any{"key": fmt.Sprintf("%043d", k),
				"signatures": map[string]any{c.UserID: map[string]string{"ed25519:" + c.Device: fmt.Sprintf("%086d", k)}}}
		}
		device, err := signedDeviceKeys(c)
		if err != nil {
			return nil, err
		}
		if _, err := c.do(ctx, "POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": device, "one_time_keys": keys}); err != nil {
			return nil, err
		}
		return nil, c.join(ctx, room)
	})
	if err != nil {
		return nil, err
	}
	if got, err := countJoined(ctx, owner[0], room); err != nil || got != n+1 {
		return nil, fmt.Errorf("the room has %d members, want %d (%v)", got, n+1, err)
	}
	name := fmt.Sprintf("users, %d (a device, its keys, one shared room)", n)
	var rows []row
	if cfg.db != "" {
		rows = append(rows, row{name, "database bytes per user (file + WAL growth)", fmt.Sprintf("%.0f", float64(diskSize(cfg.db)-dbBefore)/float64(n))})
	}
	// Resident memory as a whole once the server settles, not a growth
	// per user: hashing the passwords (argon2id, 8 at a time) takes memory
	// the runtime returns to the system only slowly, which would swamp
	// what the users keep.
	if cfg.pid != 0 {
		rows = append(rows, row{name, "RSS after, settled (MB)", fmt.Sprintf("%.1f", settled(cfg.pid).rssMB)})
	}
	return rows, nil
}

func countJoined(ctx context.Context, c *client, roomID string) (int, error) {
	res, err := c.do(ctx, "GET", roomPath(roomID, "/joined_members"), nil)
	return len(res.Get("joined").Map()), err
}

// signedDeviceKeys are a device's identity keys, signed with its ed25519
// key as a client signs them (the server checks the signature).
func signedDeviceKeys(c *client) (map[string]any, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	b64 := base64.RawStdEncoding.EncodeToString
	device := map[string]any{"user_id": c.UserID, "device_id": c.Device,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]string{"curve25519:" + c.Device: b64(pub), "ed25519:" + c.Device: b64(pub)}}
	// encoding/json sorts keys and adds no space: canonical JSON for
	// these ASCII values.
	canonical, err := json.Marshal(device)
	if err != nil {
		return nil, err
	}
	device["signatures"] = map[string]any{c.UserID: map[string]string{"ed25519:" + c.Device: b64(ed25519.Sign(priv, canonical))}}
	return device, nil
}
