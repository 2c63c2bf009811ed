// Package storage is Redoubt's one SQLite file: its schema, its migrations
// and all of its SQL. Writes go through a single connection, so they are
// serialised; reads use a pool of read-only connections, which WAL mode lets
// run alongside the writer.
package storage

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Sentinel errors, mapped to Matrix errors at the HTTP edge.
var (
	ErrNotFound = errors.New("storage: not found")
	ErrConflict = errors.New("storage: already exists")
)

//go:embed schema/*.sql
var schemaFS embed.FS

// DB is an open instance database.
type DB struct {
	write *sql.DB
	read  *sql.DB
	// writer is the one write connection. Whoever holds lead (a channel
	// of one) may use it; queue holds the writes waiting for it.
	writer  *pconn
	lead    chan struct{}
	queueMu sync.Mutex
	queue   []*writeReq
	// path is the database file's.
	path string
	// OnCommit, if set, is told of each write transaction (metrics).
	OnCommit func(d time.Duration, writes int)
	// shared counts writes that shared their transaction with others.
	shared atomic.Int64
	// commits is odd while a write transaction is open and moves on at
	// its end, before any writer in it is answered; positions are the
	// stream positions a read took between two (sync.go).
	commits   atomic.Uint64
	positions atomic.Pointer[positionsAt]
	// sessions are the access tokens' sessions read at one auth_epoch.
	sessions kept[Session]
	// keyCounts and accountData are kept at one sync_epoch: see Q.positioned.
	keyCounts   kept[keyCounts]
	accountData kept[[]byte]
	// readers is the pool of read-only connections. Their transactions are
	// kept open while the WAL-index header, read from shm, is unchanged,
	// and not while keepOff is set (keep.go).
	readers  chan *pconn
	shm      *os.File
	keepOff  atomic.Int32
	keepMu   sync.RWMutex // held by release, and by endKept alone
	sweeping atomic.Bool  // a sweep of kept snapshots is due
	// checkpoints counts checkpoints: a snapshot begun before one is not
	// kept after it.
	checkpoints atomic.Uint64
	// scrub asks the scrubber for a checkpoint; closing stops it and
	// scrubbed is closed when it has stopped (see scrub.go).
	scrub, closing, scrubbed chan struct{}
	// hook is told of checkpoints (replicate.go); lastCheckpoint is the
	// writer's last (used only with the writer held); past walLimit bytes
	// the writer restarts the WAL.
	hook           atomic.Pointer[CheckpointHook]
	lastCheckpoint time.Time
	walLimit       int64
}

// readConns is the size of the read pool.
const readConns = 8

// busyTimeout is how long a connection waits for a lock before SQLITE_BUSY.
const busyTimeout = 10 * time.Second

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Q runs queries, either inside a transaction (on its connection) or, from
// DB.R, each on a connection of the read pool. Write methods must only be
// called on the Q given by DB.Write.
type Q struct {
	pc *pconn
	db *DB
	// memo, in a settled snapshot of ReadPositioned, is what woken syncs
	// in the same state of the database share.
	memo *memo
	// interrupts: see interruptible.
	interrupts bool
	// positioned is set in ReadPositioned's snapshots, which read
	// syncEpoch beside the stream positions: there what a /sync reads of
	// its user may come from memory (DB.keyCounts, DB.accountData).
	positioned bool
	syncEpoch  int64
}

// dsn sets every pragma in the connection string so each pooled connection
// gets them. busy_timeout comes first so the others can wait for a lock.
func dsn(path string, writer bool) string {
	v := url.Values{}
	v.Add("_pragma", "busy_timeout("+itoa(busyTimeout.Milliseconds())+")")
	v.Add("_pragma", "journal_mode(WAL)")
	// NORMAL in WAL mode: a killed process loses nothing that was committed;
	// only a power loss can drop the last transactions, never corrupt.
	v.Add("_pragma", "synchronous(NORMAL)")
	v.Add("_pragma", "foreign_keys(ON)")
	v.Add("_pragma", "secure_delete(ON)")
	// Statement and savepoint journals (every multi-row statement, every
	// write of a group commit) in memory, not in temporary files.
	v.Add("_pragma", "temp_store(MEMORY)")
	if writer {
		v.Add("_txlock", "immediate")
	} else {
		v.Add("_pragma", "query_only(ON)")
	}
	return "file:" + path + "?" + v.Encode()
}

