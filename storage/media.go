package storage

import (
	"context"
	"database/sql"
)

// Media is a media repository entry.
type Media struct {
	MediaID     string
	Uploader    string
	ContentType string
	Filename    string
	Size        int64
	SHA256      string
	CreatedTS   int64
	State       string // MediaPending, MediaUploading or MediaReady
	ExpiresTS   int64  // for pending media: when the reservation lapses
	InDir       bool
	// QuarantinedBy is the admin who quarantined it: it is not served.
	QuarantinedBy string
}

// Media states.
const (
	MediaPending   = "pending"
	MediaUploading = "uploading"
	MediaReady     = "ready"
)

// CreateMedia adds a media entry.
func (q Q) CreateMedia(ctx context.Context, m Media) error {
	_, err := q.exec(ctx, `INSERT INTO media(media_id, uploader, content_type, filename, created_ts, state, expires_ts, in_dir)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?)`, m.MediaID, m.Uploader, m.ContentType, nullString(m.Filename), m.CreatedTS,
		m.State, nullInt(m.ExpiresTS), m.InDir)
	return conflict(err)
}

// Media loads a media entry.
func (q Q) Media(ctx context.Context, mediaID string) (Media, error) {
	var m Media
	var fn, hash, qb sql.NullString
	var exp sql.NullInt64
	err := q.queryRow(ctx, `SELECT media_id, uploader, content_type, filename, size, sha256, created_ts, state, expires_ts, in_dir,
		quarantined_by FROM media WHERE media_id = ?`, mediaID).Scan(&m.MediaID, &m.Uploader, &m.ContentType, &fn, &m.Size, &hash,
		&m.CreatedTS, &m.State, &exp, &m.InDir, &qb)
	m.Filename, m.SHA256, m.ExpiresTS, m.QuarantinedBy = fn.String, hash.String, exp.Int64, qb.String
	return m, notFound(err)
}

// CountPendingMedia counts a user's reservations that still wait for bytes.
func (q Q) CountPendingMedia(ctx context.Context, userID string, now int64) (int, error) {
	var n int
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM media WHERE uploader = ? AND state = 'pending' AND expires_ts > ?`,
		userID, now).Scan(&n)
	return n, err
}

// StartMediaUpload moves pending media to uploading, for its uploader and
// only once: it reports whether this call did so.
func (q Q) StartMediaUpload(ctx context.Context, mediaID, contentType, filename string, inDir bool) (bool, error) {
	res, err := q.exec(ctx, `UPDATE media SET state = 'uploading', content_type = ?, filename = ?, in_dir = ?
		WHERE media_id = ? AND state = 'pending'`, contentType, nullString(filename), inDir, mediaID)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// AddMediaChunk stores the seq'th piece of an upload.
func (q Q) AddMediaChunk(ctx context.Context, mediaID string, seq int, data []byte) error {
	_, err := q.exec(ctx, `INSERT INTO media_chunks(media_id, seq, data) VALUES(?, ?, ?)`, mediaID, seq, data)
	return err
}

// FinishMedia marks an upload complete.
func (q Q) FinishMedia(ctx context.Context, mediaID string, size int64, sha256 string) error {
	_, err := q.exec(ctx, `UPDATE media SET state = 'ready', size = ?, sha256 = ?, expires_ts = NULL WHERE media_id = ?`,
		size, sha256, mediaID)
	return err
}

// AbandonMediaUpload undoes a failed upload: media created by /create goes
// back to waiting for its bytes, other media is deleted.
func (q Q) AbandonMediaUpload(ctx context.Context, mediaID string) error {
	if _, err := q.exec(ctx, `DELETE FROM media_chunks WHERE media_id = ?`, mediaID); err != nil {
		return err
	}
	if _, err := q.exec(ctx, `DELETE FROM media WHERE media_id = ? AND expires_ts IS NULL`, mediaID); err != nil {
		return err
	}
	_, err := q.exec(ctx, `UPDATE media SET state = 'pending', in_dir = 0 WHERE media_id = ?`, mediaID)
	return err
}

// InterruptedUploads lists media whose upload was cut off by a stop.
func (q Q) InterruptedUploads(ctx context.Context) ([]Media, error) {
	return q.mediaIDs(ctx, `SELECT media_id, in_dir FROM media WHERE state = 'uploading'`)
}

// mediaIDs runs a query selecting media_id and in_dir: what deleting media
// needs.
func (q Q) mediaIDs(ctx context.Context, query string, args ...any) ([]Media, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Media
	for rows.Next() {
		var m Media
		if err := rows.Scan(&m.MediaID, &m.InDir); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// MediaChunk returns the seq'th piece of media's bytes.
func (q Q) MediaChunk(ctx context.Context, mediaID string, seq int) ([]byte, error) {
	var b []byte
	err := q.queryRow(ctx, `SELECT data FROM media_chunks WHERE media_id = ? AND seq = ?`, mediaID, seq).Scan(&b)
	return b, notFound(err)
}

// Thumbnail is a generated thumbnail.
type Thumbnail struct {
	Width, Height int
	Method        string
	ContentType   string
	Data          []byte
}

// MediaThumbnail loads a cached thumbnail.
func (q Q) MediaThumbnail(ctx context.Context, mediaID string, width, height int, method string) (Thumbnail, error) {
	t := Thumbnail{Width: width, Height: height, Method: method}
	err := q.queryRow(ctx, `SELECT content_type, data FROM media_thumbnails WHERE media_id = ? AND width = ? AND height = ? AND method = ?`,
		mediaID, width, height, method).Scan(&t.ContentType, &t.Data)
	return t, notFound(err)
}

// CountThumbnails counts media's cached thumbnails.
func (q Q) CountThumbnails(ctx context.Context, mediaID string) (int, error) {
	var n int
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM media_thumbnails WHERE media_id = ?`, mediaID).Scan(&n)
	return n, err
}

// AddThumbnail caches a thumbnail.
func (q Q) AddThumbnail(ctx context.Context, mediaID string, t Thumbnail) error {
	_, err := q.exec(ctx, `INSERT OR REPLACE INTO media_thumbnails(media_id, width, height, method, content_type, data)
		VALUES(?, ?, ?, ?, ?, ?)`, mediaID, t.Width, t.Height, t.Method, t.ContentType, t.Data)
	return err
}

func nullInt(n int64) sql.NullInt64 { return sql.NullInt64{Int64: n, Valid: n != 0} }

// MediaFile is media whose bytes are a file in media.path.
type MediaFile struct {
	MediaID string
	SHA256  string // unpadded base64
}

// MediaFiles lists the ready media kept in files.
func (q Q) MediaFiles(ctx context.Context) ([]MediaFile, error) {
	rows, err := q.query(ctx, `SELECT media_id, sha256 FROM media WHERE in_dir = 1 AND state = 'ready' ORDER BY media_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []MediaFile
	for rows.Next() {
		var f MediaFile
		if err := rows.Scan(&f.MediaID, &f.SHA256); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}
