package syncapi

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/redoubt-systems/redoubt/rooms"
)

// The sync wake-up. A long-polling /sync (or sliding sync) waits on the
// notifier for its user; these wake the users a change concerns. Events
// come through rooms' after-commit path (AfterCommit, wired in server);
// typing and receipts through OnRoomChange.

// AfterCommit wakes everyone a committed write concerns: the joined
// members of the rooms of its events, and the targets of membership
// changes (the invited, the kicked, the banned).
func (s *Service) AfterCommit(c rooms.Committed) {
	users := map[string]bool{}
	seenRooms := map[string]bool{}
	for _, e := range c.Events {
		if e.Type == spec.MRoomMember && e.StateKey != nil {
			users[*e.StateKey] = true
		}
		if !seenRooms[e.RoomID] {
			seenRooms[e.RoomID] = true
			if joined, ok := c.Joined[e.RoomID]; ok {
				for _, m := range joined {
					users[m.UserID] = true
				}
			} else {
				s.roomMembers(e.RoomID, users)
			}
		}
	}
	s.wake(users)
}

// OnRoomChange wakes the joined members of a room (typing, receipts).
func (s *Service) OnRoomChange(roomID string) {
	users := map[string]bool{}
	s.roomMembers(roomID, users)
	s.wake(users)
}

func (s *Service) roomMembers(roomID string, into map[string]bool) {
	members, err := s.DB.R().JoinedMembers(context.Background(), roomID)
	if err != nil {
		return // waiters then return at their timeout
	}
	for _, m := range members {
		into[m] = true
	}
}

func (s *Service) wake(users map[string]bool) {
	list := make([]string, 0, len(users))
	for u := range users {
		list = append(list, u)
	}
	s.Notifier.Wake(list...)
}
