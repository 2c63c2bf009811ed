package streams

import "testing"

// Every token format reads back what it wrote, and refuses what it did
// not write.
func TestTokenFormats(t *testing.T) {
	if pos, err := ParsePagination(Pagination(42)); err != nil || pos != 42 {
		t.Errorf("pagination: %d %v", pos, err)
	}
	if pos, err := ParsePagination(Token{Events: 7, Receipts: 3}.String()); err != nil || pos != 7 {
		t.Errorf("a sync token as a pagination token: %d %v", pos, err)
	}
	p := SlidingPos{Version: 3, Token: Token{Events: 9, ToDevice: 2}}
	if got, err := ParseSlidingPos(p.String()); err != nil || got != p {
		t.Errorf("sliding position: %+v %v", got, err)
	}
	if Subscriptions(12) != "12" {
		t.Errorf("subscriptions token %q", Subscriptions(12))
	}
	for _, bad := range []string{"", "x", "t", "t-1", "tx", "s"} {
		if _, err := ParsePagination(bad); err == nil {
			t.Errorf("pagination token %q accepted", bad)
		}
	}
	for _, bad := range []string{"", "3", "~s1_0_0_0_0_0_0", "-1~s1_0_0_0_0_0_0", "3~t5", "x~s1_0_0_0_0_0_0"} {
		if _, err := ParseSlidingPos(bad); err == nil {
			t.Errorf("sliding position %q accepted", bad)
		}
	}
}
