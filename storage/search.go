package storage

import (
	"context"
	"database/sql"
	"strings"
	"unicode"
)

// SearchQuery is a full-text search over some rooms.
type SearchQuery struct {
	Term    string
	Keys    []string // of content.body, content.name, content.topic
	RoomIDs []string
	Recent  bool // newest first, else best match first
	From    int
	Limit   int
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

// Search finds events matching a term in the given rooms, and how many
// match in all.
func (q Q) Search(ctx context.Context, s SearchQuery) ([]SearchHit, int, error) {
	match := ftsQuery(s.Term, s.Keys)
	if match == "" || len(s.RoomIDs) == 0 {
		return nil, 0, nil
	}
	rooms := jsonStrings(s.RoomIDs)
	var total int
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM event_search f JOIN events e ON e.pos = f.rowid
		WHERE event_search MATCH ? AND e.room_id IN (SELECT value FROM json_each(?))`, match, rooms).Scan(&total)
	if err != nil {
		return nil, 0, err
	}
	order := "f.rank"
	if s.Recent {
		order = "e.pos DESC"
	}
	rows, err := q.query(ctx, `SELECT `+eventCols+`, f.rank FROM event_search f JOIN events e ON e.pos = f.rowid
		WHERE event_search MATCH ? AND e.room_id IN (SELECT value FROM json_each(?))
		ORDER BY `+order+` LIMIT ? OFFSET ?`, match, rooms, s.Limit, s.From)
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
