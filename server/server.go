// Package server wires one Redoubt instance together: the database, the
// services and the HTTP routes. main and the tests both start servers
// through it, so tests run the real thing.
package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/redoubt-systems/redoubt/adminapi"
	"github.com/redoubt-systems/redoubt/auth"
	"github.com/redoubt-systems/redoubt/backup"
	"github.com/redoubt-systems/redoubt/calls"
	"github.com/redoubt-systems/redoubt/clientapi"
	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/delayed"
	"github.com/redoubt-systems/redoubt/directory"
	"github.com/redoubt-systems/redoubt/e2ekeys"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/media"
	"github.com/redoubt-systems/redoubt/mediaapi"
	"github.com/redoubt-systems/redoubt/metrics"
	"github.com/redoubt-systems/redoubt/notifier"
	"github.com/redoubt-systems/redoubt/oauthserver"
	"github.com/redoubt-systems/redoubt/objectstore"
	"github.com/redoubt-systems/redoubt/push"
	"github.com/redoubt-systems/redoubt/pushapi"
	"github.com/redoubt-systems/redoubt/ratelimit"
	"github.com/redoubt-systems/redoubt/retention"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/sso"
	"github.com/redoubt-systems/redoubt/storage"
	"github.com/redoubt-systems/redoubt/syncapi"
	"github.com/redoubt-systems/redoubt/threads"
)

// Server is one running instance.
type Server struct {
	Cfg   *config.Config
	DB    *storage.DB
	Auth  *auth.Service
	Rooms *rooms.Service
	Sync  *syncapi.Service
	// Retention prunes what has outlived its lifetime; serve runs it.
	Retention *retention.Service
	// Backups are the scheduled backups (backup.interval).
	Backups *backup.Scheduler
	// Replicator ships the database's changes to the destinations
	// (backup.continuous); nil without destinations.
	Replicator *backup.Replicator
	// Admin is the admin API, also behind the command line's admin commands.
	Admin *adminapi.API
	// Gateway sends push notifications (tests shorten its retries).
	Gateway *push.Gateway
	// Metrics are the Prometheus series; serve exposes them when asked.
	Metrics *metrics.Metrics
	// Media keeps the media bytes (exports read them).
	Media *media.Store
	Log   *slog.Logger
	// Notifier wakes waiting /sync requests after each commit.
	Notifier *notifier.Notifier
	// Delayed sends the events clients scheduled (MSC4140); serve starts
	// it, so that a command line tool opening the database sends nothing.
	Delayed *delayed.Service
	// Calls ends expired call memberships; serve starts it.
	Calls *calls.Service

	handler http.Handler
	router  *mux.Router
}

// Options are what a caller may set besides the configuration.
type Options struct {
	Log *slog.Logger
	// Now is the clock; tests may replace it.
	Now func() time.Time
	// BesideServer opens the instance for a command while a server serves
	// it (redoubt user add, an export job): nothing the server is in the
	// middle of is recovered (uploads), and no migration runs under it.
	BesideServer bool
}

