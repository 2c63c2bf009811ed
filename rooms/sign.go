package rooms

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"
)

// A message is signed without gomatrixserverlib's JSON round trips. Its
// builder marshals the event, then unmarshals and marshals it again to hash
// it, to redact it, to sign it and to take its reference hash: about a
// fifth of a send's CPU. A message's redacted form is the event with empty
// content, which is also what its signature and its event ID cover, so it
// can be written straight into bytes, in canonical key order, once:
//
//	content hash  sha256 of the event without hashes and signatures
//	signature     ed25519 of the redacted event without signatures
//	event ID      sha256 of the same bytes
//
// TestSignMessageAsBuilderDoes holds the result byte for byte to the
// builder's for every room version. Whatever falls outside the common case
// (a state event, a redaction, a type whose content survives redaction, a
// name that needs escaping, event format V1) goes through the builder.

// signMessage builds, hashes and signs eb as the builder would, or returns
// nil when eb is not a message it can sign this way.
func signMessage(verImpl gomatrixserverlib.IRoomVersion, eb *gomatrixserverlib.EventBuilder, now time.Time, origin spec.ServerName, keyID gomatrixserverlib.KeyID, key ed25519.PrivateKey) (gomatrixserverlib.PDU, error) {
	prev, okPrev := eb.PrevEvents.([]string)
	auth, okAuth := eb.AuthEvents.([]string)
	if !okPrev || !okAuth || verImpl.EventFormat() != gomatrixserverlib.EventFormatV2 ||
		eb.StateKey != nil || eb.Redacts != "" || len(eb.Unsigned) > 0 || len(eb.Signature) > 0 ||
		!contentRedacted(eb.Type) || !plain(eb.Type, eb.SenderID, eb.RoomID, string(origin), string(keyID)) ||
		!plain(prev...) || !plain(auth...) {
		return nil, nil
	}
	content, err := gomatrixserverlib.CanonicalJSON(eb.Content)
	if err != nil || verImpl.CheckCanonicalJSON(content) != nil {
		return nil, nil // the builder says why
	}
	keepsOrigin := redactionKeepsOrigin(verImpl)
	ts := strconv.FormatUint(uint64(spec.AsTimestamp(now)), 10)

	// fields writes the event's keys in canonical order, with the given
	// content, hashes and signatures (nil for none) and origin if asked.
	fields := func(b, content, hashes, signatures []byte, withOrigin bool) []byte {
		b = append(b, `{"auth_events":`...)
		b = appendIDs(b, auth)
		b = append(b, `,"content":`...)
		b = append(b, content...)
		b = append(b, `,"depth":`...)
		b = strconv.AppendInt(b, eb.Depth, 10)
		if hashes != nil {
			b = append(b, `,"hashes":{"sha256":"`...)
			b = append(b, hashes...)
			b = append(b, `"}`...)
		}
		if withOrigin {
			b = append(b, `,"origin":"`...)
			b = append(b, origin...)
			b = append(b, '"')
		}
		b = append(b, `,"origin_server_ts":`...)
		b = append(b, ts...)
		b = append(b, `,"prev_events":`...)
		b = appendIDs(b, prev)
		b = append(b, `,"room_id":"`...)
		b = append(b, eb.RoomID...)
		b = append(b, `","sender":"`...)
		b = append(b, eb.SenderID...)
		b = append(b, '"')
		if signatures != nil {
			b = append(b, `,"signatures":{"`...)
			b = append(b, origin...)
			b = append(b, `":{"`...)
			b = append(b, keyID...)
			b = append(b, `":"`...)
			b = append(b, signatures...)
			b = append(b, `"}}`...)
		}
		b = append(b, `,"type":"`...)
		b = append(b, eb.Type...)
		return append(b, `"}`...)
	}

	buf := make([]byte, 0, 2*len(content)+1024)
	sum := sha256.Sum256(fields(buf, content, nil, nil, true))
	hashes := base64.RawStdEncoding.AppendEncode(nil, sum[:])
	redacted := fields(buf, []byte("{}"), hashes, nil, keepsOrigin)
	signature := base64.RawStdEncoding.AppendEncode(nil, ed25519.Sign(key, redacted))
	ref := sha256.Sum256(redacted)
	enc := base64.RawURLEncoding
	if verImpl.EventIDFormat() == gomatrixserverlib.EventIDFormatV2 {
		enc = base64.RawStdEncoding
	}
	eventID := "$" + enc.EncodeToString(ref[:])

	full := fields(make([]byte, 0, len(content)+512), content, hashes, signature, true)
	pdu, err := verImpl.NewEventFromTrustedJSONWithEventID(eventID, full, false)
	if err != nil {
		return nil, err
	}
	return pdu, gomatrixserverlib.CheckFields(pdu)
}

// contentRedacted reports whether redaction empties the content of events
// of type typ in every room version: the types whose content survives are
// all m.room.*, so the common message types are named.
func contentRedacted(typ string) bool {
	return !strings.HasPrefix(typ, "m.room.") || typ == "m.room.message" || typ == "m.room.encrypted"
}

// plain reports whether each s is written in JSON as it is, quoted.
func plain(ss ...string) bool {
	for _, s := range ss {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
				return false
			}
		}
	}
	return true
}

func appendIDs(b []byte, ids []string) []byte {
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, id...)
		b = append(b, '"')
	}
	return append(b, ']')
}

// keepsOrigin holds, per room version, whether its redaction algorithm
// keeps an event's origin (it does before room version 11).
var keepsOrigin sync.Map

func redactionKeepsOrigin(verImpl gomatrixserverlib.IRoomVersion) bool {
	if v, ok := keepsOrigin.Load(verImpl.Version()); ok {
		return v.(bool)
	}
	redacted, err := verImpl.RedactEventJSON([]byte(`{"content":{},"origin":"o","type":"t"}`))
	keeps := err == nil && gjson.GetBytes(redacted, "origin").Exists()
	keepsOrigin.Store(verImpl.Version(), keeps)
	return keeps
}
