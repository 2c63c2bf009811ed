package e2ekeys

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// Dehydrated devices (MSC3814, the unstable endpoints Element uses): a
// client parks a device, with keys but no access token, so that messages
// encrypted while the user has no device logged in can be collected later.

const dehydratedPrefix = "/_matrix/client/unstable/org.matrix.msc3814.v1"

func (s *Service) registerDehydrated(r *mux.Router, h *httpapi.API) {
	authed := httpapi.Routes{R: r, API: h}.Authed
	authed(dehydratedPrefix+"/dehydrated_device", s.putDehydrated, "PUT")
	authed(dehydratedPrefix+"/dehydrated_device", s.getDehydrated, "GET")
	authed(dehydratedPrefix+"/dehydrated_device", s.deleteDehydrated, "DELETE")
	authed(dehydratedPrefix+"/dehydrated_device/{deviceId}/events", s.dehydratedEvents, "POST")
}

// PUT .../dehydrated_device: replaces the user's dehydrated device.
func (s *Service) putDehydrated(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		DeviceID    string          `json:"device_id"`
		DeviceData  json.RawMessage `json:"device_data"`
		DisplayName string          `json:"initial_device_display_name"`
		uploadRequest
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.DeviceID == "" || len(req.DeviceID) > 255 {
		return httpapi.Fail(httpapi.MissingParam("device_id is required"))
	}
	if !gjson.ParseBytes(req.DeviceData).IsObject() {
		return httpapi.Fail(httpapi.MissingParam("device_data must be an object"))
	}
	if len(req.DeviceKeys) == 0 {
		return httpapi.Fail(httpapi.MissingParam("device_keys is required"))
	}
	up, err := parseUpload(req.uploadRequest, dev.UserID, req.DeviceID)
	if err != nil {
		return httpapi.Fail(err)
	}
	ctx := r.Context()
	err = s.DB.Write(ctx, func(q Store) error {
		if old, err := q.GetDehydratedDevice(ctx, dev.UserID); err == nil {
			if err := q.DeleteDevices(ctx, dev.UserID, []string{old.DeviceID}); err != nil {
				return err
			}
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if _, err := q.Device(ctx, dev.UserID, req.DeviceID); err == nil {
			return httpapi.InvalidParam("device %s already exists", req.DeviceID)
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		err := q.UpsertDevice(ctx, storage.Device{UserID: dev.UserID, DeviceID: req.DeviceID, DisplayName: req.DisplayName, CreatedTS: s.Now().UnixMilli()})
		if err != nil {
			return err
		}
		if _, err := up.store(ctx, q, dev.UserID, req.DeviceID); err != nil {
			return err
		}
		return q.SetDehydratedDevice(ctx, dev.UserID, storage.DehydratedDevice{DeviceID: req.DeviceID, Data: req.DeviceData})
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	s.WakeDeviceListChange(dev.UserID)
	return httpapi.OK(map[string]string{"device_id": req.DeviceID})
}

// GET .../dehydrated_device
func (s *Service) getDehydrated(r *http.Request, dev *httpapi.Device) httpapi.Response {
	d, err := s.DB.R().GetDehydratedDevice(r.Context(), dev.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return httpapi.Fail(httpapi.NotFound("no dehydrated device"))
	}
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"device_id": d.DeviceID, "device_data": json.RawMessage(d.Data)})
}

// DELETE .../dehydrated_device
func (s *Service) deleteDehydrated(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var id string
	err := s.DB.Write(r.Context(), func(q Store) error {
		d, err := q.GetDehydratedDevice(r.Context(), dev.UserID)
		if errors.Is(err, storage.ErrNotFound) {
			return httpapi.NotFound("no dehydrated device")
		}
		if err != nil {
			return err
		}
		id = d.DeviceID
		return q.DeleteDevices(r.Context(), dev.UserID, []string{d.DeviceID})
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	s.WakeDeviceListChange(dev.UserID)
	return httpapi.OK(map[string]string{"device_id": id})
}

// POST .../dehydrated_device/{deviceId}/events: the device's to-device
// messages after next_batch; those up to next_batch are acknowledged and
// deleted.
func (s *Service) dehydratedEvents(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		NextBatch string `json:"next_batch"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	var after int64
	if req.NextBatch != "" {
		var err error
		if after, err = strconv.ParseInt(req.NextBatch, 10, 64); err != nil || after < 0 {
			return httpapi.Fail(httpapi.InvalidParam("invalid next_batch"))
		}
	}
	deviceID := mux.Vars(r)["deviceId"]
	ctx := r.Context()
	var msgs []storage.ToDevice
	err := s.DB.Write(ctx, func(q Store) error {
		d, err := q.GetDehydratedDevice(ctx, dev.UserID)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && d.DeviceID != deviceID) {
			return httpapi.NotFound("%s is not your dehydrated device", deviceID)
		}
		if err != nil {
			return err
		}
		if err := q.DeleteToDeviceUpTo(ctx, dev.UserID, deviceID, after); err != nil {
			return err
		}
		msgs, err = q.ToDeviceFor(ctx, dev.UserID, deviceID, after, 1<<62, 100)
		return err
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	events := make([]json.RawMessage, 0, len(msgs))
	next := after
	for _, m := range msgs {
		ev, _ := json.Marshal(map[string]any{"type": m.Type, "sender": m.Sender, "content": json.RawMessage(m.Content)})
		events = append(events, ev)
		next = m.Pos
	}
	return httpapi.OK(map[string]any{"events": events, "next_batch": strconv.FormatInt(next, 10)})
}
