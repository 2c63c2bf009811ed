package auth

import (
	"strconv"
	"testing"
	"time"
)

// Nonces are single-use, good for a minute, and bounded in number: past
// maxNonces outstanding, the oldest goes.
func TestNonces(t *testing.T) {
	var n nonces
	now := time.Unix(1_700_000_000, 0)
	n.add("a", now)
	n.add("b", now)
	if !n.take("a", now) || n.take("a", now) {
		t.Fatal("a nonce is not single-use")
	}
	if n.take("b", now.Add(nonceLifetime+time.Second)) {
		t.Fatal("an expired nonce was taken")
	}
	for i := range 3 * maxNonces {
		n.add(strconv.Itoa(i), now)
	}
	if len(n.issued) > maxNonces || len(n.order) > maxNonces {
		t.Fatalf("%d nonces kept (%d in order), at most %d wanted", len(n.issued), len(n.order), maxNonces)
	}
	if n.take("0", now) || !n.take(strconv.Itoa(3*maxNonces-1), now) {
		t.Fatal("not the oldest dropped")
	}
	// Expired ones go when the next is issued.
	n.add("late", now.Add(2*nonceLifetime))
	if len(n.issued) != 1 {
		t.Fatalf("%d nonces kept after all expired", len(n.issued))
	}
}
