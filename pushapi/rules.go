package pushapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/notifier"
	"github.com/redoubt-systems/redoubt/push"
	"github.com/redoubt-systems/redoubt/storage"
)

// API serves /pushrules. Rules live in the user's m.push_rules account
// data, so clients also receive them through /sync.
type API struct {
	DB       storage.View[push.RuleStore]
	Rules    *push.Rules
	Notifier *notifier.Notifier
}

// Register adds the push rule routes.
func (a *API) Register(r *mux.Router, h *httpapi.API) {
	const p = "/_matrix/client/v3/pushrules"
	authed := httpapi.Routes{R: r, API: h}.Authed
	authed(p+"/", a.getAll, "GET")
	authed(p+"/{scope}", a.getScope, "GET")
	authed(p+"/{scope}/", a.getScope, "GET")
	authed(p+"/{scope}/{kind}/{ruleId}", a.getRule, "GET")
	authed(p+"/{scope}/{kind}/{ruleId}", a.putRule, "PUT")
	authed(p+"/{scope}/{kind}/{ruleId}", a.deleteRule, "DELETE")
	authed(p+"/{scope}/{kind}/{ruleId}/{attr:enabled|actions}", a.getAttr, "GET")
	authed(p+"/{scope}/{kind}/{ruleId}/{attr:enabled|actions}", a.putAttr, "PUT")
}

func (a *API) load(r *http.Request, userID string) (push.Ruleset, error) {
	stored, err := a.DB.R().AccountData(r.Context(), userID, "", "m.push_rules")
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return push.Ruleset{}, err
	}
	return push.Parse(userID, stored, a.Rules.Threads), nil
}

func (a *API) save(r *http.Request, userID string, rs push.Ruleset) error {
	err := a.DB.Write(r.Context(), func(q push.RuleStore) error { return a.Rules.Save(r.Context(), q, userID, rs) })
	if err == nil {
		a.Notifier.Wake(userID)
	}
	return err
}

// GET /_matrix/client/v3/pushrules/
func (a *API) getAll(r *http.Request, dev *httpapi.Device) httpapi.Response {
	rs, err := a.load(r, dev.UserID)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]push.Ruleset{"global": rs})
}

func scope(r *http.Request) error {
	if mux.Vars(r)["scope"] != "global" {
		return httpapi.InvalidParam("the only push rule scope is global")
	}
	return nil
}

// GET /_matrix/client/v3/pushrules/global/
func (a *API) getScope(r *http.Request, dev *httpapi.Device) httpapi.Response {
	if err := scope(r); err != nil {
		return httpapi.Fail(err)
	}
	rs, err := a.load(r, dev.UserID)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(rs)
}

// find returns the rule set, the addressed kind's rules and the rule's index
// (-1 when absent).
func (a *API) find(r *http.Request, dev *httpapi.Device) (*push.Ruleset, *[]push.Rule, int, error) {
	if err := scope(r); err != nil {
		return nil, nil, 0, err
	}
	loaded, err := a.load(r, dev.UserID)
	if err != nil {
		return nil, nil, 0, err
	}
	rs := &loaded
	rules := rs.Kind(mux.Vars(r)["kind"])
	if rules == nil {
		return rs, nil, 0, httpapi.InvalidParam("unknown push rule kind")
	}
	id := mux.Vars(r)["ruleId"]
	return rs, rules, slices.IndexFunc(*rules, func(x push.Rule) bool { return x.RuleID == id }), nil
}

// GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}
func (a *API) getRule(r *http.Request, dev *httpapi.Device) httpapi.Response {
	_, rules, i, err := a.find(r, dev)
	if err != nil {
		return httpapi.Fail(err)
	}
	if i < 0 {
		return httpapi.Fail(httpapi.NotFound("unknown push rule"))
	}
	return httpapi.OK((*rules)[i])
}

// GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/{enabled|actions}
func (a *API) getAttr(r *http.Request, dev *httpapi.Device) httpapi.Response {
	_, rules, i, err := a.find(r, dev)
	if err != nil {
		return httpapi.Fail(err)
	}
	if i < 0 {
		return httpapi.Fail(httpapi.NotFound("unknown push rule"))
	}
	if mux.Vars(r)["attr"] == "enabled" {
		return httpapi.OK(map[string]bool{"enabled": (*rules)[i].Enabled})
	}
	return httpapi.OK(map[string]any{"actions": (*rules)[i].Actions})
}

