package e2ekeys

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gorilla/mux"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}
//
// Messages are stored for each target device until it acknowledges them
// through /sync; "*" addresses all of a user's devices. A repeated txnId from
// the same device changes nothing.
func (s *Service) sendToDevice(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		Messages map[string]map[string]json.RawMessage `json:"messages"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.Messages == nil {
		return httpapi.Fail(httpapi.MissingParam("messages is required"))
	}
	typ, txnID := mux.Vars(r)["eventType"], mux.Vars(r)["txnId"]
	if typ == "" || len(typ) > 255 {
		return httpapi.Fail(httpapi.InvalidParam("invalid event type"))
	}
	for _, devices := range req.Messages {
		for _, content := range devices {
			if !gjson.ParseBytes(content).IsObject() {
				return httpapi.Fail(httpapi.BadJSON("each message must be a JSON object"))
			}
		}
	}
	ctx := r.Context()
	targets := map[string]bool{}
	err := s.DB.Write(ctx, func(q Store) error {
		if err := q.AddToDeviceTxn(ctx, dev.UserID, dev.DeviceID, txnID); errors.Is(err, storage.ErrConflict) {
			targets = nil
			return nil
		} else if err != nil {
			return err
		}
		for userID, devices := range req.Messages {
			all, err := q.Devices(ctx, userID)
			if err != nil {
				return err
			}
			known := map[string]bool{}
			for _, d := range all {
				known[d.DeviceID] = true
			}
			for deviceID, content := range devices {
				ids := []string{deviceID}
				if deviceID == "*" {
					ids = ids[:0]
					for id := range known {
						ids = append(ids, id)
					}
				}
				for _, id := range ids {
					if !known[id] {
						continue // unknown devices are skipped, as for a remote server
					}
					err := q.AddToDevice(ctx, storage.ToDevice{UserID: userID, DeviceID: id, Sender: dev.UserID, Type: typ, Content: content})
					if err != nil {
						return err
					}
					targets[userID] = true
				}
			}
		}
		return nil
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	users := make([]string, 0, len(targets))
	for u := range targets {
		users = append(users, u)
	}
	s.Notifier.Wake(users...)
	return httpapi.OK(httpapi.Empty)
}
