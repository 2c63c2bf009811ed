package clientapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/calls"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/matrixerr"
)

// POST /_matrix/client/v3/user/{userId}/openid/request_token
func (a *API) openIDToken(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var body struct{}
	if err := httpapi.Decode(r, &body); err != nil {
		return httpapi.Fail(err)
	}
	if mux.Vars(r)["userId"] != dev.UserID {
		return httpapi.Fail(matrixerr.Forbidden("you may request OpenID tokens for yourself only"))
	}
	t, err := a.Calls.RequestOpenID(r.Context(), dev.UserID)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(t)
}

// GET /_matrix/client/unstable/org.matrix.msc4143/rtc/transports
func (a *API) rtcTransports(*http.Request, *httpapi.Device) httpapi.Response {
	return httpapi.OK(map[string]any{"rtc_transports": a.Calls.Transports()})
}

// POST /_redoubt/livekit/sfu/get
//
// The token service's first form (lk-jwt-service's /sfu/get): a room and
// a device.
func (a *API) sfuGet(r *http.Request) httpapi.Response {
	var req struct {
		Room        string            `json:"room"`
		OpenIDToken calls.OpenIDToken `json:"openid_token"`
		DeviceID    string            `json:"device_id"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.Room == "" || req.OpenIDToken.AccessToken == "" || req.OpenIDToken.MatrixServerName == "" || req.DeviceID == "" {
		return httpapi.Fail(matrixerr.BadJSON("room, device_id and openid_token (access_token, matrix_server_name) are required"))
	}
	ans, err := a.Calls.Token(r.Context(), calls.Grant{OpenIDToken: req.OpenIDToken.AccessToken, ServerName: req.OpenIDToken.MatrixServerName,
		RoomID: req.Room, DeviceID: req.DeviceID, Legacy: true})
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(ans)
}

// POST /_redoubt/livekit/get_token
//
// The token service's newer form (MSC4195): a room, a slot and a member.
func (a *API) getToken(r *http.Request) httpapi.Response {
	var req struct {
		RoomID      string            `json:"room_id"`
		SlotID      string            `json:"slot_id"`
		OpenIDToken calls.OpenIDToken `json:"openid_token"`
		Member      struct {
			ID              string `json:"id"`
			ClaimedUserID   string `json:"claimed_user_id"`
			ClaimedDeviceID string `json:"claimed_device_id"`
		} `json:"member"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	m := req.Member
	if req.RoomID == "" || req.SlotID == "" || req.OpenIDToken.AccessToken == "" || req.OpenIDToken.MatrixServerName == "" ||
		m.ID == "" || m.ClaimedUserID == "" || m.ClaimedDeviceID == "" {
		return httpapi.Fail(matrixerr.BadJSON("room_id, slot_id, openid_token and member (id, claimed_user_id, claimed_device_id) are required"))
	}
	ans, err := a.Calls.Token(r.Context(), calls.Grant{OpenIDToken: req.OpenIDToken.AccessToken, ServerName: req.OpenIDToken.MatrixServerName,
		RoomID: req.RoomID, SlotID: req.SlotID, DeviceID: m.ClaimedDeviceID, ClaimedUser: m.ClaimedUserID, MemberID: m.ID})
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(ans)
}

// GET /_redoubt/livekit/healthz
func (a *API) livekitHealth(*http.Request) httpapi.Response { return httpapi.OK(httpapi.Empty) }
