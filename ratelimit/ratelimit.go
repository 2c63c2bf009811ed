// Package ratelimit keeps token buckets: each (bucket, key) pair — an IP
// address for logins and registrations, a user for sending — may act at a
// steady rate with some burst. A clock is injected so tests can move time.
package ratelimit

import (
	"math"
	"sync"
	"time"
)

// Rule is a bucket's steady rate and burst.
type Rule struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     float64 `yaml:"burst"`
}

type bucket struct {
	tokens float64
	last   time.Time
}

// Limiter holds the buckets of every rule.
type Limiter struct {
	Rules map[string]Rule
	Now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time
}

// Allow takes a token from the (name, key) bucket, or reports how long
// until one is there. A name without a rule is not limited.
func (l *Limiter) Allow(name, key string) (bool, time.Duration) {
	return l.AllowWith(l.Rules[name], name, key)
}

// AllowWith is Allow with a rule of the caller's (a user's override of
// the bucket's). A rule with no rate does not limit.
func (l *Limiter) AllowWith(rule Rule, name, key string) (bool, time.Duration) {
	if rule.PerSecond <= 0 {
		return true, 0
	}
	rule.Burst = max(rule.Burst, 1)
	now := l.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*bucket{}
	}
	// Full buckets are forgotten now and then, so memory follows the
	// number of active clients, not of all clients ever seen.
	if now.Sub(l.sweep) > time.Minute {
		for k, b := range l.buckets {
			if b.tokens+now.Sub(b.last).Seconds()*rule.PerSecond >= rule.Burst {
				delete(l.buckets, k)
			}
		}
		l.sweep = now
	}
	k := name + "\x00" + key
	b := l.buckets[k]
	if b == nil {
		b = &bucket{tokens: rule.Burst, last: now}
		l.buckets[k] = b
	}
	b.tokens = math.Min(rule.Burst, b.tokens+now.Sub(b.last).Seconds()*rule.PerSecond)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / rule.PerSecond * float64(time.Second))
	return false, wait
}

// Backoff slows down repeated failures of one key (failed logins of one
// account): after the first few, each failure doubles the wait before the
// next attempt is considered, up to a maximum; a success resets it.
type Backoff struct {
	Free int           // failures allowed before waiting starts
	Base time.Duration // the first wait
	Max  time.Duration
	Now  func() time.Time

	mu       sync.Mutex
	failures map[string]*failure
}

type failure struct {
	count int
	until time.Time
}

// Wait reports how long the key must still wait before its next attempt.
func (b *Backoff) Wait(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f := b.failures[key]; f != nil {
		if d := f.until.Sub(b.Now()); d > 0 {
			return d
		}
	}
	return 0
}

// Failed records a failure.
func (b *Backoff) Failed(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures == nil {
		b.failures = map[string]*failure{}
	}
	f := b.failures[key]
	if f == nil {
		f = &failure{}
		b.failures[key] = f
	}
	f.count++
	if over := f.count - b.Free; over > 0 {
		wait := b.Base << min(over-1, 20)
		f.until = b.Now().Add(min(wait, b.Max))
	}
}

// Succeeded forgets the key's failures.
func (b *Backoff) Succeeded(key string) {
	b.mu.Lock()
	delete(b.failures, key)
	b.mu.Unlock()
}
