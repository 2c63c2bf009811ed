package rooms

import (
	"context"
	"encoding/json"

	"github.com/redoubt-systems/redoubt/caller"
	"github.com/redoubt-systems/redoubt/storage"
	"github.com/redoubt-systems/redoubt/streams"
)

// RelationsRequest is a /relations request.
type RelationsRequest struct {
	RoomID, EventID, RelType, EventType string
	From, To                            string
	Limit                               int
	Backwards                           bool
	Recurse                             bool
}

// Page is a page of events with the token for the next one.
type Page struct {
	Chunk          []json.RawMessage `json:"chunk"`
	NextBatch      string            `json:"next_batch,omitempty"`
	PrevBatch      string            `json:"prev_batch,omitempty"`
	RecursionDepth int               `json:"recursion_depth,omitempty"`
}

// maxRecursion bounds how deep recurse=true follows relations of relations.
const maxRecursion = 3

// Relations lists the events relating to an event the user may see, those
// they may see, newest first by default.
func (s *Service) Relations(ctx context.Context, dev *caller.Device, req RelationsRequest) (*Page, error) {
	page := &Page{Chunk: []json.RawMessage{}}
	err := s.DB.Read(ctx, func(q storage.Q) error {
		_, v, err := s.visibleEvent(ctx, q, dev.UserID, req.RoomID, req.EventID)
		if err != nil {
			return err
		}
		from := int64(1 << 62)
		if !req.Backwards {
			from = 0
		}
		if req.From != "" {
			if from, err = streams.ParsePagination(req.From); err != nil {
				return err
			}
		}
		var to int64 = -1
		if req.To != "" {
			if to, err = streams.ParsePagination(req.To); err != nil {
				return err
			}
		}
		parents := []string{req.EventID}
		var found []storage.Event
		depth := 1
		if req.Recurse {
			depth = maxRecursion
		}
		for d := 0; d < depth && len(parents) > 0; d++ {
			var next []string
			for _, p := range parents {
				evs, err := q.Relations(ctx, req.RoomID, p, req.RelType, req.EventType, from, req.Backwards, req.Limit+1)
				if err != nil {
					return err
				}
				for _, e := range evs {
					next = append(next, e.EventID)
					found = append(found, e)
				}
			}
			if len(next) > 0 && d > 0 {
				page.RecursionDepth = d + 1
			}
			parents = next
		}
		if req.Recurse && page.RecursionDepth == 0 {
			page.RecursionDepth = 1
		}
		sortByPos(found, req.Backwards)
		var visible []storage.Event
		for _, e := range found {
			if to >= 0 && ((req.Backwards && e.Pos <= to) || (!req.Backwards && e.Pos > to)) {
				break
			}
			if v.canSee(e) {
				visible = append(visible, e)
			}
		}
		if len(visible) > req.Limit {
			visible = visible[:req.Limit]
			last := visible[len(visible)-1].Pos
			if req.Backwards {
				last-- // backwards from t<pos> includes pos
			}
			page.NextBatch = streams.Pagination(last)
		}
		formatted, err := s.formatFor(ctx, q, visible, dev, v, req.RoomID)
		if err != nil {
			return err
		}
		if formatted != nil {
			page.Chunk = formatted
		}
		return nil
	})
	return page, err
}

func sortByPos(evs []storage.Event, desc bool) {
	for i := 1; i < len(evs); i++ {
		for j := i; j > 0 && (evs[j].Pos < evs[j-1].Pos) != desc && evs[j].Pos != evs[j-1].Pos; j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
}

// Threads lists a room's thread roots the user may see, most recently
// active first, each with its bundled thread summary; participated keeps
// those the user started or replied in.
func (s *Service) Threads(ctx context.Context, dev *caller.Device, roomID string, participated bool, from string, limit int) (*Page, error) {
	page := &Page{Chunk: []json.RawMessage{}}
	err := s.DB.Read(ctx, func(q storage.Q) error {
		v, err := s.readableViewer(ctx, q, roomID, dev.UserID)
		if err != nil {
			return err
		}
		before := int64(1 << 62)
		if from != "" {
			if before, err = streams.ParsePagination(from); err != nil {
				return err
			}
		}
		participant := ""
		if participated {
			participant = dev.UserID
		}
		threads, err := q.Threads(ctx, roomID, participant, before, limit+1)
		if err != nil {
			return err
		}
		more := len(threads) > limit
		if more {
			threads = threads[:limit]
			page.NextBatch = streams.Pagination(threads[len(threads)-1].LatestPos)
		}
		ids := make([]string, 0, len(threads))
		for _, t := range threads {
			ids = append(ids, t.RootID)
		}
		roots, err := q.EventsByID(ctx, ids)
		if err != nil {
			return err
		}
		byID := map[string]storage.Event{}
		for _, e := range roots {
			byID[e.EventID] = e
		}
		var visible []storage.Event
		for _, id := range ids {
			if e, ok := byID[id]; ok && e.RoomID == roomID && v.canSee(e) {
				visible = append(visible, e)
			}
		}
		formatted, err := s.formatFor(ctx, q, visible, dev, v, roomID)
		if err != nil {
			return err
		}
		if formatted != nil {
			page.Chunk = formatted
		}
		return nil
	})
	return page, err
}