// New opens the instance's database and builds its services and routes.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Server, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	stores, err := objectstore.OpenAll(cfg.Backup.Destinations)
	if err != nil {
		return nil, err
	}
	var beforeMigrating storage.BeforeMigrating
	if opts.BesideServer {
		beforeMigrating = func(_ context.Context, _ *storage.DB, from, to int) error {
			return fmt.Errorf("the server serving this instance runs schema %d; this binary would migrate it to %d under it: run the command with the server's binary, or stop the server first", from, to)
		}
	} else {
		beforeMigrating = backup.BeforeUpgrade(cfg, stores, opts.Log, opts.Now)
	}
	db, err := storage.OpenUpgrading(ctx, cfg.Database, beforeMigrating)
	if err != nil {
		return nil, err
	}
	var keyID string
	var seed []byte
	err = db.Write(ctx, func(q storage.Q) error {
		keyID, seed, err = q.ServerKey(ctx, func() (string, []byte, int64) {
			s := make([]byte, ed25519.SeedSize)
			_, _ = rand.Read(s)
			return "ed25519:" + rooms.RandomID(6), s, opts.Now().UnixMilli()
		})
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Server{Cfg: cfg, DB: db, Log: opts.Log, Notifier: notifier.New()}
	s.Metrics = metrics.New(func() float64 { return float64(s.Notifier.Waiting()) }, func() float64 { return float64(db.QueueDepth()) })
	db.OnCommit = s.Metrics.Commit
	rules := push.NewRules(cfg.Push.ThreadSubscriptions)
	s.Auth = &auth.Service{DB: storage.View[auth.Store]{DB: db}, Cfg: cfg, Now: opts.Now}
	s.Rooms = &rooms.Service{
		DB: db, ServerName: spec.ServerName(cfg.ServerName), KeyID: gomatrixserverlib.KeyID(keyID),
		Key: ed25519.NewKeyFromSeed(seed), DefaultVersion: cfg.Rooms.DefaultVersion, Now: opts.Now,
	}
	s.Sync = &syncapi.Service{Cfg: cfg, DB: storage.View[syncapi.Store]{DB: db}, Rooms: s.Rooms, Notifier: s.Notifier, Typing: syncapi.NewTyping(opts.Now()), Now: opts.Now}
	gateway := &push.Gateway{Cfg: cfg, DB: storage.View[push.Store]{DB: db}, Log: opts.Log, Now: opts.Now}
	if err := gateway.Load(ctx); err != nil {
		db.Close()
		return nil, err
	}
	// What follows an event (rooms/commit.go). Inside its transaction, push
	// rules decide whom it notifies, so the counts commit with it (storage
	// indexes it for search and relations as it stores it). After the
	// commit, in order: waiting syncs wake, then notifications go to push
	// gateways.
	s.Rooms.InTransaction = []rooms.InTransaction{rules}
	s.Rooms.AfterCommit = []rooms.Reactor{s.Sync, gateway}
	keys := &e2ekeys.Service{DB: storage.View[e2ekeys.Store]{DB: db}, Auth: s.Auth, Notifier: s.Notifier, Now: opts.Now}
	s.Auth.OnDevicesDeleted = keys.WakeDeviceListChange
	s.Sync.Typing.OnChange = s.Sync.OnRoomChange

	h := &httpapi.API{Log: opts.Log, Auth: s.Auth, MaxBody: int64(cfg.Limits.MaxRequestBody), Observe: s.Metrics.Request}
	if cfg.RateLimits.Enabled {
		h.Limit = limit(&ratelimit.Limiter{Rules: cfg.RateLimits.Rules, Now: opts.Now}, db)
		s.Auth.Backoff = &ratelimit.Backoff{Free: 5, Base: time.Second, Max: 15 * time.Minute, Now: opts.Now}
	}
	router := h.NewRouter()
	store := &media.Store{Cfg: cfg, DB: storage.View[media.Chunks]{DB: db}}
	mediaAPI := &mediaapi.Service{Cfg: cfg, DB: storage.View[mediaapi.Store]{DB: db}, Now: opts.Now, Store: store}
	s.Retention = &retention.Service{Cfg: cfg, DB: storage.View[retention.Store]{DB: db}, Rooms: s.Rooms, Media: store, Now: opts.Now, Log: opts.Log,
		OnPrune: func(st retention.Stats, err error) { s.Metrics.Prune(st.Events, st.Media, st.Connections, err) }}
	s.Backups = &backup.Scheduler{Cfg: cfg, DB: db, Stores: stores, Log: opts.Log, Now: opts.Now, Done: s.Metrics.Backup, Sent: s.Metrics.BackupSent}
	if cfg.Backup.Continuous && len(stores) > 0 {
		s.Replicator = &backup.Replicator{Cfg: cfg, DB: db, Stores: stores, Log: opts.Log, Now: opts.Now, Shipped: s.Metrics.ReplicationLag}
		store.OnFile = s.Replicator.MediaStored
	}
	s.Delayed = &delayed.Service{Cfg: cfg, DB: storage.View[delayed.Store]{DB: db}, Rooms: s.Rooms, Log: opts.Log, Now: opts.Now}
	s.Calls = &calls.Service{Cfg: cfg, DB: storage.View[calls.Store]{DB: db}, Rooms: s.Rooms, Log: opts.Log, Now: opts.Now,
		Client: &http.Client{Timeout: 15 * time.Second}}
	signIn := &sso.Service{DB: storage.View[sso.Store]{DB: db}, Cfg: cfg, Auth: s.Auth, Now: opts.Now, Log: opts.Log,
		Client: &http.Client{Timeout: 15 * time.Second}}
	for _, p := range cfg.SSO.Providers {
		if p.CheckAtRefresh > 0 { // else a refresh has nothing to ask
			s.Auth.Recheck = signIn.Recheck
		}
	}
	(&clientapi.API{Cfg: cfg, DB: storage.View[clientapi.Store]{DB: db}, Auth: s.Auth, Rooms: s.Rooms, Notifier: s.Notifier, Erase: s.Retention.EraseUser,
		Delayed: s.Delayed, Threads: &threads.Service{DB: storage.View[threads.Store]{DB: db}, Rooms: s.Rooms, Notifier: s.Notifier},
		SSO:   signIn,
		Calls: s.Calls,
	}).Register(router, h)
	if cfg.SSO.OAuthAPI {
		oauth := &oauthserver.Server{Cfg: cfg, DB: storage.View[oauthserver.Store]{DB: db}, Auth: s.Auth, SSO: signIn, Now: opts.Now, Log: opts.Log}
		if err := oauth.Start(ctx); err != nil {
			db.Close()
			return nil, err
		}
		oauth.Register(router, h)
	}
	s.Sync.Register(router, h)
	keys.Register(router, h)
	(&pushapi.API{DB: storage.View[push.RuleStore]{DB: db}, Rules: rules, Notifier: s.Notifier}).Register(router, h)
	(&pushapi.Pushers{Gateway: gateway}).Register(router, h)
	s.Gateway = gateway
	if !opts.BesideServer {
		if err := mediaAPI.RecoverUploads(ctx); err != nil {
			db.Close()
			return nil, err
		}
	}
	upload := &httpapi.API{Log: opts.Log, Auth: s.Auth, MaxBody: int64(cfg.Media.MaxUploadSize), Limit: h.Limit, Observe: s.Metrics.Request}
	mediaAPI.Register(router, h, upload)
	(&directory.API{Cfg: cfg, DB: storage.View[directory.Store]{DB: db}}).Register(router, h)
	s.Admin = &adminapi.API{Cfg: cfg, DB: storage.View[adminapi.Store]{DB: db}, Auth: s.Auth, Rooms: s.Rooms, Media: store, Retention: s.Retention,
		Notifier: s.Notifier, Now: opts.Now, Log: opts.Log, ReplicationLag: s.Replicator.Lag}
	s.Media = store
	s.Admin.Register(router, h)
	httpapi.Routes{R: router, API: h}.Public("/health", s.health, "GET")
	var trusted []*net.IPNet
	for _, c := range cfg.TrustedProxies {
		if _, n, err := net.ParseCIDR(c); err == nil {
			trusted = append(trusted, n)
		}
	}
	handler := limitHeaders(realIP(trusted, httpapi.CORS(r0Paths(router))))
	if cfg.TLS.Enabled() {
		handler = hsts(handler)
	}
	s.handler, s.router = handler, router
	return s, nil
}

// Router is the route table, for tests that walk every route.
func (s *Server) Router() *mux.Router { return s.router }

// Handler is the instance's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Start starts the instance's background work, which serve runs and
// command line tools opening the database do not: the pruner, scheduled
// backups, delayed events, the end of expired call memberships and push
// delivery. Close stops them.
func (s *Server) Start(ctx context.Context) {
	if s.Replicator != nil {
		if err := s.Replicator.Start(ctx); err != nil {
			s.Admin.Log.Error("continuous backup did not start", "error", err)
		}
	}
	s.Retention.Start(ctx)
	s.Backups.Start(ctx)
	s.Delayed.Start(ctx)
	s.Calls.Start(ctx)
	s.Gateway.Start(ctx)
}

// Close stops the background work in the reverse order of Start (each a
// no-op if not started), waits for admin exports, then closes the
// database.
func (s *Server) Close() error {
	s.Gateway.Close()
	s.Calls.Close()
	s.Delayed.Close()
	s.Backups.Close()
	s.Retention.Close()
	s.Admin.Close()
	s.Replicator.Close() // after every writer, so that it ships their last commits
	return s.DB.Close()
}
