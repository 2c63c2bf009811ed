package rooms_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
)

var encrypted = json.RawMessage(`{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"` +
	`AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg2yyOwAtHaZTwyNg37afzg8f3r9IsN9r4RNFg7MaZencUJe4qvELiDiopUjy5wYVDAtqdBzer5bWRD9ldxp1FLgbQvBcjkkywYjCsmsq6+hArLd9oAQZnGKn/qLxK2Ku6paTLuIMBgbBMHaaF5sOyMzXbKEkAWMW8wA/n6dKoxa7ajsnv1qjhvvKQkphHyU2BZeBZlIsEh54jRwXeQqbGLFqVXtxeNmSjy6wkCP4G0Gjp0q1rWWpK6NOeUqIRQZi+wqNWwDxuBWp8vOc6E8mi6b4TOVlpDbmbYiQFVAbFL7YjBpqfqIUovZvr3Pbo8qy+hz1uNeJ9gXxnU78yHbJsODkzNxfmf7/C+aMs+FmBDGWV6B0k3RtQs42OJSBHNGg1+SiS3p1gWU3lnsJK7HGxlmOaH7MA6ZdhBHw9MCZdEkcxhZZRMX4VqBJvYwdDt+fScVC0idwKOn1kBUbrq2H0Yfo+RqN00cBrLppF1Zv2nyxo7tcRXzaqRGfaCswxLPFJBaJ0u7ZDAOE/whmnAmKDVabPAmidkl4+RbwtLtM1c1OfSvW8c7G9hL5XTN5nQM9ToAkMQwKp7uxUIgbMXBMDX1NjnzO7mPB/hCXr6AtxzKdvSLdXrtVX7y2K5IHn9zrNt5iZjP5GYI2gdt69M59Y6ILG3Q1AJ5qSZzPZNMvy1Ql8fR0Y2QF8c6Ez8w5OB5oX6c5Z5","device_id":"BENCHDEVICE","sender_key":"r7NdCnWIzKCfkEG2xmjvk3y0JHcbsHcbtWkEn6rVVBc","session_id":"4AjsLcYzTwK8ibg8gKyFNDtB7aOl9bU+kf1ArnkAtEE"}`)

func benchRoom(b *testing.B, members int) (*ts.Server, string, []string) {
	b.Helper()
	srv := ts.Start(b)
	owner := srv.Register(b, "owner")
	room := owner.CreateRoom(b, map[string]any{"preset": "public_chat"})
	ids := []string{owner.UserID}
	for i := range members - 1 {
		c := srv.Register(b, fmt.Sprintf("m%d", i))
		c.Join(b, room)
		ids = append(ids, c.UserID)
	}
	return srv, room, ids
}

// BenchmarkAppendEvent: the event path (build, sign, authorise, store,
// evaluate push rules) for a ~600-byte encrypted event, by room size.
func BenchmarkAppendEvent(b *testing.B) {
	for _, members := range []int{2, 32} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			srv, room, ids := benchRoom(b, members)
			b.ResetTimer()
			for i := range b.N {
				_, err := srv.Rooms.Send(b.Context(), room, rooms.Event{Sender: ids[i%len(ids)], Type: "m.room.encrypted", Content: encrypted})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendEventParallel: senders at once, in one room of 32 members
// and in rooms of their own.
func BenchmarkAppendEventParallel(b *testing.B) {
	b.Run("one room", func(b *testing.B) {
		srv, room, ids := benchRoom(b, 32)
		var n atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				if _, err := srv.Rooms.Send(b.Context(), room, rooms.Event{Sender: ids[i%int64(len(ids))], Type: "m.room.encrypted", Content: encrypted}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("own rooms", func(b *testing.B) {
		srv, _, _ := benchRoom(b, 1)
		var n atomic.Int64
		var mu sync.Mutex
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			b.StopTimer()
			mu.Lock()
			c := srv.Register(b, fmt.Sprintf("own%d", n.Add(1)))
			mu.Unlock()
			room := c.CreateRoom(b, nil)
			b.StartTimer()
			for pb.Next() {
				if _, err := srv.Rooms.Send(b.Context(), room, rooms.Event{Sender: c.UserID, Type: "m.room.encrypted", Content: encrypted}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkReadTimeline: the newest 50 events of a room, as sync reads them.
func BenchmarkReadTimeline(b *testing.B) {
	srv, room, ids := benchRoom(b, 2)
	for i := range 500 {
		if _, err := srv.Rooms.Send(b.Context(), room, rooms.Event{Sender: ids[i%2], Type: "m.room.encrypted", Content: encrypted}); err != nil {
			b.Fatal(err)
		}
	}
	pos, _ := srv.DB.R().MaxEventPos(b.Context())
	b.ResetTimer()
	for range b.N {
		err := srv.DB.Read(b.Context(), func(q storage.Q) error {
			evs, _, err := q.EventsBetween(b.Context(), room, 0, pos, 50)
			if err == nil && len(evs) != 50 {
				err = fmt.Errorf("%d events", len(evs))
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
