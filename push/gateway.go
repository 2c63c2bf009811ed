package push

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// Gateway manages pushers and sends notifications to their push gateways
// (the Push Gateway API's POST /_matrix/push/v1/notify), only to gateways
// the operator allowed, and by default with nothing but IDs and counts.
type Gateway struct {
	Cfg    *config.Config
	DB     *storage.DB
	Log    *slog.Logger
	Client *http.Client
	// Backoff is the first retry's delay; each retry doubles it.
	Backoff time.Duration

	pushers atomic.Int64 // how many exist: with none, events cost nothing
}

// maxAttempts bounds deliveries to a gateway that keeps failing.
const maxAttempts = 5

// Start counts the existing pushers.
func (g *Gateway) Start(ctx context.Context) error {
	n, err := g.DB.R().CountPushers(ctx)
	g.pushers.Store(int64(n))
	if g.Client == nil {
		g.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if g.Backoff == 0 {
		g.Backoff = time.Second
	}
	return err
}

// Register adds GET /pushers and POST /pushers/set.
func (g *Gateway) Register(r *mux.Router, h *httpapi.API) {
	authed := httpapi.Routes{R: r, API: h}.Authed
	authed("/_matrix/client/v3/pushers", g.list, "GET")
	authed("/_matrix/client/v3/pushers/set", g.set, "POST")
}

func (g *Gateway) list(r *http.Request, dev *httpapi.Device) httpapi.Response {
	pushers, err := g.DB.R().Pushers(r.Context(), dev.UserID)
	if err != nil {
		return httpapi.Fail(err)
	}
	out := []map[string]any{}
	for _, p := range pushers {
		b, _ := json.Marshal(p)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		m["data"] = json.RawMessage(p.Data)
		out = append(out, m)
	}
	return httpapi.OK(map[string]any{"pushers": out})
}

func (g *Gateway) allowed(url string) bool {
	for _, a := range g.Cfg.Push.GatewayAllowList {
		if url == a || (strings.HasSuffix(a, "/") && strings.HasPrefix(url, a)) {
			return true
		}
	}
	return false
}

func (g *Gateway) set(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		AppID             string          `json:"app_id"`
		Pushkey           string          `json:"pushkey"`
		Kind              *string         `json:"kind"`
		AppDisplayName    string          `json:"app_display_name"`
		DeviceDisplayName string          `json:"device_display_name"`
		ProfileTag        string          `json:"profile_tag"`
		Lang              string          `json:"lang"`
		Data              json.RawMessage `json:"data"`
		Append            bool            `json:"append"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	if req.AppID == "" || req.Pushkey == "" || len(req.AppID) > 64 || len(req.Pushkey) > 512 {
		return httpapi.Fail(httpapi.MissingParam("app_id (at most 64 characters) and pushkey (at most 512) are required"))
	}
	ctx := r.Context()
	if req.Kind == nil { // null kind: delete
		err := g.DB.Write(ctx, func(q storage.Q) error { return q.DeletePusher(ctx, dev.UserID, req.AppID, req.Pushkey) })
		if err == nil {
			err = g.recount(ctx)
		}
		return httpapi.EmptyOr(err)
	}
	if *req.Kind != "http" {
		return httpapi.Fail(httpapi.InvalidParam("only http pushers are supported"))
	}
	if req.AppDisplayName == "" || req.DeviceDisplayName == "" || req.Lang == "" || !gjson.ValidBytes(req.Data) || !gjson.ParseBytes(req.Data).IsObject() {
		return httpapi.Fail(httpapi.MissingParam("app_display_name, device_display_name, lang and data are required"))
	}
	url := gjson.GetBytes(req.Data, "url").Str
	if !strings.HasSuffix(url, "/_matrix/push/v1/notify") {
		return httpapi.Fail(httpapi.InvalidParam("data.url must be a push gateway's /_matrix/push/v1/notify URL"))
	}
	if !g.allowed(url) {
		return httpapi.Fail(httpapi.Forbidden("this server does not send notifications to %s", url))
	}
	p := storage.Pusher{UserID: dev.UserID, AppID: req.AppID, Pushkey: req.Pushkey, Kind: *req.Kind, AppDisplayName: req.AppDisplayName,
		DeviceDisplayName: req.DeviceDisplayName, ProfileTag: req.ProfileTag, Lang: req.Lang, Data: req.Data, CreatedTS: time.Now().UnixMilli(),
		DeviceID: dev.DeviceID}
	err := g.DB.Write(ctx, func(q storage.Q) error { return q.SetPusher(ctx, p, req.Append) })
	if err == nil {
		err = g.recount(ctx)
	}
	return httpapi.EmptyOr(err)
}

func (g *Gateway) recount(ctx context.Context) error {
	n, err := g.DB.R().CountPushers(ctx)
	g.pushers.Store(int64(n))
	return err
}

// OnEvents sends the notifications of newly committed events; it is called
// after commit and returns at once.
func (g *Gateway) OnEvents(events []storage.Event) {
	if g.pushers.Load() == 0 {
		return
	}
	go func() {
		ctx := context.Background()
		for _, e := range events {
			targets, err := g.DB.R().PushTargets(ctx, e.Pos)
			if err != nil {
				g.Log.Error("push targets", "err", err)
				return
			}
			for _, t := range targets {
				go g.deliver(ctx, e, t)
			}
		}
	}()
}

// deliver posts one notification, retrying with backoff; a gateway that
// rejects the pushkey has the pusher removed.
func (g *Gateway) deliver(ctx context.Context, e storage.Event, t storage.PushTarget) {
	url := gjson.GetBytes(t.Data, "url").Str
	if !g.allowed(url) { // the allow-list may have changed since
		return
	}
	body, err := g.notification(ctx, e, t)
	if err != nil {
		g.Log.Error("push notification", "err", err)
		return
	}
	delay := g.Backoff
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		rejected, err := g.post(ctx, url, body)
		if err == nil {
			for _, key := range rejected {
				if key == t.Pushkey {
					_ = g.DB.Write(ctx, func(q storage.Q) error { return q.DeletePusher(ctx, "", t.AppID, t.Pushkey) })
					_ = g.recount(ctx)
				}
			}
			return
		}
		if attempt == maxAttempts {
			g.Log.Warn("push gateway failed; notification dropped", "attempts", attempt)
			return
		}
		time.Sleep(delay)
		delay *= 2
	}
}

func (g *Gateway) post(ctx context.Context, url string, body []byte) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := g.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var out struct {
		Rejected []string `json:"rejected"`
	}
	if res.StatusCode != http.StatusOK {
		return nil, &httpapi.Error{Status: res.StatusCode, Message: "push gateway answered " + res.Status}
	}
	_ = json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&out)
	return out.Rejected, nil
}

// notification is the Push Gateway API body for one device. Without
// push.include_content it holds IDs and counts only: no content, no sender.
func (g *Gateway) notification(ctx context.Context, e storage.Event, t storage.PushTarget) ([]byte, error) {
	unread := 0
	counts, err := g.DB.R().UnreadCounts(ctx, t.UserID, e.RoomID)
	if err != nil {
		return nil, err
	}
	for _, c := range counts {
		unread += c.Notifications
	}
	data := map[string]any{}
	_ = json.Unmarshal(t.Data, &data)
	delete(data, "url")
	format, _ := data["format"].(string)
	if !g.Cfg.Push.IncludeContent {
		data["format"], format = "event_id_only", "event_id_only"
	}
	tweaks := map[string]any{}
	for _, a := range gjson.ParseBytes(t.Actions).Array() {
		if tw := a.Get("set_tweak").Str; tw != "" {
			v := a.Get("value").Value()
			if v == nil {
				v = true
			}
			tweaks[tw] = v
		}
	}
	prio := "low"
	if t.Highlight || e.Type == "m.room.message" || e.Type == "m.room.encrypted" {
		prio = "high"
	}
	n := map[string]any{"event_id": e.EventID, "room_id": e.RoomID, "counts": map[string]any{"unread": unread}, "prio": prio,
		"devices": []any{map[string]any{"app_id": t.AppID, "pushkey": t.Pushkey, "pushkey_ts": t.CreatedTS / 1000, "data": data, "tweaks": tweaks}}}
	if format != "event_id_only" {
		ev := gjson.ParseBytes(e.JSON)
		n["type"], n["sender"], n["content"] = e.Type, e.Sender, json.RawMessage(ev.Get("content").Raw)
	}
	return json.Marshal(map[string]any{"notification": n})
}
