package syncapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/streams"
)

// Simplified Sliding Sync (MSC4186), as Element X speaks it. It is built
// from the same streams as /sync (the builder of sync.go does the work for
// the rooms a response carries) and waits on the same notifier. What a
// connection has already sent lives in memory: after a restart, or with a
// pos the server does not know, the client gets M_UNKNOWN_POS and starts
// over.

const slidingPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

var errUnknownPos = &httpapi.Error{Kind: matrixerr.KindInvalid, Code: "M_UNKNOWN_POS", Message: "unknown position; start a new connection"}

type roomConfig struct {
	RequiredState [][]string `json:"required_state"`
	TimelineLimit int        `json:"timeline_limit"`
}

type listFilters struct {
	IsDM         *bool     `json:"is_dm"`
	IsEncrypted  *bool     `json:"is_encrypted"`
	IsInvite     *bool     `json:"is_invite"`
	Spaces       []string  `json:"spaces"`
	RoomTypes    []*string `json:"room_types"`
	NotRoomTypes []*string `json:"not_room_types"`
}

type slidingList struct {
	roomConfig
	Ranges  [][]int      `json:"ranges"`
	Filters *listFilters `json:"filters"`
}

type extScope struct {
	Enabled *bool    `json:"enabled"`
	Lists   []string `json:"lists"`
	Rooms   []string `json:"rooms"`
}

func (e *extScope) on() bool { return e != nil && e.Enabled != nil && *e.Enabled }

type slidingRequest struct {
	ConnID            string                 `json:"conn_id"`
	Lists             map[string]slidingList `json:"lists"`
	RoomSubscriptions map[string]roomConfig  `json:"room_subscriptions"`
	Extensions        extensionsRequest      `json:"extensions"`
}

// extensionsRequest is the extensions a sliding sync request asks for.
type extensionsRequest struct {
	ToDevice *struct {
		extScope
		Since string `json:"since"`
	} `json:"to_device"`
	E2EE        *extScope `json:"e2ee"`
	AccountData *extScope `json:"account_data"`
	Receipts    *extScope `json:"receipts"`
	Typing      *extScope `json:"typing"`
	// Thread subscriptions (MSC4308).
	ThreadSubscriptions *struct {
		extScope
		Limit *int `json:"limit"`
	} `json:"io.element.msc4308.thread_subscriptions"`
}

// slidingConn is one connection (user, device, conn_id): what the client
// has, as of each position it may still send.
type slidingConn struct {
	mu sync.Mutex
	// have maps each valid position's version to the rooms the client had
	// then, each with the config it was sent with. The version the client
	// last sent stays valid alongside those answered since: a response the
	// client never got (it aborted the request, or the network lost it) is
	// answered again from the same position, as Synapse does.
	have   map[int]map[string]string
	latest int
	used   time.Time
	// gen counts requests; superseded is closed when a newer one arrives.
	gen        int
	superseded chan struct{}
}

// Connections are kept in memory (a restart means M_UNKNOWN_POS and a fresh
// start) and bounded: idle ones expire, and a device has only so many.
const (
	connIdle      = 30 * time.Minute
	connsPerDev   = 16
	versionsKept  = 8
	sweepInterval = time.Minute
)

type slidingConns struct {
	mu        sync.Mutex
	byDevice  map[string]map[string]*slidingConn // user|device -> conn_id -> conn
	lastSweep time.Time
}

// get returns a device's connection; create starts it afresh.
func (c *slidingConns) get(device, connID string, create bool, now time.Time) *slidingConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byDevice == nil {
		c.byDevice = map[string]map[string]*slidingConn{}
	}
	if now.Sub(c.lastSweep) > sweepInterval {
		c.lastSweep = now
		for d, conns := range c.byDevice {
			for id, conn := range conns {
				if conn.lastUsed().Before(now.Add(-connIdle)) {
					delete(conns, id)
				}
			}
			if len(conns) == 0 {
				delete(c.byDevice, d)
			}
		}
	}
	conns := c.byDevice[device]
	if !create {
		return conns[connID]
	}
	if conns == nil {
		conns = map[string]*slidingConn{}
		c.byDevice[device] = conns
	}
	if _, ok := conns[connID]; !ok && len(conns) >= connsPerDev {
		// The device's least recently used connection makes way.
		oldest := ""
		for id, conn := range conns {
			if oldest == "" || conn.lastUsed().Before(conns[oldest].lastUsed()) {
				oldest = id
			}
		}
		delete(conns, oldest)
	}
	conn := &slidingConn{have: map[int]map[string]string{0: {}}, used: now}
	conns[connID] = conn
	return conn
}

// SlidingConnections is how many sliding sync connections are kept.
func (s *Service) SlidingConnections() int { return s.sliding.count() }

func (c *slidingConns) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, conns := range c.byDevice {
		n += len(conns)
	}
	return n
}

