package storage

import (
	"context"
)

// Relations lists the events relating to a parent (optionally of one
// relation type and event type): backwards those at or before from,
// forwards those after it (the pagination token's meaning).
func (q Q) Relations(ctx context.Context, roomID, parentID, relType, eventType string, from int64, backwards bool, limit int) ([]Event, error) {
	cmp, order := ">", "ASC"
	if backwards {
		cmp, order = "<=", "DESC"
	}
	return q.queryEvents(ctx, `SELECT `+eventCols+` FROM event_relations r JOIN events e ON e.pos = r.event_pos
		WHERE r.relates_to = ? AND r.room_id = ? AND (? = '' OR r.rel_type = ?) AND (? = '' OR r.event_type = ?)
		AND r.event_pos `+cmp+` ? ORDER BY r.event_pos `+order+` LIMIT ?`,
		parentID, roomID, relType, relType, eventType, eventType, from, limit)
}

// Thread is a thread root with the position of its latest reply.
type Thread struct {
	RootID    string
	LatestPos int64
}

// Threads lists a room's threads, most recently active first, with latest
// replies before a position; participant, if set, keeps only threads the
// user started or replied in.
func (q Q) Threads(ctx context.Context, roomID, participant string, before int64, limit int) ([]Thread, error) {
	rows, err := q.query(ctx, `SELECT r.relates_to, MAX(r.event_pos) AS latest FROM event_relations r
		WHERE r.room_id = ?1 AND r.rel_type = 'm.thread' GROUP BY r.relates_to
		HAVING latest < ?2 AND (?3 = '' OR MAX(r.sender = ?3) OR EXISTS (SELECT 1 FROM events p WHERE p.event_id = r.relates_to AND p.sender = ?3))
		ORDER BY latest DESC LIMIT ?4`, roomID, before, participant, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Thread
	for rows.Next() {
		var t Thread
		if err := rows.Scan(&t.RootID, &t.LatestPos); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Aggregation is what the server bundles into a parent's
// unsigned.m.relations for one relation type.
type Aggregation struct {
	Count        int
	LatestPos    int64
	Participated bool // the viewer sent one of the relating events
}

// Aggregations returns, per parent event ID and relation type (m.thread,
// m.replace), the bundled aggregation. Edits count only when made by the
// original sender.
func (q Q) Aggregations(ctx context.Context, parentIDs []string, viewer string) (map[string]map[string]Aggregation, error) {
	out := map[string]map[string]Aggregation{}
	if len(parentIDs) == 0 {
		return out, nil
	}
	rows, err := q.query(ctx, `SELECT r.relates_to, r.rel_type, COUNT(*), MAX(r.event_pos), MAX(r.sender = ?)
		FROM event_relations r JOIN events p ON p.event_id = r.relates_to
		WHERE r.relates_to IN (SELECT value FROM json_each(?)) AND r.rel_type IN ('m.thread', 'm.replace')
		AND (r.rel_type != 'm.replace' OR r.sender = p.sender)
		GROUP BY r.relates_to, r.rel_type`, viewer, jsonStrings(parentIDs))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var parent, relType string
		var a Aggregation
		if err := rows.Scan(&parent, &relType, &a.Count, &a.LatestPos, &a.Participated); err != nil {
			return nil, err
		}
		if out[parent] == nil {
			out[parent] = map[string]Aggregation{}
		}
		out[parent][relType] = a
	}
	return out, rows.Err()
}

// EventsByPos loads events by position.
func (q Q) EventsByPos(ctx context.Context, positions []int64) ([]Event, error) {
	if len(positions) == 0 {
		return nil, nil
	}
	return q.queryEvents(ctx, `SELECT `+eventCols+` FROM events e WHERE e.pos IN (SELECT value FROM json_each(?))`, jsonInts(positions))
}
