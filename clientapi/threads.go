package clientapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/httpapi"
)

// Thread subscriptions (MSC4306, MSC4308), when push.thread_subscriptions
// is on.

// GET /_matrix/client/unstable/io.element.msc4308/thread_subscriptions:
// pages backwards through a user's subscription changes, newest first.
func (a *API) threadSubscriptions(r *http.Request, dev *httpapi.Device) httpapi.Response {
	q := r.URL.Query()
	if q.Get("dir") != "b" {
		return httpapi.Fail(httpapi.InvalidParam("dir must be b"))
	}
	parse := func(name string, def int64) (int64, error) {
		if s := q.Get(name); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return 0, httpapi.InvalidParam("%s is not a valid token", name)
			}
			return n, nil
		}
		return def, nil
	}
	from, err := parse("from", 1<<62)
	if err != nil {
		return httpapi.Fail(err)
	}
	to, err := parse("to", 0)
	if err != nil {
		return httpapi.Fail(err)
	}
	limit, err := parse("limit", 100)
	if err != nil || limit == 0 {
		return httpapi.Fail(httpapi.InvalidParam("limit must be a positive integer"))
	}
	out, err := a.Threads.List(r.Context(), dev.UserID, from, to, int(min(limit, 1000)))
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(out)
}

// GET .../rooms/{roomId}/thread/{threadRootId}/subscription
func (a *API) threadSubscription(r *http.Request, dev *httpapi.Device) httpapi.Response {
	automatic, err := a.Threads.Subscription(r.Context(), dev.UserID, mux.Vars(r)["roomId"], mux.Vars(r)["threadRootId"])
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]bool{"automatic": automatic})
}

// PUT .../thread/{threadRootId}/subscription: {} subscribes by hand;
// {"automatic": cause} because the user took part with the event cause.
func (a *API) subscribeThread(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		Automatic *json.RawMessage `json:"automatic"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	cause := ""
	if req.Automatic != nil {
		c := gjson.ParseBytes(*req.Automatic)
		if c.Type != gjson.String {
			return httpapi.Fail(httpapi.BadJSON("automatic must be an event ID"))
		}
		cause = c.Str
	}
	return httpapi.EmptyOr(a.Threads.Subscribe(r.Context(), dev.UserID, mux.Vars(r)["roomId"], mux.Vars(r)["threadRootId"], cause))
}

// DELETE .../thread/{threadRootId}/subscription
func (a *API) unsubscribeThread(r *http.Request, dev *httpapi.Device) httpapi.Response {
	return httpapi.EmptyOr(a.Threads.Unsubscribe(r.Context(), dev.UserID, mux.Vars(r)["roomId"], mux.Vars(r)["threadRootId"]))
}
