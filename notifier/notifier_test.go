package notifier

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestWakeReachesOnlyItsUser(t *testing.T) {
	n := New()
	a, b := n.Listen("@a:x"), n.Listen("@b:x")
	defer a.Close()
	defer b.Close()
	n.Wake("@a:x")
	select {
	case <-a.C:
	case <-time.After(time.Second):
		t.Fatal("a not woken")
	}
	select {
	case <-b.C:
		t.Fatal("b woken by a's change")
	default:
	}
}

// A wake before the wait is not lost: the channel stays signalled.
func TestWakeBeforeWait(t *testing.T) {
	n := New()
	l := n.Listen("@a:x")
	defer l.Close()
	n.Wake("@a:x")
	n.Wake("@a:x") // does not block on a full channel
	select {
	case <-l.C:
	default:
		t.Fatal("signal lost")
	}
}

// Many listeners and wakers at once: every listener registered before a
// wake is woken, nothing deadlocks, and closing cleans up.
func TestHammer(t *testing.T) {
	n := New()
	const users, perUser, rounds = 50, 8, 200
	var wg sync.WaitGroup
	woken := make(chan struct{}, users*perUser)
	ready := sync.WaitGroup{}
	ready.Add(users * perUser)
	for u := range users {
		for range perUser {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l := n.Listen(fmt.Sprint(u))
				defer l.Close()
				ready.Done()
				select {
				case <-l.C:
					woken <- struct{}{}
				case <-time.After(10 * time.Second):
					t.Error("listener never woken")
				}
			}()
		}
	}
	ready.Wait()
	var wakers sync.WaitGroup
	for w := range 10 {
		wakers.Add(1)
		go func() {
			defer wakers.Done()
			for r := range rounds {
				n.Wake(fmt.Sprint((w + r) % users))
				n.Listen("transient").Close()
			}
		}()
	}
	wakers.Wait()
	wg.Wait()
	if len(woken) != users*perUser {
		t.Fatalf("%d of %d listeners woken", len(woken), users*perUser)
	}
	if n.Waiting() != 0 {
		t.Fatalf("%d listeners left registered", n.Waiting())
	}
}
