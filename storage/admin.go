package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// UserListing is a user as the admin API lists them.
type UserListing struct {
	User
	Erased, Suspended bool
	LastSeenTS        int64
}

// UserFilter selects and orders the admin API's user list.
type UserFilter struct {
	From, Limit int
	Name        string // contained in the user ID or display name
	// Deactivated and Admins: nil for everyone, else only those users
	// whose flag is the value.
	Deactivated, Admins *bool
	OrderBy             string // a key of UserOrders
	Backwards           bool
}

// UserOrders are the orderings of the user list, by the admin API's names.
var UserOrders = map[string]string{
	"name": "u.user_id", "admin": "u.is_admin", "deactivated": "u.deactivated", "displayname": "u.displayname",
	"avatar_url": "u.avatar_url", "creation_ts": "u.created_ts", "last_seen_ts": "last_seen", "is_guest": "u.user_id",
	"shadow_banned": "u.user_id", "user_type": "u.user_id", "locked": "u.user_id",
}

// ListUsers returns a page of users and how many match in all.
func (q Q) ListUsers(ctx context.Context, f UserFilter) ([]UserListing, int, error) {
	order, ok := UserOrders[f.OrderBy]
	if !ok {
		order = "u.user_id"
	}
	dir := "ASC"
	if f.Backwards {
		dir = "DESC"
	}
	where := `WHERE (?1 = '' OR instr(lower(u.user_id), lower(?1)) > 0 OR instr(lower(COALESCE(u.displayname, '')), lower(?1)) > 0)
		AND (?2 IS NULL OR u.deactivated = ?2) AND (?3 IS NULL OR u.is_admin = ?3)`
	args := []any{f.Name, f.Deactivated, f.Admins}
	var total int
	if err := q.queryRow(ctx, `SELECT COUNT(*) FROM users u `+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := q.query(ctx, fmt.Sprintf(`SELECT u.user_id, u.is_admin, u.deactivated, u.erased, u.created_ts, u.displayname, u.avatar_url,
		(SELECT MAX(d.last_seen_ts) FROM devices d WHERE d.user_id = u.user_id) AS last_seen
		FROM users u %s ORDER BY %s %s, u.user_id %s LIMIT ?4 OFFSET ?5`, where, order, dir, dir), append(args, f.Limit, f.From)...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []UserListing
	for rows.Next() {
		var u UserListing
		var dn, av sql.NullString
		var seen sql.NullInt64
		if err := rows.Scan(&u.UserID, &u.IsAdmin, &u.Deactivated, &u.Erased, &u.CreatedTS, &dn, &av, &seen); err != nil {
			return nil, 0, err
		}
		u.DisplayName, u.AvatarURL, u.LastSeenTS = dn.String, av.String, seen.Int64
		out = append(out, u)
	}
	return out, total, rows.Err()
}

// UserListingOf returns one user as the admin API shows them.
func (q Q) UserListingOf(ctx context.Context, userID string) (UserListing, error) {
	u, err := q.User(ctx, userID)
	if err != nil {
		return UserListing{}, err
	}
	l := UserListing{User: u}
	var seen sql.NullInt64
	err = q.queryRow(ctx, `SELECT u.erased, u.suspended, (SELECT MAX(d.last_seen_ts) FROM devices d WHERE d.user_id = u.user_id)
		FROM users u WHERE u.user_id = ?`, userID).Scan(&l.Erased, &l.Suspended, &seen)
	l.LastSeenTS = seen.Int64
	return l, err
}

// SetAdmin sets or clears a user's admin flag.
func (q Q) SetAdmin(ctx context.Context, userID string, admin bool) error {
	return q.execOne(ctx, `UPDATE users SET is_admin = ? WHERE user_id = ?`, admin, userID)
}

// MarkErased records that a user's data was erased.
func (q Q) MarkErased(ctx context.Context, userID string) error {
	return q.execOne(ctx, `UPDATE users SET erased = 1 WHERE user_id = ?`, userID)
}

// AuditEntry is one admin action.
type AuditEntry struct {
	ID     int64  `json:"id"`
	TS     int64  `json:"ts"`
	Admin  string `json:"admin"`
	Action string `json:"action"`
	Target string `json:"target"`
	Detail string `json:"detail,omitempty"`
}

// AddAudit records an admin action.
func (q Q) AddAudit(ctx context.Context, e AuditEntry) error {
	_, err := q.exec(ctx, `INSERT INTO audit_log(ts, admin, action, target, detail) VALUES(?, ?, ?, ?, ?)`,
		e.TS, e.Admin, e.Action, e.Target, nullString(e.Detail))
	return err
}

// Audit returns a page of the audit log, newest first, and its length.
func (q Q) Audit(ctx context.Context, from, limit int) ([]AuditEntry, int, error) {
	var total int
	if err := q.queryRow(ctx, `SELECT COUNT(*) FROM audit_log`).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := q.query(ctx, `SELECT id, ts, admin, action, target, detail FROM audit_log ORDER BY id DESC LIMIT ? OFFSET ?`, limit, from)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var d sql.NullString
		if err := rows.Scan(&e.ID, &e.TS, &e.Admin, &e.Action, &e.Target, &d); err != nil {
			return nil, 0, err
		}
		e.Detail = d.String
		out = append(out, e)
	}
	return out, total, rows.Err()
}

// RegistrationToken is a token that lets someone register.
type RegistrationToken struct {
	Token       string `json:"token"`
	UsesAllowed *int64 `json:"uses_allowed"`
	Pending     int64  `json:"pending"`
	Completed   int64  `json:"completed"`
	ExpiryTime  *int64 `json:"expiry_time"`
}

const tokenCols = `token, uses_allowed, pending, completed, expiry_time`

func scanToken(s interface{ Scan(...any) error }) (RegistrationToken, error) {
	var t RegistrationToken
	var uses, exp sql.NullInt64
	err := s.Scan(&t.Token, &uses, &t.Pending, &t.Completed, &exp)
	if uses.Valid {
		t.UsesAllowed = &uses.Int64
	}
	if exp.Valid {
		t.ExpiryTime = &exp.Int64
	}
	return t, err
}

// CreateRegistrationToken adds a token; ErrConflict if it exists.
func (q Q) CreateRegistrationToken(ctx context.Context, t RegistrationToken) error {
	_, err := q.exec(ctx, `INSERT INTO registration_tokens(token, uses_allowed, expiry_time) VALUES(?, ?, ?)`,
		t.Token, t.UsesAllowed, t.ExpiryTime)
	return conflict(err)
}

// RegistrationTokenByName loads a token.
func (q Q) RegistrationTokenByName(ctx context.Context, token string) (RegistrationToken, error) {
	t, err := scanToken(q.queryRow(ctx, `SELECT `+tokenCols+` FROM registration_tokens WHERE token = ?`, token))
	return t, notFound(err)
}

// RegistrationTokens lists tokens: all, or only the valid (or invalid) ones.
func (q Q) RegistrationTokens(ctx context.Context, valid *bool, now int64) ([]RegistrationToken, error) {
	rows, err := q.query(ctx, `SELECT `+tokenCols+` FROM registration_tokens ORDER BY token`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []RegistrationToken{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		if valid == nil || t.Valid(now) == *valid {
			out = append(out, t)
		}
	}
	return out, rows.Err()
}

// Valid reports whether the token can still be used at time now.
func (t RegistrationToken) Valid(now int64) bool {
	return (t.UsesAllowed == nil || t.Pending+t.Completed < *t.UsesAllowed) && (t.ExpiryTime == nil || *t.ExpiryTime > now)
}

// UpdateRegistrationToken changes a token's uses and expiry.
func (q Q) UpdateRegistrationToken(ctx context.Context, t RegistrationToken) error {
	return q.execOne(ctx, `UPDATE registration_tokens SET uses_allowed = ?, expiry_time = ? WHERE token = ?`,
		t.UsesAllowed, t.ExpiryTime, t.Token)
}

// DeleteRegistrationToken deletes a token.
func (q Q) DeleteRegistrationToken(ctx context.Context, token string) error {
	return q.execOne(ctx, `DELETE FROM registration_tokens WHERE token = ?`, token)
}

// UseRegistrationToken counts one completed registration against a valid
// token, and reports whether it was valid.
func (q Q) UseRegistrationToken(ctx context.Context, token string, now int64) (bool, error) {
	res, err := q.exec(ctx, `UPDATE registration_tokens SET completed = completed + 1 WHERE token = ?
		AND (uses_allowed IS NULL OR pending + completed < uses_allowed) AND (expiry_time IS NULL OR expiry_time > ?)`, token, now)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// BlockRoom blocks a room: no one may join it (again).
func (q Q) BlockRoom(ctx context.Context, roomID, by string, ts int64) error {
	_, err := q.exec(ctx, `INSERT OR REPLACE INTO blocked_rooms(room_id, blocked_by, ts) VALUES(?, ?, ?)`, roomID, by, ts)
	return err
}

// PurgeRoom deletes a room's history and state except its create event and
// its members' (by now) leave events, which tell their clients the room is
// gone; aliases, receipts and forgotten marks go too.
func (q Q) PurgeRoom(ctx context.Context, roomID string) (int64, error) {
	if err := q.rewritesEvents(ctx); err != nil {
		return 0, err
	}
	res, err := q.exec(ctx, `DELETE FROM events WHERE room_id = ?1 AND event_id NOT IN
		(SELECT event_id FROM room_state WHERE room_id = ?1 AND type IN ('m.room.create', 'm.room.member'))`, roomID)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	for _, query := range []string{
		`DELETE FROM room_state WHERE room_id = ?1 AND type NOT IN ('m.room.create', 'm.room.member')`,
		`DELETE FROM room_aliases WHERE room_id = ?1`,
		`DELETE FROM receipts WHERE room_id = ?1`,
		// The kept events' notifications (invites) too, with the counts:
		// the receipts that counted them are gone.
		`DELETE FROM push_actions WHERE event_pos IN (SELECT pos FROM events WHERE room_id = ?1)`,
		`DELETE FROM unread_counts WHERE room_id = ?1`,
	} {
		if _, err := q.exec(ctx, query, roomID); err != nil {
			return n, err
		}
	}
	return n, nil
}

// SetInstanceState records a fact about the instance (e.g. last_prune_ts).
func (q Q) SetInstanceState(ctx context.Context, key string, value int64) error {
	_, err := q.exec(ctx, `INSERT OR REPLACE INTO instance_state(key, value) VALUES(?, ?)`, key, value)
	return err
}

const instanceStateQuery = `SELECT value FROM instance_state WHERE key = ?`

// InstanceState reads a fact about the instance (0 if never set).
func (q Q) InstanceState(ctx context.Context, key string) (int64, error) {
	var v int64
	err := q.queryRow(ctx, instanceStateQuery, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// Counts are the instance summary's figures.
type Counts struct {
	Users, Rooms, Events, Media, MediaBytes, DatabaseBytes int64
}

// InstanceCounts counts users, rooms, events and media.
func (q Q) InstanceCounts(ctx context.Context) (Counts, error) {
	var c Counts
	err := q.queryRow(ctx, `SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM rooms), (SELECT COUNT(*) FROM events),
		(SELECT COUNT(*) FROM media), (SELECT COALESCE(SUM(size), 0) FROM media),
		(SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size())`).Scan(
		&c.Users, &c.Rooms, &c.Events, &c.Media, &c.MediaBytes, &c.DatabaseBytes)
	return c, err
}

// NoticeRoom returns a user's server notices room ("" if none yet).
func (q Q) NoticeRoom(ctx context.Context, userID string) (string, error) {
	var roomID string
	err := q.queryRow(ctx, `SELECT room_id FROM server_notice_rooms WHERE user_id = ?`, userID).Scan(&roomID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return roomID, err
}

// SetNoticeRoom records a user's server notices room.
func (q Q) SetNoticeRoom(ctx context.Context, userID, roomID string) error {
	_, err := q.exec(ctx, `INSERT OR REPLACE INTO server_notice_rooms(user_id, room_id) VALUES(?, ?)`, userID, roomID)
	return err
}

// RoomListing is a room as the admin API lists it.
type RoomListing struct {
	RoomID, Version, Creator                               string
	CreatedTS                                              int64
	Name, Topic, CanonicalAlias, JoinRules, HistoryVisible string
	GuestAccess, Encryption, Avatar, RoomType              string
	JoinedMembers, InvitedMembers, StateEvents             int
	Blocked                                                bool
}

// stateField is a subquery for a field of a room's current state event.
func stateField(typ, path string) string {
	return fmt.Sprintf(`(SELECT json_extract(e.json, '$.content.%s') FROM room_state s JOIN events e ON e.event_id = s.event_id
		WHERE s.room_id = r.room_id AND s.type = '%s' AND s.state_key = '')`, path, typ)
}

var roomListingCols = `r.room_id, r.version, r.creator, r.created_ts, ` +
	`COALESCE(` + stateField("m.room.name", "name") + `, ''), ` +
	`COALESCE(` + stateField("m.room.topic", "topic") + `, ''), ` +
	`COALESCE(` + stateField("m.room.canonical_alias", "alias") + `, ''), ` +
	`COALESCE(` + stateField("m.room.join_rules", "join_rule") + `, ''), ` +
	`COALESCE(` + stateField("m.room.history_visibility", "history_visibility") + `, ''), ` +
	`COALESCE(` + stateField("m.room.guest_access", "guest_access") + `, ''), ` +
	`COALESCE(` + stateField("m.room.encryption", "algorithm") + `, ''), ` +
	`COALESCE(` + stateField("m.room.avatar", "url") + `, ''), ` +
	`COALESCE(` + stateField("m.room.create", "type") + `, ''), ` +
	`(SELECT COUNT(*) FROM room_state s WHERE s.room_id = r.room_id AND s.type = 'm.room.member' AND s.membership = 'join'), ` +
	`(SELECT COUNT(*) FROM room_state s WHERE s.room_id = r.room_id AND s.type = 'm.room.member' AND s.membership = 'invite'), ` +
	`(SELECT COUNT(*) FROM room_state s WHERE s.room_id = r.room_id), ` +
	`EXISTS (SELECT 1 FROM blocked_rooms b WHERE b.room_id = r.room_id)`

func scanRoomListing(s interface{ Scan(...any) error }) (RoomListing, error) {
	var l RoomListing
	err := s.Scan(&l.RoomID, &l.Version, &l.Creator, &l.CreatedTS, &l.Name, &l.Topic, &l.CanonicalAlias, &l.JoinRules,
		&l.HistoryVisible, &l.GuestAccess, &l.Encryption, &l.Avatar, &l.RoomType, &l.JoinedMembers, &l.InvitedMembers,
		&l.StateEvents, &l.Blocked)
	return l, err
}

// RoomOrders are the orderings of the room list, by the admin API's names.
var RoomOrders = map[string]string{
	"name": "5", "canonical_alias": "7", "joined_members": "14", "joined_local_members": "14", "version": "2",
	"creator": "3", "encryption": "11", "join_rules": "8", "guest_access": "10", "history_visibility": "9",
	"state_events": "16", "created_ts": "4", "room_id": "1",
	// Every room is unfederated; public means joinable by anyone.
	"federatable": "1", "public": "8",
}

// ListRooms returns a page of rooms, filtered by a search term (room ID,
// name or alias), and how many match in all.
func (q Q) ListRooms(ctx context.Context, search, orderBy string, backwards bool, from, limit int) ([]RoomListing, int, error) {
	order, ok := RoomOrders[orderBy]
	if !ok {
		order = "14"
	}
	dir := "DESC" // Synapse's default: the biggest rooms first
	if orderBy != "" && !backwards {
		dir = "ASC"
	}
	if orderBy != "" && backwards {
		dir = "DESC"
	}
	base := `SELECT ` + roomListingCols + ` FROM rooms r WHERE r.deleted_ts IS NULL`
	rows, err := q.query(ctx, base+fmt.Sprintf(` ORDER BY %s %s, 1 ASC`, order, dir))
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var all []RoomListing
	for rows.Next() {
		l, err := scanRoomListing(rows)
		if err != nil {
			return nil, 0, err
		}
		if search == "" || containsFold(l.RoomID, search) || containsFold(l.Name, search) || containsFold(l.CanonicalAlias, search) {
			all = append(all, l)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	total := len(all)
	if from > total {
		from = total
	}
	end := min(total, from+limit)
	return all[from:end], total, nil
}

// RoomListingOf returns one room as the admin API shows it.
func (q Q) RoomListingOf(ctx context.Context, roomID string) (RoomListing, error) {
	l, err := scanRoomListing(q.queryRow(ctx, `SELECT `+roomListingCols+` FROM rooms r WHERE r.room_id = ? AND r.deleted_ts IS NULL`, roomID))
	return l, notFound(err)
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// RoomMembers lists the user IDs with a membership in a room.
func (q Q) RoomMembers(ctx context.Context, roomID string, memberships ...string) ([]string, error) {
	members, err := q.strings(ctx, `SELECT state_key FROM room_state WHERE room_id = ? AND type = 'm.room.member'
		AND membership IN (SELECT value FROM json_each(?)) ORDER BY state_key`, roomID, jsonStrings(memberships))
	if members == nil {
		members = []string{}
	}
	return members, err
}

func jsonStrings(v []string) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// ReactivateUser lets a deactivated account log in again (with a new
// password, set by the caller).
func (q Q) ReactivateUser(ctx context.Context, userID string) error {
	return q.execOne(ctx, `UPDATE users SET deactivated = 0 WHERE user_id = ?`, userID)
}

// MediaPage returns a page of a user's media, newest first, and their count.
func (q Q) MediaPage(ctx context.Context, userID string, from, limit int) ([]Media, int, error) {
	var total int
	if err := q.queryRow(ctx, `SELECT COUNT(*) FROM media WHERE uploader = ?`, userID).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := q.query(ctx, `SELECT media_id, content_type, filename, size, created_ts, quarantined_by FROM media WHERE uploader = ?
		ORDER BY created_ts DESC, media_id LIMIT ? OFFSET ?`, userID, limit, from)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []Media
	for rows.Next() {
		var m Media
		var fn, qb sql.NullString
		if err := rows.Scan(&m.MediaID, &m.ContentType, &fn, &m.Size, &m.CreatedTS, &qb); err != nil {
			return nil, 0, err
		}
		m.Filename, m.QuarantinedBy = fn.String, qb.String
		out = append(out, m)
	}
	return out, total, rows.Err()
}

// ReturnRegistrationToken undoes one counted use of a token.
func (q Q) ReturnRegistrationToken(ctx context.Context, token string) error {
	_, err := q.exec(ctx, `UPDATE registration_tokens SET completed = completed - 1 WHERE token = ? AND completed > 0`, token)
	return err
}

// EventReport is a user's report of an event.
type EventReport struct {
	ID       int64  `json:"id"`
	TS       int64  `json:"received_ts"`
	Reporter string `json:"user_id"`
	RoomID   string `json:"room_id"`
	EventID  string `json:"event_id"`
	Reason   string `json:"reason,omitempty"`
	Score    *int64 `json:"score,omitempty"`
	// What the admin tools show beside: the room's name and alias and the
	// reported event's sender, each null when unknown (room deleted, event
	// pruned).
	Name           *string `json:"name"`
	CanonicalAlias *string `json:"canonical_alias"`
	Sender         *string `json:"sender"`
}

const eventReportCols = `rep.id, rep.ts, rep.reporter, rep.room_id, rep.event_id, rep.reason, rep.score,
	(SELECT json_extract(e.json, '$.content.name') FROM room_state s JOIN events e ON e.event_id = s.event_id
		WHERE s.room_id = rep.room_id AND s.type = 'm.room.name' AND s.state_key = ''),
	(SELECT json_extract(e.json, '$.content.alias') FROM room_state s JOIN events e ON e.event_id = s.event_id
		WHERE s.room_id = rep.room_id AND s.type = 'm.room.canonical_alias' AND s.state_key = ''),
	(SELECT sender FROM events e WHERE e.event_id = rep.event_id)`

func scanEventReport(s interface{ Scan(...any) error }) (EventReport, error) {
	var r EventReport
	var reason, name, alias, sender sql.NullString
	var score sql.NullInt64
	if err := s.Scan(&r.ID, &r.TS, &r.Reporter, &r.RoomID, &r.EventID, &reason, &score, &name, &alias, &sender); err != nil {
		return r, err
	}
	r.Reason = reason.String
	if score.Valid {
		r.Score = &score.Int64
	}
	for _, f := range []struct {
		v   sql.NullString
		out **string
	}{{name, &r.Name}, {alias, &r.CanonicalAlias}, {sender, &r.Sender}} {
		if f.v.Valid {
			*f.out = &f.v.String
		}
	}
	return r, nil
}

// EventReportByID returns one report.
func (q Q) EventReportByID(ctx context.Context, id int64) (EventReport, error) {
	r, err := scanEventReport(q.queryRow(ctx, `SELECT `+eventReportCols+` FROM event_reports rep WHERE rep.id = ?`, id))
	return r, notFound(err)
}

// DeleteEventReport deletes one report.
func (q Q) DeleteEventReport(ctx context.Context, id int64) error {
	return q.execOne(ctx, `DELETE FROM event_reports WHERE id = ?`, id)
}

// AddEventReport stores a report.
func (q Q) AddEventReport(ctx context.Context, r EventReport) error {
	_, err := q.exec(ctx, `INSERT INTO event_reports(ts, reporter, room_id, event_id, reason, score) VALUES(?, ?, ?, ?, ?, ?)`,
		r.TS, r.Reporter, r.RoomID, r.EventID, nullString(r.Reason), r.Score)
	return err
}

// EventReports returns a page of reports, newest first, and their count.
func (q Q) EventReports(ctx context.Context, from, limit int) ([]EventReport, int, error) {
	var total int
	if err := q.queryRow(ctx, `SELECT COUNT(*) FROM event_reports`).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := q.query(ctx, `SELECT `+eventReportCols+` FROM event_reports rep ORDER BY rep.id DESC LIMIT ? OFFSET ?`, limit, from)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []EventReport{}
	for rows.Next() {
		r, err := scanEventReport(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, r)
	}
	return out, total, rows.Err()
}