// pageSize is a new file's page size: an event row (about 1.5 KB with its
// JSON) fits five to an 8 KiB page, where 4 KiB holds two and wastes a
// quarter of the page.
const pageSize = 8192

// create makes a new database file with its page size, which must be set
// before anything (WAL mode first of all) writes the file; the driver
// applies a DSN's pragmas in its own order. A file that exists keeps its
// own.
func create(ctx context.Context, path string) error {
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		return nil
	}
	c, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.ExecContext(ctx, "PRAGMA page_size = "+itoa(pageSize)+"; PRAGMA journal_mode = WAL")
	return err
}

// Open opens (creating if needed) the database file and brings its schema up
// to date.
func Open(ctx context.Context, path string) (*DB, error) {
	return OpenUpgrading(ctx, path, nil)
}

// BeforeMigrating is called when a database made by an older binary is
// opened, before its schema moves from version from to version to: the
// database is open and readable at the old version. An error stops the
// open with nothing migrated.
type BeforeMigrating func(ctx context.Context, db *DB, from, to int) error

// OpenUpgrading is Open that calls before first when the schema is to be
// migrated (not for a new file).
func OpenUpgrading(ctx context.Context, path string, before BeforeMigrating) (*DB, error) {
	return openAt(ctx, path, before, 0)
}

// OpenAt opens the database migrating it no further than version: a file
// as an older binary left it, for tests of upgrades.
func OpenAt(ctx context.Context, path string, version int) (*DB, error) {
	return openAt(ctx, path, nil, version)
}

func openAt(ctx context.Context, path string, before BeforeMigrating, version int) (*DB, error) {
	if err := create(ctx, path); err != nil {
		return nil, err
	}
	w, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	db := &DB{write: w, lead: make(chan struct{}, 1), path: path, walLimit: walRestartBytes}
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if db.writer, err = newPconn(ctx, w); err != nil {
		w.Close()
		return nil, err
	}
	db.writer.uncancellable = true
	if mode != "wal" {
		db.writer.close()
		w.Close()
		return nil, fmt.Errorf("open %s: journal_mode is %q, not wal", path, mode)
	}
	r, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		db.writer.close()
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(readConns)
	r.SetMaxIdleConns(readConns)
	r.SetConnMaxLifetime(0)
	db.read = r
	db.readers = make(chan *pconn, readConns)
	for range readConns {
		p, err := newPconn(ctx, r)
		if err != nil {
			db.Close()
			return nil, err
		}
		db.readers <- p
	}
	if err := db.migrate(ctx, before, version); err != nil {
		db.Close()
		return nil, err
	}
	db.openSHM()
	db.scrub, db.closing, db.scrubbed = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	db.writer.forgets = db.scrubSoon
	go db.scrubber()
	return db, nil
}

// Close optimises and closes the database. Closing the last connection
// checkpoints and removes the WAL, so a scrub still due is done then.
func (db *DB) Close() error {
	if db.closing != nil {
		close(db.closing)
		<-db.scrubbed
	}
	_ = db.exclusive(func(p *pconn) error {
		_, _ = p.conn.ExecContext(context.Background(), "PRAGMA optimize")
		p.close()
		return nil
	})
	db.keepOff.Add(1) // for good: nothing is kept from now on
	db.keepMu.Lock()  // nor is a sweep holding readers
	for n := len(db.readers); n > 0; n-- {
		p := <-db.readers
		p.end()
		p.close()
	}
	db.keepMu.Unlock()
	if db.shm != nil {
		db.shm.Close()
	}
	err := db.read.Close()
	if werr := db.write.Close(); err == nil {
		err = werr
	}
	return err
}

// R queries the read pool, each query on its own.
func (db *DB) R() Q { return Q{db: db} }

