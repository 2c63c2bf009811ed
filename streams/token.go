// Package streams is every token a client is handed, each made of stream
// positions: the sync token (a position in every stream a client syncs:
// events, account data, receipts, typing, presence, to-device messages,
// device lists), pagination tokens, sliding sync positions, thread
// subscription tokens.
package streams

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/redoubt-systems/redoubt/matrixerr"
)

// Token is a position in every stream. Events come first so that /messages
// accepts a sync token as a pagination token.
type Token struct {
	Events, AccountData, Receipts, Typing, Presence, ToDevice, DeviceLists int64
}

func (t Token) String() string {
	return fmt.Sprintf("s%d_%d_%d_%d_%d_%d_%d", t.Events, t.AccountData, t.Receipts, t.Typing, t.Presence, t.ToDevice, t.DeviceLists)
}

// ParseToken reads a token made by String.
func ParseToken(s string) (Token, error) {
	var t Token
	parts := strings.Split(strings.TrimPrefix(s, "s"), "_")
	if !strings.HasPrefix(s, "s") || len(parts) != 7 {
		return t, matrixerr.InvalidParam("invalid sync token")
	}
	fields := []*int64{&t.Events, &t.AccountData, &t.Receipts, &t.Typing, &t.Presence, &t.ToDevice, &t.DeviceLists}
	for i, p := range parts {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < 0 {
			return t, matrixerr.InvalidParam("invalid sync token")
		}
		*fields[i] = n
	}
	return t, nil
}
