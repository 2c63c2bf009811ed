package rooms

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"unicode/utf8"
)

// appendJSON appends the event as JSON, with the fields json.Marshal gives
// it, but without decoding and validating the content again: it is a
// piece of the event as stored, canonical JSON from the start. Formatting
// is most of an initial sync's work, so this is its hot path.
func (ce clientEvent) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"content":`...)
	b = append(b, ce.Content...)
	b = appendField(b, "event_id", ce.EventID)
	b = append(b, `,"origin_server_ts":`...)
	b = strconv.AppendInt(b, ce.OriginServerTS, 10)
	b = appendField(b, "room_id", ce.RoomID)
	b = appendField(b, "sender", ce.Sender)
	if ce.StateKey != nil {
		b = appendField(b, "state_key", *ce.StateKey)
	}
	b = appendField(b, "type", ce.Type)
	if ce.Redacts != "" {
		b = appendField(b, "redacts", ce.Redacts)
	}
	if len(ce.Unsigned) > 0 {
		b = append(b, `,"unsigned":{`...)
		for i, k := range slices.Sorted(maps.Keys(ce.Unsigned)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			switch v := ce.Unsigned[k].(type) {
			case int64:
				b = strconv.AppendInt(b, v, 10)
			case string:
				b = appendString(b, v)
			case json.RawMessage: // a piece of a stored event, as the content
				b = append(b, v...)
			default:
				m, err := json.Marshal(v)
				if err != nil {
					return nil, err
				}
				b = append(b, m...)
			}
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

func appendField(b []byte, name, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

// appendString appends s as a JSON string: as it is when nothing in it
// needs escaping (identifiers, the common case), else as json.Marshal
// writes it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			m, _ := json.Marshal(s)
			return append(b, m...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