// Read runs fn in one read transaction, so that it sees one snapshot.
func (db *DB) Read(ctx context.Context, fn func(Q) error) error {
	return db.readAfter(ctx, nil, fn)
}

// Checkpoint copies the WAL into the database file and truncates it, so that
// bytes erased by secure_delete are gone from both files.
func (db *DB) Checkpoint(ctx context.Context) error {
	var busy int
	err := db.exclusive(func(p *pconn) (err error) {
		busy, err = db.checkpoint(p, "TRUNCATE")
		return err
	})
	if err != nil {
		return err
	}
	if busy != 0 {
		return errors.New("storage: checkpoint blocked by readers")
	}
	return nil
}

// migrate brings the schema to version upTo (0: the latest), calling
// before first if an existing schema is to change.
func (db *DB) migrate(ctx context.Context, before BeforeMigrating, upTo int) error {
	names, err := migrationNames()
	if err != nil {
		return err
	}
	if upTo > 0 && upTo < len(names) {
		names = names[:upTo]
	}
	// A migration's version is the number its file name starts with: they
	// run in that order, each once, and none may be missing.
	for i, name := range names {
		if n, _, _ := strings.Cut(name, "_"); n != fmt.Sprintf("%03d", i+1) {
			return fmt.Errorf("migration %s: expected number %03d in its name", name, i+1)
		}
	}
	var version int
	if err := db.writer.conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version > len(names) {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d)", version, len(names))
	}
	if before != nil && version > 0 && version < len(names) {
		if err := before(ctx, db, version, len(names)); err != nil {
			return err
		}
	}
	for i := version; i < len(names); i++ {
		body, err := schemaFS.ReadFile("schema/" + names[i])
		if err != nil {
			return err
		}
		err = db.Write(ctx, func(q Q) error {
			// A migration is a script of several statements: not prepared.
			if _, err := q.pc.conn.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := q.pc.conn.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", names[i], err)
		}
	}
	return nil
}

// migrationNames are the embedded migrations' file names, in order.
func migrationNames() ([]string, error) {
	files, err := schemaFS.ReadDir("schema")
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for _, f := range files {
		names = append(names, f.Name())
	}
	sort.Strings(names)
	return names, nil
}

// SchemaVersion reports the schema version of the open database.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.R().queryRow(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}

// isConflict reports a unique or primary-key constraint failure.
func isConflict(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return true
		}
	}
	return false
}

// conflict turns a constraint failure into ErrConflict.
func conflict(err error) error {
	if isConflict(err) {
		return ErrConflict
	}
	return err
}

// notFound turns sql.ErrNoRows into ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// placeholders returns "?,?,?" for n arguments.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// nextPos advances and returns a named stream's position.
func (q Q) nextPos(ctx context.Context, stream string) (int64, error) {
	var pos int64
	err := q.queryRow(ctx, `INSERT INTO stream_positions(stream, pos) VALUES(?, 1)
		ON CONFLICT(stream) DO UPDATE SET pos = pos + 1 RETURNING pos`, stream).Scan(&pos)
	return pos, err
}

// StreamPos returns a named stream's current position.
func (q Q) StreamPos(ctx context.Context, stream string) (int64, error) {
	var pos int64
	err := q.queryRow(ctx, `SELECT pos FROM stream_positions WHERE stream = ?`, stream).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return pos, err
}

// RawRead runs one read-only query that returns a single row, for tests and
// operator tools that inspect the file.
func (db *DB) RawRead(ctx context.Context, query string, dest ...any) error {
	p, err := db.reader(ctx)
	if err != nil {
		return err
	}
	defer db.release(p)
	return p.conn.QueryRowContext(ctx, query).Scan(dest...)
}

// Snapshot writes a consistent copy of the database to path (which must not
// exist) while the server keeps serving: VACUUM INTO reads one snapshot on a
// connection of its own, so neither readers nor the writer wait for it.
func (db *DB) Snapshot(ctx context.Context, path string) error {
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(10000)")
	c, err := sql.Open("sqlite", "file:"+db.path+"?"+v.Encode())
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.ExecContext(ctx, "VACUUM INTO ?", path)
	return err
}
