package clientapi

import (
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/auth"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

type deviceJSON struct {
	DeviceID    string `json:"device_id"`
	DisplayName string `json:"display_name,omitempty"`
	LastSeenIP  string `json:"last_seen_ip,omitempty"`
	LastSeenTS  int64  `json:"last_seen_ts,omitempty"`
}

func toDeviceJSON(d storage.Device) deviceJSON {
	return deviceJSON{DeviceID: d.DeviceID, DisplayName: d.DisplayName, LastSeenIP: d.LastSeenIP, LastSeenTS: d.LastSeenTS}
}

// GET /_matrix/client/v3/devices
func (a *API) listDevices(r *http.Request, dev *httpapi.Device) httpapi.Response {
	devices, err := a.DB.R().Devices(r.Context(), dev.UserID)
	if err != nil {
		return httpapi.Fail(err)
	}
	out := make([]deviceJSON, 0, len(devices))
	for _, d := range devices {
		out = append(out, toDeviceJSON(d))
	}
	return httpapi.OK(map[string]any{"devices": out})
}

// ownDevice loads one of the caller's devices; other users' devices are
// as unknown as missing ones.
func (a *API) ownDevice(r *http.Request, dev *httpapi.Device) (storage.Device, error) {
	d, err := a.DB.R().Device(r.Context(), dev.UserID, mux.Vars(r)["deviceId"])
	if errors.Is(err, storage.ErrNotFound) {
		return d, httpapi.NotFound("unknown device")
	}
	return d, err
}

// GET /_matrix/client/v3/devices/{deviceId}
func (a *API) getDevice(r *http.Request, dev *httpapi.Device) httpapi.Response {
	d, err := a.ownDevice(r, dev)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(toDeviceJSON(d))
}

// PUT /_matrix/client/v3/devices/{deviceId}
func (a *API) updateDevice(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		DisplayName *string `json:"display_name"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	d, err := a.ownDevice(r, dev)
	if err != nil {
		return httpapi.Fail(err)
	}
	if req.DisplayName == nil {
		return httpapi.OK(httpapi.Empty)
	}
	if len(*req.DisplayName) > 255 {
		return httpapi.Fail(httpapi.InvalidParam("display_name is limited to 255 bytes"))
	}
	err = a.DB.Write(r.Context(), func(q Store) error {
		return q.SetDeviceName(r.Context(), dev.UserID, d.DeviceID, *req.DisplayName)
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(httpapi.Empty)
}

// DELETE /_matrix/client/v3/devices/{deviceId}
func (a *API) deleteDevice(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		Auth *auth.AuthDict `json:"auth"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	d, err := a.ownDevice(r, dev)
	if err != nil {
		return httpapi.Fail(err)
	}
	if err := a.Auth.RequireUser(r.Context(), dev.UserID, "sign out a session", req.Auth); err != nil {
		return httpapi.Fail(err)
	}
	if err := a.Auth.DeleteDevices(r.Context(), dev.UserID, []string{d.DeviceID}); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(httpapi.Empty)
}

// POST /_matrix/client/v3/delete_devices
func (a *API) deleteDevices(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		Devices []string       `json:"devices"`
		Auth    *auth.AuthDict `json:"auth"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.Devices == nil {
		return httpapi.Fail(httpapi.MissingParam("devices is required"))
	}
	if err := a.Auth.RequireUser(r.Context(), dev.UserID, "sign out sessions", req.Auth); err != nil {
		return httpapi.Fail(err)
	}
	if err := a.Auth.DeleteDevices(r.Context(), dev.UserID, req.Devices); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(httpapi.Empty)
}
