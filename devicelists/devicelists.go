// Package devicelists is what end-to-end encryption clients learn of
// others' devices: between two sync tokens, whose device lists changed and
// with whom they no longer share a room. /sync and /keys/changes both ask.
package devicelists

import (
	"context"
	"slices"
	"sort"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/redoubt-systems/redoubt/storage"
	"github.com/redoubt-systems/redoubt/streams"
)

// Store is the part of storage.Q device lists are computed from.
type Store interface {
	DeviceListChangesBetween(ctx context.Context, from, to int64) ([]string, error)
	JoinedMembers(ctx context.Context, roomID string) ([]string, error)
	MemberChangesBetween(ctx context.Context, from, to int64) ([]storage.MemberChange, error)
	Membership(ctx context.Context, roomID, userID string) (string, int64, error)
	UsersSharingRoomsAmong(ctx context.Context, userID string, users []string) (map[string]bool, error)
}

var _ Store = storage.Q{}

// Delta returns whose device lists a user must refetch between two
// tokens (changed) and whom they no longer share a room with (left):
// users whose devices or keys changed, users who newly share a room with
// them, and users they stopped sharing every room with.
func Delta(ctx context.Context, q Store, userID string, from, to streams.Token) (changed, left []string, err error) {
	var updated []string
	var members []storage.MemberChange
	if from.DeviceLists < to.DeviceLists {
		if updated, err = q.DeviceListChangesBetween(ctx, from.DeviceLists, to.DeviceLists); err != nil {
			return nil, nil, err
		}
	}
	if from.Events < to.Events {
		if members, err = q.MemberChangesBetween(ctx, from.Events, to.Events); err != nil {
			return nil, nil, err
		}
	}
	if len(updated) == 0 && len(members) == 0 {
		return nil, nil, nil // the common case: nothing to look up
	}
	// Who could be concerned, then which of them share a room with the
	// user: one query over those few, not a list of everyone in the
	// user's rooms on every sync after a join or a new device.
	affected := map[string]bool{} // by a membership change, the user aside
	for _, m := range members {
		if m.UserID == userID {
			// Our own join or leave affects everyone in that room.
			joined, err := q.JoinedMembers(ctx, m.RoomID)
			if err != nil {
				return nil, nil, err
			}
			for _, u := range joined {
				affected[u] = true
			}
		} else if mine, _, err := q.Membership(ctx, m.RoomID, userID); err != nil {
			return nil, nil, err
		} else if mine == spec.Join {
			affected[m.UserID] = true
		}
	}
	delete(affected, userID)
	candidates := slices.Clone(updated)
	for u := range affected {
		candidates = append(candidates, u)
	}
	sharing, err := q.UsersSharingRoomsAmong(ctx, userID, candidates)
	if err != nil {
		return nil, nil, err
	}
	changedSet, leftSet := map[string]bool{}, map[string]bool{}
	for _, u := range updated {
		if sharing[u] {
			changedSet[u] = true
		}
	}
	for u := range affected {
		if sharing[u] {
			changedSet[u] = true
		} else {
			leftSet[u] = true
		}
	}
	for u := range changedSet {
		changed = append(changed, u)
	}
	for u := range leftSet {
		left = append(left, u)
	}
	sort.Strings(changed)
	sort.Strings(left)
	return changed, left, nil
}