func (c *slidingConn) lastUsed() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync
func (s *Service) slidingSync(r *http.Request, dev *httpapi.Device) httpapi.Response {
	req, timeout, err := parseSliding(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	conn, since, version, err := s.connAt(dev.UserID+"|"+dev.DeviceID, req.ConnID, r.URL.Query().Get("pos"))
	if err != nil {
		return httpapi.Fail(err)
	}
	if since != nil && req.Extensions.ToDevice != nil && req.Extensions.ToDevice.Since != "" {
		if upTo, err := strconv.ParseInt(req.Extensions.ToDevice.Since, 10, 64); err == nil && upTo > 0 {
			if err := s.ackToDevice(r.Context(), dev, upTo); err != nil {
				return httpapi.Fail(err)
			}
		}
	}
	gen, superseded := conn.supersede()

	l := s.Notifier.Listen(dev.UserID)
	defer l.Close()
	var timer <-chan time.Time
	if since != nil && timeout > 0 && s.startPoll(dev.UserID) {
		defer s.endPoll(dev.UserID)
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	for {
		conn.mu.Lock()
		have := conn.have[version]
		if conn.gen != gen || have == nil {
			conn.mu.Unlock()
			return httpapi.Fail(errUnknownPos)
		}
		conn.mu.Unlock()
		// Building reads the database, not the connection: what the client
		// had at this position does not change once answered.
		res, empty, to, sent, err := s.slidingBuild(r, dev, have, since, &req)
		if err != nil {
			return httpapi.Fail(err)
		}
		if !empty || timer == nil {
			return s.answer(conn, gen, version, res, to, sent)
		}
		select {
		case <-l.C:
			continue
		case <-superseded:
			return httpapi.Fail(errUnknownPos)
		case <-r.Context().Done():
			// The client hung up: nothing was sent, so nothing changes.
			return httpapi.OK(res)
		case <-timer:
		}
		// Timed out: the empty answer of the last build.
		return s.answer(conn, gen, version, res, to, sent)
	}
}

// parseSliding reads a sliding sync request: its body, conn_id and
// timeout from the query, and checks the lists' ranges.
func parseSliding(r *http.Request) (slidingRequest, time.Duration, error) {
	var req slidingRequest
	if err := httpapi.Decode(r, &req); err != nil {
		return req, 0, err
	}
	q := r.URL.Query()
	if id := q.Get("conn_id"); id != "" {
		req.ConnID = id
	}
	timeout := time.Duration(0)
	if t := q.Get("timeout"); t != "" {
		ms, err := strconv.ParseInt(t, 10, 64)
		if err != nil || ms < 0 {
			return req, 0, httpapi.InvalidParam("timeout must be a non-negative number of milliseconds")
		}
		timeout = min(time.Duration(ms)*time.Millisecond, maxTimeout)
	}
	for name, l := range req.Lists {
		for _, rg := range l.Ranges {
			if len(rg) != 2 || rg[0] < 0 || rg[1] < rg[0] {
				return req, 0, httpapi.InvalidParam("list %q: ranges are [start, end] pairs", name)
			}
		}
	}
	return req, timeout, nil
}

// connAt finds a device's connection and the position pos names in it
// ("<version>~<token>"); no pos starts a connection anew.
func (s *Service) connAt(device, connID, pos string) (conn *slidingConn, since *streams.Token, version int, err error) {
	if pos == "" {
		return s.sliding.get(device, connID, true, s.Now()), nil, 0, nil
	}
	conn = s.sliding.get(device, connID, false, s.Now())
	p, err := streams.ParseSlidingPos(pos)
	if err != nil || conn == nil || !conn.use(p.Version, s.Now()) {
		return nil, nil, 0, errUnknownPos
	}
	return conn, &p.Token, p.Version, nil
}

// supersede makes a request the connection's newest: one still waiting
// (a client that gave up on it and asked again) ends. The lock is held
// only to read and record positions, never while building or waiting.
func (c *slidingConn) supersede() (gen int, superseded chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if c.superseded != nil {
		close(c.superseded)
	}
	c.superseded = make(chan struct{})
	return c.gen, c.superseded
}

// answer records a response as sent, from the position version, and gives
// it its new position; a request superseded meanwhile gets M_UNKNOWN_POS.
func (s *Service) answer(conn *slidingConn, gen, version int, res *slidingResponse, to streams.Token, sent map[string]string) httpapi.Response {
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if conn.gen != gen || conn.have[version] == nil {
		return httpapi.Fail(errUnknownPos)
	}
	res.Pos = conn.commit(version, to, sent)
	return httpapi.OK(res)
}

// use marks a position as the one the client goes on from: older ones are
// forgotten. It reports whether the position is still valid.
func (c *slidingConn) use(version int, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.have[version] == nil {
		return false
	}
	for v := range c.have {
		if v < version {
			delete(c.have, v)
		}
	}
	c.used = now
	return true
}

// commit records a response built from position from: the client now has
// what it had there plus the rooms this response carried, at a new
// position. The caller holds c.mu.
func (c *slidingConn) commit(from int, to streams.Token, sent map[string]string) string {
	have := make(map[string]string, len(c.have[from])+len(sent))
	for id, f := range c.have[from] {
		have[id] = f
	}
	for id, f := range sent {
		have[id] = f
	}
	c.latest++
	c.have[c.latest] = have
	// A client retrying without end keeps only the newest answers.
	for len(c.have) > versionsKept {
		oldest := c.latest
		for v := range c.have {
			if v != from && v < oldest {
				oldest = v
			}
		}
		delete(c.have, oldest)
	}
	return streams.SlidingPos{Version: c.latest, Token: to}.String()
}

func fingerprint(c roomConfig) string {
	b, _ := json.Marshal(c)
	return string(b)
}

// merge combines two configs of a room shown by several lists.
func merge(a, b roomConfig) roomConfig {
	out := roomConfig{TimelineLimit: max(a.TimelineLimit, b.TimelineLimit)}
	out.RequiredState = append(slices.Clone(a.RequiredState), b.RequiredState...)
	return out
}
