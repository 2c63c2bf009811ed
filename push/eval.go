package push

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/tidwall/gjson"
)

// Context is what rules are evaluated against, for one user and one event.
type Context struct {
	Event       gjson.Result // the event JSON
	UserID      string
	DisplayName string
	MemberCount int
	// SenderLevel and NotificationLevels decide sender_notification_permission.
	SenderLevel        int64
	NotificationLevels map[string]int64
	// ThreadSubscribers are the users subscribed to the event's thread
	// (MSC4306), for the thread_subscription condition.
	ThreadSubscribers map[string]bool

	// fields memoises lookups of the event by key: the same Context is
	// evaluated for every member of a room, against mostly the same rules.
	fields map[string]gjson.Result
}

// field returns the event's value at a dotted push-rule key.
func (c *Context) field(key string) gjson.Result {
	if v, ok := c.fields[key]; ok {
		return v
	}
	if c.fields == nil {
		c.fields = map[string]gjson.Result{}
	}
	v := lookup(c.Event, key)
	c.fields[key] = v
	return v
}

// Result is what the first matching rule decided.
type Result struct {
	Notify    bool
	Highlight bool
	Actions   []json.RawMessage
}

// Evaluate runs a rule set against an event. No matching rule, or a
// matching rule without "notify", means no notification.
func Evaluate(rs *Ruleset, c *Context) Result {
	roomID, sender := c.field("room_id").Str, c.field("sender").Str
	for _, kind := range Kinds {
		for _, r := range *rs.Kind(kind) {
			if !r.Enabled {
				continue
			}
			var match bool
			switch kind {
			case "content":
				match = r.Pattern != nil && globMatch(*r.Pattern, c.field("content.body").Str, true)
			case "room":
				match = r.RuleID == roomID
			case "sender":
				match = r.RuleID == sender
			default:
				match = c.allMatch(r.Conditions)
			}
			if match {
				return result(r.Actions)
			}
		}
	}
	return Result{}
}

func result(actions []json.RawMessage) Result {
	res := Result{Actions: actions}
	for _, a := range actions {
		var s string
		if json.Unmarshal(a, &s) == nil {
			res.Notify = res.Notify || s == "notify"
			continue
		}
		t := gjson.ParseBytes(a)
		if t.Get("set_tweak").Str == "highlight" {
			v := t.Get("value")
			res.Highlight = !v.Exists() || v.Bool()
		}
	}
	res.Highlight = res.Highlight && res.Notify
	return res
}

func (c *Context) allMatch(conds []Condition) bool {
	for _, cond := range conds {
		if !c.match(cond) {
			return false
		}
	}
	return true
}

func (c *Context) match(cond Condition) bool {
	switch cond.Kind {
	case "event_match":
		v := c.field(cond.Key)
		if cond.Pattern == nil || v.Type != gjson.String {
			return false
		}
		return globMatch(*cond.Pattern, v.Str, cond.Key == "content.body")
	case "event_property_is":
		v := c.field(cond.Key)
		return v.Exists() && jsonEqual(v, gjson.ParseBytes(cond.Value))
	case "event_property_contains":
		v := c.field(cond.Key)
		want := gjson.ParseBytes(cond.Value)
		for _, item := range v.Array() {
			if v.IsArray() && jsonEqual(item, want) {
				return true
			}
		}
		return false
	case "contains_display_name":
		return c.DisplayName != "" && globMatch(c.DisplayName, c.field("content.body").Str, true)
	case "room_member_count":
		return compareCount(cond.Is, c.MemberCount)
	case "io.element.msc4306.thread_subscription":
		// Only events in a thread match, by whether the user follows it.
		if cond.Subscribed == nil || c.field(`content.m\.relates_to.rel_type`).Str != "m.thread" {
			return false
		}
		return c.ThreadSubscribers[c.UserID] == *cond.Subscribed
	case "sender_notification_permission":
		level, ok := c.NotificationLevels[cond.Key]
		if !ok {
			level = 50
		}
		return c.SenderLevel >= level
	}
	// Unknown conditions never match, as the spec requires.
	return false
}

// lookup follows a dotted key in which `\.` and `\\` are escapes.
func lookup(ev gjson.Result, key string) gjson.Result {
	cur := ev
	var part strings.Builder
	flush := func() bool {
		cur = cur.Get(gjsonEscape(part.String()))
		part.Reset()
		return cur.Exists()
	}
	for i := 0; i < len(key); i++ {
		switch {
		case key[i] == '\\' && i+1 < len(key) && (key[i+1] == '.' || key[i+1] == '\\'):
			part.WriteByte(key[i+1])
			i++
		case key[i] == '.':
			if !flush() {
				return gjson.Result{}
			}
		default:
			part.WriteByte(key[i])
		}
	}
	flush()
	return cur
}

var gjsonSpecial = strings.NewReplacer(`\`, `\\`, `.`, `\.`, `*`, `\*`, `?`, `\?`, `#`, `\#`, `|`, `\|`, `@`, `\@`, `!`, `\!`, `=`, `\=`, `<`, `\<`, `>`, `\>`, `%`, `\%`)

func gjsonEscape(s string) string { return gjsonSpecial.Replace(s) }

func jsonEqual(a, b gjson.Result) bool {
	if a.Type != b.Type {
		return false
	}
	switch a.Type {
	case gjson.String:
		return a.Str == b.Str
	case gjson.Number:
		return a.Raw == b.Raw || a.Num == b.Num
	case gjson.True, gjson.False, gjson.Null:
		return true
	}
	return false
}

// compareCount evaluates room_member_count's "is" (an optional ==, <, >,
// <= or >= and a number) against n. Parsed by hand: it runs for every
// member an event may notify.
func compareCount(is string, n int) bool {
	op := strings.TrimRight(is, "0123456789")
	digits := is[len(op):]
	want, err := strconv.Atoi(digits) // only digits: no sign
	if err != nil {
		return false
	}
	switch op {
	case "", "==":
		return n == want
	case "<":
		return n < want
	case ">":
		return n > want
	case "<=":
		return n <= want
	case ">=":
		return n >= want
	}
	return false
}

var globCache sync.Map // pattern+words → *regexp.Regexp

// globMatch matches a glob (* and ?) case-insensitively against the whole
// value or, with words, against any run of whole words in it.
func globMatch(pattern, value string, words bool) bool {
	key := pattern
	if words {
		key = "w:" + pattern
	}
	re, ok := globCache.Load(key)
	if !ok {
		var b strings.Builder
		for _, r := range pattern {
			switch r {
			case '*':
				b.WriteString(".*?")
			case '?':
				b.WriteString(".")
			default:
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		expr := "(?is)^" + b.String() + "$"
		if words {
			expr = `(?is)(^|\W)` + b.String() + `(\W|$)`
		}
		compiled, err := regexp.Compile(expr)
		if err != nil {
			return false
		}
		re, _ = globCache.LoadOrStore(key, compiled)
	}
	return re.(*regexp.Regexp).MatchString(value)
}

func marshalActions(actions []json.RawMessage) ([]byte, error) {
	if actions == nil {
		actions = []json.RawMessage{}
	}
	return json.Marshal(actions)
}
