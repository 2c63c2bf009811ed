package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
)

// SearchQuery is a full-text search over what the searcher may see.
type SearchQuery struct {
	Term string
	Keys []string // of content.body, content.name, content.topic
	// Visible is where the searcher may see events; nothing else is
	// counted or returned. The ranges of one room must not overlap.
	Visible []PosRange
	// Ignored are senders whose messages are left out; their state events
	// (names, topics) are not, as the room's state stays whole.
	Ignored []string
	Recent  bool // newest first, else best match first
	From    int
	Limit   int
}

// PosRange is the events of a room at positions After < pos <= Upto.
type PosRange struct {
	RoomID string `json:"room"`
	After  int64  `json:"after"`
	Upto   int64  `json:"upto"`
}

// SearchHit is one matching event.
type SearchHit struct {
	Event Event
	Rank  float64
}

// ftsQuery turns a user's search term into an FTS5 query: each word a
// quoted string (so no word is read as FTS5 syntax), all required, in the
// given columns. It returns "" when the term has no words.
func ftsQuery(term string, keys []string) string {
	var words []string
	for _, w := range strings.FieldsFunc(term, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) }) {
		words = append(words, `"`+w+`"`)
	}
	if len(words) == 0 {
		return ""
	}
	cols := map[string]string{"content.body": "body", "content.name": "name", "content.topic": "topic"}
	var use []string
	for _, k := range keys {
		if c, ok := cols[k]; ok {
			use = append(use, c)
		}
	}
	if len(use) == 0 {
		use = []string{"body", "name", "topic"}
	}
	return "{" + strings.Join(use, " ") + "} : (" + strings.Join(words, " AND ") + ")"
}

// searchVisible is the matches of a search in what the searcher may see;
// its parameters are the ranges, the term and the ignored senders. The
// ranges are read once into a table (json_each in the join would parse
// them again for every match), and typed, so that SQLite indexes it for
// the look-up of each match's room. The full-text match drives: CROSS
// JOIN keeps it the outer loop.
const searchVisible = `WITH v(room_id, after, upto) AS MATERIALIZED (SELECT CAST(value->>'room' AS TEXT),
		CAST(value->>'after' AS INTEGER), CAST(value->>'upto' AS INTEGER) FROM json_each(?))
	SELECT %s FROM event_search f CROSS JOIN events e ON e.pos = f.rowid
		CROSS JOIN v ON v.room_id = e.room_id AND e.pos > v.after AND e.pos <= v.upto
	WHERE event_search MATCH ? AND NOT (e.state_key IS NULL AND e.sender IN (SELECT value FROM json_each(?)))`

// Search finds the events matching a term where the searcher may see them,
// and how many there are in all.
func (q Q) Search(ctx context.Context, s SearchQuery) ([]SearchHit, int, error) {
	match := ftsQuery(s.Term, s.Keys)
	if match == "" || len(s.Visible) == 0 {
		return nil, 0, nil
	}
	b, err := json.Marshal(s.Visible)
	if err != nil {
		return nil, 0, err
	}
	visible := string(b) // as text: SQLite reads a blob as JSONB
	// Never null: json_each would give one NULL, and NOT (sender IN (NULL))
	// is NULL, which would drop every message.
	ignored := jsonStrings(append([]string{}, s.Ignored...))
	q = q.interruptible()
	var total int
	if err := q.queryRow(ctx, fmt.Sprintf(searchVisible, `COUNT(*)`), visible, match, ignored).Scan(&total); err != nil {
		return nil, 0, err
	}
	order := "f.rank"
	if s.Recent {
		order = "e.pos DESC"
	}
	rows, err := q.query(ctx, fmt.Sprintf(searchVisible, eventCols+`, f.rank`)+` ORDER BY `+order+` LIMIT ? OFFSET ?`,
		visible, match, ignored, s.Limit, s.From)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []SearchHit
	for rows.Next() {
		var h SearchHit
		var sk, mem, rep, red, dev, txn sql.NullString
		e := &h.Event
		if err := rows.Scan(&e.Pos, &e.EventID, &e.RoomID, &e.Type, &sk, &e.Sender, &e.OriginTS, &mem, &e.JSON, &rep, &red, &dev, &txn, &h.Rank); err != nil {
			return nil, 0, err
		}
		if sk.Valid {
			e.StateKey = &sk.String
		}
		e.Membership, e.Replaces, e.RedactedBy, e.DeviceID, e.TxnID = mem.String, rep.String, red.String, dev.String, txn.String
		out = append(out, h)
	}
	return out, total, rows.Err()
}
