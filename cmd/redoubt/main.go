// Command redoubt is a single-tenant Matrix homeserver: one process, one
// SQLite file, no federation. `redoubt help` lists its commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/netutil"
	"golang.org/x/term"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/internal/instancelock"
	"github.com/redoubt-systems/redoubt/logfile"
	"github.com/redoubt-systems/redoubt/server"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "redoubt:", err)
		os.Exit(1)
	}
}

// usage lists the commands, for redoubt help.
const usage = `redoubt is a single-tenant Matrix homeserver.

  redoubt [serve] [--config FILE]     serve the Client-Server API and the admin panel (/admin)
  redoubt user add|list|deactivate|reset-password ...   manage users (redoubt user for details)
  redoubt token create|list|delete ...                  registration tokens
  redoubt backup --config FILE --to DIR|- [--recipient age1...]
  redoubt restore --from FILE|DESTINATION --identity KEYFILE --data DIR [--force|--if-empty]
  redoubt verify --config FILE        integrity and foreign-key checks
  redoubt export --config FILE --out FILE.tar.zst|--to DESTINATION [--user @alice:server] [--include-secrets]
  redoubt health --config FILE        for container health checks
  redoubt destroy --config FILE --confirm SERVER_NAME
  redoubt help                        this list

Without --config the embedded defaults apply: http://127.0.0.1:8008, ./redoubt.db.
`

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "help", "-h", "-help", "--help":
			fmt.Fprint(stdout, usage)
			return nil
		}
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "serve":
			return serve(args[1:], stderr)
		case "user":
			return userCmd(args[1:], stdout)
		case "token":
			return tokenCmd(args[1:], stdout)
		case "destroy":
			return destroy(args[1:], stdout)
		case "backup":
			return backupCmd(args[1:], stdout)
		case "restore":
			return restoreCmd(args[1:], stdout)
		case "verify":
			return verifyCmd(args[1:], stdout)
		case "export":
			return exportCmd(args[1:], stdout)
		case "health":
			return healthCmd(args[1:], stdout)
		default:
			return fmt.Errorf("unknown command %q (redoubt help lists them)", args[0])
		}
	}
	return serve(args, stderr)
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		cfg := config.Default()
		return cfg, cfg.Validate()
	}
	return config.Load(path)
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(args []string, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return serveUntil(ctx, args, stderr)
}

// serveUntil serves until ctx ends (a signal, or a test), then shuts down.
func serveUntil(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration file (YAML); embedded defaults when not given")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	// One server per instance: a second would write the same file with
	// caches and a notifier of its own. Released last, after the database
	// has closed.
	lock, err := instancelock.Acquire(cfg.Database)
	if err != nil {
		return err
	}
	defer lock.Release()
	logTo := stderr
	if cfg.Log.File != "" {
		f, err := logfile.Open(cfg.Log.File, cfg.Log.MaxAge.D(), time.Now)
		if err != nil {
			return err
		}
		defer f.Close()
		logTo = f
	}
	log := newLogger(cfg, logTo)
	// A soft limit for the Go heap: the collector works harder near it
	// rather than letting the heap double between collections. GOMEMLIMIT,
	// when set, wins.
	if os.Getenv("GOMEMLIMIT") == "" {
		limit := cfg.Limits.Memory.Of(cgroupMemoryLimit("/sys/fs/cgroup", "/proc/self/cgroup"))
		if limit > 0 {
			debug.SetMemoryLimit(limit)
		}
		log.Info("memory", "heap_soft_limit_bytes", limit)
	}
	srv, err := server.New(ctx, cfg, server.Options{Log: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	// Exports started through the admin API before a stop are not
	// finished business: their archives go (shredded).
	if err := srv.Admin.ClearExports(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	ln = netutil.LimitListener(ln, cfg.Limits.MaxConnections)
	// Requests run under a context that shutdown cancels: waiting
	// long-polls return at once (writes ignore cancellation and finish).
	baseCtx, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	httpSrv := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: server.ReadHeaderBytes, BaseContext: func(net.Listener) context.Context { return baseCtx }}
	httpSrv.RegisterOnShutdown(cancelRequests)
	log.Info("redoubt serving", "server_name", cfg.ServerName, "listen", ln.Addr().String(), "database", cfg.Database)
	if n, err := srv.DB.R().CountUsers(ctx); err == nil && n == 0 {
		fmt.Fprint(stderr, firstStartHint(os.Args[0], *cfgPath, cfg))
	}
	// The pruner, scheduled backups, delayed events and push delivery;
	// srv.Close (deferred above) stops them before the database closes.
	srv.Start(context.WithoutCancel(ctx))
	if cfg.Metrics.Listen != "" {
		// A listener of its own, so /metrics is never public by accident.
		mux := http.NewServeMux()
		mux.Handle("/metrics", srv.Metrics.Handler())
		metricsSrv := &http.Server{Addr: cfg.Metrics.Listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := metricsSrv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics listener failed", "err", err)
			}
		}()
		defer metricsSrv.Close()
	}
	stopTLS := make(chan struct{})
	defer close(stopTLS)
	tc, err := tlsConfig(cfg, log, stopTLS)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	if tc != nil {
		httpSrv.TLSConfig = tc
		go func() { errc <- httpSrv.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- httpSrv.Serve(ln) }()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout.D())
	defer cancel()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// firstStartHint tells how to create the first admin, in the form the
// server was started in (a binary, or go run), and where to log in.
func firstStartHint(argv0, cfgPath string, cfg *config.Config) string {
	cmd := "redoubt"
	if strings.Contains(filepath.ToSlash(argv0), "/go-build") {
		cmd = "go run ./cmd/redoubt"
	}
	if cfgPath != "" {
		cfgPath = " --config " + cfgPath
	}
	return fmt.Sprintf("\nNo users yet. Create the first admin with:\n  %s user add NAME --admin%s\nthen log in to the admin panel at %s/admin\n\n",
		cmd, cfgPath, cfg.PublicBaseURL)
}

func readPassword(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
		return strings.TrimRight(string(b), "\r\n"), err
	}
	fmt.Fprint(os.Stderr, "Password: ")
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	return string(b), err
}