func validActions(actions []json.RawMessage) error {
	for _, a := range actions {
		var s string
		if json.Unmarshal(a, &s) == nil {
			switch s {
			case "notify", "dont_notify", "coalesce":
				continue
			}
			return httpapi.BadJSON("unknown action %q", s)
		}
		var tweak struct {
			SetTweak string `json:"set_tweak"`
		}
		if json.Unmarshal(a, &tweak) != nil || tweak.SetTweak == "" {
			return httpapi.BadJSON("invalid action %s", a)
		}
	}
	return nil
}

// PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}
func (a *API) putRule(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		Actions    []json.RawMessage `json:"actions"`
		Conditions []push.Condition  `json:"conditions"`
		Pattern    *string           `json:"pattern"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	rs, rules, i, err := a.find(r, dev)
	if err != nil {
		return httpapi.Fail(err)
	}
	id, kind := mux.Vars(r)["ruleId"], mux.Vars(r)["kind"]
	if strings.HasPrefix(id, ".") {
		return httpapi.Fail(httpapi.InvalidParam("rule IDs starting with '.' are reserved for server-default rules"))
	}
	if kind == "postcontent" {
		return httpapi.Fail(httpapi.InvalidParam("postcontent rules are the server's only"))
	}
	if req.Actions == nil {
		return httpapi.Fail(httpapi.MissingParam("actions is required"))
	}
	if err := validActions(req.Actions); err != nil {
		return httpapi.Fail(err)
	}
	if kind == "content" && req.Pattern == nil {
		return httpapi.Fail(httpapi.MissingParam("content rules need a pattern"))
	}
	rule := push.Rule{RuleID: id, Enabled: true, Actions: req.Actions}
	switch kind {
	case "override", "underride":
		rule.Conditions = req.Conditions
		if rule.Conditions == nil {
			rule.Conditions = []push.Condition{}
		}
	case "content":
		rule.Pattern = req.Pattern
	}
	if i >= 0 {
		rule.Enabled = (*rules)[i].Enabled
		*rules = slices.Delete(*rules, i, i+1)
	}
	// User rules outrank the server's defaults of their kind, except the
	// master rule, which stays first; before/after place a rule relative to
	// another user rule.
	pos := 0
	if len(*rules) > 0 && (*rules)[0].RuleID == ".m.rule.master" {
		pos = 1
	}
	for _, rel := range []string{"before", "after"} {
		if other := r.URL.Query().Get(rel); other != "" {
			j := slices.IndexFunc(*rules, func(x push.Rule) bool { return x.RuleID == other })
			if j < 0 || (*rules)[j].Default {
				return httpapi.Fail(httpapi.NotFound("unknown rule %s", other))
			}
			pos = j
			if rel == "after" {
				pos = j + 1
			}
		}
	}
	*rules = slices.Insert(*rules, pos, rule)
	return httpapi.EmptyOr(a.save(r, dev.UserID, *rs))
}

// DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}
func (a *API) deleteRule(r *http.Request, dev *httpapi.Device) httpapi.Response {
	rs, rules, i, err := a.find(r, dev)
	if err != nil {
		return httpapi.Fail(err)
	}
	if i < 0 {
		return httpapi.Fail(httpapi.NotFound("unknown push rule"))
	}
	if (*rules)[i].Default {
		return httpapi.Fail(httpapi.InvalidParam("server-default rules cannot be deleted, only disabled"))
	}
	*rules = slices.Delete(*rules, i, i+1)
	return httpapi.EmptyOr(a.save(r, dev.UserID, *rs))
}

// PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/{enabled|actions}
func (a *API) putAttr(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req struct {
		Enabled *bool             `json:"enabled"`
		Actions []json.RawMessage `json:"actions"`
	}
	if err := httpapi.Decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	rs, rules, i, err := a.find(r, dev)
	if err != nil {
		return httpapi.Fail(err)
	}
	if i < 0 {
		return httpapi.Fail(httpapi.NotFound("unknown push rule"))
	}
	if mux.Vars(r)["attr"] == "enabled" {
		if req.Enabled == nil {
			return httpapi.Fail(httpapi.MissingParam("enabled is required"))
		}
		(*rules)[i].Enabled = *req.Enabled
	} else {
		if req.Actions == nil {
			return httpapi.Fail(httpapi.MissingParam("actions is required"))
		}
		if err := validActions(req.Actions); err != nil {
			return httpapi.Fail(err)
		}
		(*rules)[i].Actions = req.Actions
	}
	return httpapi.EmptyOr(a.save(r, dev.UserID, *rs))
}
