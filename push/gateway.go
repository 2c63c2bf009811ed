package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/caller"
	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
)

// Store is the part of storage.Q push (rules and delivery) uses: what it reads
// and writes.
type Store interface {
	AccountData(ctx context.Context, userID, roomID, typ string) ([]byte, error)
	AddPushActions(ctx context.Context, eventPos int64, roomID, threadID string, actions []storage.PushAction) error
	AddPushRetry(ctx context.Context, r storage.PushRetry) error
	CountPushers(ctx context.Context) (int, error)
	DeletePushRetry(ctx context.Context, id int64) error
	DeletePusher(ctx context.Context, userID, appID, pushkey string) error
	DuePushRetries(ctx context.Context, now int64, limit int) ([]storage.PushRetry, int64, error)
	EventsByPos(ctx context.Context, positions []int64) ([]storage.Event, error)
	JoinedMembers(ctx context.Context, roomID string) ([]string, error)
	JoinedMembersWithNames(ctx context.Context, roomID string) ([]storage.Member, error)
	PushTargetOf(ctx context.Context, eventPos int64, userID, appID, pushkey string) (storage.PushTarget, error)
	PushTargets(ctx context.Context, eventPos int64) ([]storage.PushTarget, error)
	Pushers(ctx context.Context, userID string) ([]storage.Pusher, error)
	SetAccountData(ctx context.Context, userID, roomID, typ string, content []byte) (int64, error)
	SetPusher(ctx context.Context, p storage.Pusher, appendOthers bool) error
	ThreadSubscribers(ctx context.Context, roomID, rootID string) (map[string]bool, error)
	UnreadCounts(ctx context.Context, userID, roomID string) (map[string]storage.Unread, error)
	UpdatePushRetry(ctx context.Context, id int64, attempts int, nextTS int64) error
}

var _ Store = storage.Q{}

// Gateway manages pushers and sends notifications to their push gateways
// (the Push Gateway API's POST /_matrix/push/v1/notify), only to gateways
// the operator allowed, and by default with nothing but IDs and counts.
//
// Between Start and Close it sends: each notification once at once, and a
// notification a gateway did not take again later, with backoff, from a
// queue in the database (push_retries), so a restart drops none. Before
// Start (command line tools) it sends nothing.
type Gateway struct {
	Cfg    *config.Config
	DB     storage.View[Store]
	Log    *slog.Logger
	Client *http.Client
	Now    func() time.Time
	// Backoff is the first retry's delay; each retry doubles it.
	Backoff time.Duration

	pushers atomic.Int64 // how many exist: with none, events cost nothing

	ctx     context.Context // ends at Close
	stop    context.CancelFunc
	running sync.WaitGroup // first attempts and the retry loop
	retry   chan struct{}  // a retry was queued: the loop looks again
}

// maxAttempts bounds deliveries to a gateway that keeps failing.
const maxAttempts = 5

