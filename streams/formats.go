package streams

import (
	"strconv"
	"strings"

	"github.com/redoubt-systems/redoubt/matrixerr"
)

// The other tokens a client is handed, each a position or positions.

// Pagination is a /messages (and /context, /relations, /search context)
// token: "t<pos>", just after the event at pos. Backwards pagination from
// it returns events at or before pos; forwards, events after it.
func Pagination(pos int64) string { return "t" + strconv.FormatInt(pos, 10) }

// ParsePagination reads a pagination token's event position. A sync token
// is accepted too ("s<pos>_…"), as the spec lets clients paginate from one.
func ParsePagination(tok string) (int64, error) {
	if len(tok) < 2 || (tok[0] != 't' && tok[0] != 's') {
		return 0, matrixerr.InvalidParam("invalid pagination token")
	}
	digits, _, _ := strings.Cut(tok[1:], "_")
	pos, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || pos < 0 {
		return 0, matrixerr.InvalidParam("invalid pagination token")
	}
	return pos, nil
}

// Subscriptions is a token for paging thread subscription changes
// (MSC4308): a position in the account data stream, in decimal.
func Subscriptions(pos int64) string { return strconv.FormatInt(pos, 10) }

// SlidingPos is a sliding sync position: which of its answers the
// connection goes on from (Version) and the streams' positions then.
type SlidingPos struct {
	Version int
	Token   Token
}

func (p SlidingPos) String() string { return strconv.Itoa(p.Version) + "~" + p.Token.String() }

// ParseSlidingPos reads a position made by SlidingPos.String.
func ParseSlidingPos(s string) (SlidingPos, error) {
	ver, tok, ok := strings.Cut(s, "~")
	v, err := strconv.Atoi(ver)
	if !ok || err != nil || v < 0 {
		return SlidingPos{}, matrixerr.InvalidParam("invalid sliding sync position")
	}
	t, err := ParseToken(tok)
	return SlidingPos{Version: v, Token: t}, err
}
