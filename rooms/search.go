package rooms

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/caller"
	"github.com/redoubt-systems/redoubt/filter"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/storage"
	"github.com/redoubt-systems/redoubt/streams"
)

// SearchRequest is the room_events category of a /search request.
type SearchRequest struct {
	Term         string
	Keys         []string
	Rooms        []string // limits the search to these rooms, if set
	Recent       bool
	Limit        int
	NextBatch    string
	BeforeLimit  int
	AfterLimit   int
	WithContext  bool
	WithProfiles bool
}

// SearchResults is the room_events category of a /search response.
type SearchResults struct {
	Results    []map[string]any `json:"results"`
	Count      int              `json:"count"`
	Highlights []string         `json:"highlights"`
	NextBatch  string           `json:"next_batch,omitempty"`
}

// Search finds unencrypted messages, names and topics in the rooms the user
// is in, as they may see them. Encrypted rooms hold only ciphertext: the
// server cannot search them, by design.
func (s *Service) Search(ctx context.Context, dev *caller.Device, req SearchRequest) (*SearchResults, error) {
	res := &SearchResults{Results: []map[string]any{}, Highlights: []string{}}
	from := 0
	if req.NextBatch != "" {
		n, err := strconv.Atoi(req.NextBatch)
		if err != nil || n < 0 {
			return nil, matrixerr.InvalidParam("invalid next_batch")
		}
		from = n
	}
	for _, w := range strings.Fields(req.Term) {
		res.Highlights = append(res.Highlights, w)
	}
	err := s.DB.Read(ctx, func(q storage.Q) error {
		joined, err := q.RoomsWithMembership(ctx, dev.UserID, spec.Join)
		if err != nil {
			return err
		}
		roomIDs := joined
		if req.Rooms != nil {
			roomIDs = nil
			for _, r := range req.Rooms {
				if slices.Contains(joined, r) {
					roomIDs = append(roomIDs, r)
				}
			}
		}
		// Visibility is decided in the query, so that the count, the ranks
		// and the pages are over what the user may see, and nothing else.
		ignored, err := IgnoredUsers(ctx, q, dev.UserID)
		if err != nil {
			return err
		}
		viewers := map[string]*viewer{}
		var visible []storage.PosRange
		for _, r := range roomIDs {
			if viewers[r] != nil {
				continue // a room named twice would match twice
			}
			if viewers[r], err = s.newViewerIgnoring(ctx, q, r, dev.UserID, ignored); err != nil {
				return err
			}
			visible = append(visible, viewers[r].visibleRanges(r)...)
		}
		hits, total, err := q.Search(ctx, storage.SearchQuery{Term: req.Term, Keys: req.Keys, Visible: visible,
			Ignored: slices.Collect(maps.Keys(ignored)), Recent: req.Recent, From: from, Limit: req.Limit})
		if err != nil {
			return err
		}
		res.Count = total
		// As Synapse does, a full page says where to go on, even if it holds
		// the last results: the next page is empty and ends the paging.
		if len(hits) > 0 && len(hits) == req.Limit {
			res.NextBatch = strconv.Itoa(from + len(hits))
		}
		for _, h := range hits {
			v := viewers[h.Event.RoomID]
			formatted, err := s.formatFor(ctx, q, []storage.Event{h.Event}, dev, v, h.Event.RoomID)
			if err != nil {
				return err
			}
			result := map[string]any{"rank": -h.Rank, "result": formatted[0]}
			if req.WithContext {
				c, err := s.searchContext(ctx, q, v, dev, h.Event, req)
				if err != nil {
					return err
				}
				result["context"] = c
			}
			res.Results = append(res.Results, result)
		}
		return nil
	})
	return res, err
}

// searchContext is the events around a hit, as /search's event_context asks.
func (s *Service) searchContext(ctx context.Context, q storage.Q, v *viewer, dev *caller.Device, e storage.Event, req SearchRequest) (map[string]any, error) {
	before, start, _, err := s.page(ctx, q, v, e.RoomID, e.Pos-1, -1, true, req.BeforeLimit, &filter.RoomEventFilter{})
	if err != nil {
		return nil, err
	}
	after, end, _, err := s.page(ctx, q, v, e.RoomID, e.Pos, -1, false, req.AfterLimit, &filter.RoomEventFilter{})
	if err != nil {
		return nil, err
	}
	fb, err := s.formatFor(ctx, q, before, dev, v, e.RoomID)
	if err != nil {
		return nil, err
	}
	fa, err := s.formatFor(ctx, q, after, dev, v, e.RoomID)
	if err != nil {
		return nil, err
	}
	if fb == nil {
		fb = []json.RawMessage{}
	}
	if fa == nil {
		fa = []json.RawMessage{}
	}
	c := map[string]any{"events_before": fb, "events_after": fa, "start": streams.Pagination(start), "end": streams.Pagination(end)}
	if req.WithProfiles {
		profiles := map[string]any{}
		for _, ev := range append(append([]storage.Event{e}, before...), after...) {
			if _, ok := profiles[ev.Sender]; ok {
				continue
			}
			if m, err := q.CurrentStateEvent(ctx, e.RoomID, spec.MRoomMember, ev.Sender); err == nil {
				p := map[string]any{}
				for _, k := range []string{"displayname", "avatar_url"} {
					if val := jsonField(m.JSON, "content."+k); val != "" {
						p[k] = val
					}
				}
				profiles[ev.Sender] = p
			}
		}
		c["profile_info"] = profiles
	}
	return c, nil
}

func jsonField(b []byte, path string) string { return gjson.GetBytes(b, path).Str }
