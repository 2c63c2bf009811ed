package adminapi

import (
	"strings"
	"testing"
)

// Generated registration tokens use the characters the spec allows and
// never begin with one that a command line reads as a flag.
func TestRandomToken(t *testing.T) {
	const allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"
	for _, n := range []int{1, 16, 64} {
		for range 2000 {
			tok := randomToken(n)
			if len(tok) != n || strings.Trim(tok, allowed) != "" {
				t.Fatalf("token %q", tok)
			}
			if strings.ContainsAny(tok[:1], "._~-") {
				t.Fatalf("token %q begins with %q", tok, tok[:1])
			}
		}
	}
}