// Load counts the existing pushers (the API needs it, started or not).
func (g *Gateway) Load(ctx context.Context) error {
	if g.Client == nil {
		g.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if g.Backoff == 0 {
		g.Backoff = time.Second
	}
	if g.Now == nil {
		g.Now = time.Now
	}
	return g.recount(ctx)
}

// Start begins sending, and the retries queued before.
func (g *Gateway) Start(ctx context.Context) {
	g.ctx, g.stop = context.WithCancel(ctx)
	g.retry = make(chan struct{}, 1)
	g.running.Go(g.retries)
}

// Close stops sending and waits for what is in flight to give up; queued
// retries stay for the next Start.
func (g *Gateway) Close() {
	if g.stop != nil {
		g.stop()
		g.running.Wait()
		g.Client.CloseIdleConnections()
	}
}

// Pushers lists a user's pushers as the client API shows them.
func (g *Gateway) Pushers(ctx context.Context, userID string) ([]map[string]any, error) {
	pushers, err := g.DB.R().Pushers(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, p := range pushers {
		b, _ := json.Marshal(p)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		m["data"] = json.RawMessage(p.Data)
		out = append(out, m)
	}
	return out, nil
}

func (g *Gateway) allowed(url string) bool {
	for _, a := range g.Cfg.Push.GatewayAllowList {
		if url == a || (strings.HasSuffix(a, "/") && strings.HasPrefix(url, a)) {
			return true
		}
	}
	return false
}

// PusherRequest is a pusher as a client sets it.
type PusherRequest struct {
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

// SetPusher creates or replaces a pusher of the caller's device, or with
// no kind deletes it. Only http pushers to allowed gateways are taken.
func (g *Gateway) SetPusher(ctx context.Context, dev *caller.Device, req PusherRequest) error {
	if req.AppID == "" || req.Pushkey == "" || len(req.AppID) > 64 || len(req.Pushkey) > 512 {
		return matrixerr.MissingParam("app_id (at most 64 characters) and pushkey (at most 512) are required")
	}
	if req.Kind == nil { // null kind: delete
		err := g.DB.Write(ctx, func(q Store) error { return q.DeletePusher(ctx, dev.UserID, req.AppID, req.Pushkey) })
		if err == nil {
			err = g.recount(ctx)
		}
		return err
	}
	if *req.Kind != "http" {
		return matrixerr.InvalidParam("only http pushers are supported")
	}
	if req.AppDisplayName == "" || req.DeviceDisplayName == "" || req.Lang == "" || !gjson.ValidBytes(req.Data) || !gjson.ParseBytes(req.Data).IsObject() {
		return matrixerr.MissingParam("app_display_name, device_display_name, lang and data are required")
	}
	url := gjson.GetBytes(req.Data, "url").Str
	if !strings.HasSuffix(url, "/_matrix/push/v1/notify") {
		return matrixerr.InvalidParam("data.url must be a push gateway's /_matrix/push/v1/notify URL")
	}
	if !g.allowed(url) {
		return matrixerr.Forbidden("this server does not send notifications to %s", url)
	}
	p := storage.Pusher{UserID: dev.UserID, AppID: req.AppID, Pushkey: req.Pushkey, Kind: *req.Kind, AppDisplayName: req.AppDisplayName,
		DeviceDisplayName: req.DeviceDisplayName, ProfileTag: req.ProfileTag, Lang: req.Lang, Data: req.Data, CreatedTS: time.Now().UnixMilli(),
		DeviceID: dev.DeviceID}
	err := g.DB.Write(ctx, func(q Store) error { return q.SetPusher(ctx, p, req.Append) })
	if err == nil {
		err = g.recount(ctx)
	}
	return err
}

func (g *Gateway) recount(ctx context.Context) error {
	n, err := g.DB.R().CountPushers(ctx)
	g.pushers.Store(int64(n))
	return err
}

// AfterCommit sends the notifications of newly committed events (rooms'
// after-commit path); it returns at once.
func (g *Gateway) AfterCommit(c rooms.Committed) {
	events := c.Events
	if g.ctx == nil || g.ctx.Err() != nil || g.pushers.Load() == 0 {
		return
	}
	g.running.Go(func() {
		for _, e := range events {
			targets, err := g.DB.R().PushTargets(g.ctx, e.Pos)
			if err != nil {
				g.Log.Error("push targets", "err", err)
				return
			}
			for _, t := range targets {
				g.running.Go(func() { g.deliver(e, t, storage.PushRetry{EventPos: e.Pos}) })
			}
		}
	})
}

// deliver makes one attempt at a notification: r is its queue entry (ID
// 0 for a first attempt). A failure queues the next attempt, up to
// maxAttempts; a gateway that rejects the pushkey has the pusher removed.
func (g *Gateway) deliver(e storage.Event, t storage.PushTarget, r storage.PushRetry) {
	ctx := g.ctx
	url := gjson.GetBytes(t.Data, "url").Str
	err := errNotAllowed // the allow-list may have changed since
	var rejected []string
	if g.allowed(url) {
		var body []byte
		if body, err = g.notification(ctx, e, t); err == nil {
			rejected, err = g.post(ctx, url, body)
		}
	}
	if ctx.Err() != nil {
		// Stopping. A queued retry stays queued; a first attempt cut off
		// is queued, due at once, for the next start. (Close waits for
		// this before the database closes.)
		if err != nil && r.ID == 0 {
			bg := context.WithoutCancel(ctx)
			r.UserID, r.AppID, r.Pushkey, r.NextTS = t.UserID, t.AppID, t.Pushkey, g.Now().UnixMilli()
			if werr := g.DB.Write(bg, func(q Store) error { return q.AddPushRetry(bg, r) }); werr != nil {
				g.Log.Error("push retry queue", "err", werr)
			}
		}
		return
	}
	r.Attempts++
	write := func(q Store) error {
		switch {
		case err == nil || errors.Is(err, errNotAllowed) || r.Attempts >= maxAttempts:
			if r.ID != 0 {
				return q.DeletePushRetry(ctx, r.ID)
			}
			return nil
		case r.ID != 0:
			return q.UpdatePushRetry(ctx, r.ID, r.Attempts, r.NextTS)
		}
		r.UserID, r.AppID, r.Pushkey = t.UserID, t.AppID, t.Pushkey
		return q.AddPushRetry(ctx, r)
	}
	r.NextTS = g.Now().Add(g.Backoff << (r.Attempts - 1)).UnixMilli()
	queued := err != nil && !errors.Is(err, errNotAllowed) && r.Attempts < maxAttempts
	if r.ID != 0 || queued { // a first attempt that went through writes nothing
		if werr := g.DB.Write(ctx, write); werr != nil {
			g.Log.Error("push retry queue", "err", werr)
		}
	}
	switch {
	case err == nil:
		if slices.Contains(rejected, t.Pushkey) {
			_ = g.DB.Write(ctx, func(q Store) error { return q.DeletePusher(ctx, "", t.AppID, t.Pushkey) })
			_ = g.recount(ctx)
		}
	case errors.Is(err, errNotAllowed):
	case r.Attempts >= maxAttempts:
		g.Log.Warn("push gateway failed; notification dropped", "attempts", r.Attempts)
	default:
		select {
		case g.retry <- struct{}{}:
		default:
		}
	}
}

var errNotAllowed = errors.New("push: gateway not allowed")

// retries sends the queued notifications as they fall due, one at a time,
// sleeping until the next is due or another is queued.
func (g *Gateway) retries() {
	for {
		due, next, err := g.DB.R().DuePushRetries(g.ctx, g.Now().UnixMilli(), 100)
		if err != nil && g.ctx.Err() == nil {
			g.Log.Error("push retries", "err", err)
		}
		for _, r := range due {
			g.retryOne(r)
		}
		wait := time.Minute // a safety net: rows queued by another process
		if next != 0 {
			wait = min(wait, time.Duration(next-g.Now().UnixMilli())*time.Millisecond)
		}
		if len(due) == 100 {
			wait = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-g.ctx.Done():
			t.Stop()
			return
		case <-g.retry:
		case <-t.C:
		}
		t.Stop()
	}
}

// retryOne sends one queued notification again, built anew; one whose
// event or pusher is gone, or which the user has read, is dropped.
func (g *Gateway) retryOne(r storage.PushRetry) {
	q := g.DB.R()
	evs, err := q.EventsByPos(g.ctx, []int64{r.EventPos})
	var t storage.PushTarget
	if err == nil && len(evs) == 1 {
		t, err = q.PushTargetOf(g.ctx, r.EventPos, r.UserID, r.AppID, r.Pushkey)
	}
	if err != nil || len(evs) != 1 {
		if g.ctx.Err() == nil {
			_ = g.DB.Write(g.ctx, func(q Store) error { return q.DeletePushRetry(g.ctx, r.ID) })
		}
		return
	}
	g.deliver(evs[0], t, r)
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
		return nil, fmt.Errorf("push gateway answered %s", res.Status)
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
