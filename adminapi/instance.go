package adminapi

import (
	"net/http"
	"time"

	"github.com/redoubt-systems/redoubt/backup"
	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// GET /_redoubt/admin/v1/summary
func (a *API) summary(r *http.Request, _ *httpapi.Device) httpapi.Response {
	q := a.DB.R()
	c, err := q.InstanceCounts(r.Context())
	if err != nil {
		return httpapi.Fail(err)
	}
	lastPrune, err := q.InstanceState(r.Context(), "last_prune_ts")
	if err != nil {
		return httpapi.Fail(err)
	}
	lastBackup, err := q.InstanceState(r.Context(), "last_backup_ts")
	if err != nil {
		return httpapi.Fail(err)
	}
	destinations := []map[string]any{}
	for _, d := range a.Cfg.Backup.Destinations {
		ts, err := q.InstanceState(r.Context(), backup.DestinationState(d.Name))
		if err != nil {
			return httpapi.Fail(err)
		}
		dest := map[string]any{"name": d.Name, "url": d.URL, "last_backup_ts": nullableTS(ts), "replication_lag_ms": nil}
		if lag, ok := a.lag(d.Name); ok {
			dest["replication_lag_ms"] = lag.Milliseconds()
		}
		destinations = append(destinations, dest)
	}
	ms := func(d config.Duration) any {
		if d == 0 {
			return nil
		}
		return d.D().Milliseconds()
	}
	ret := a.Cfg.Retention
	return httpapi.OK(map[string]any{
		"server_name": a.Cfg.ServerName, "server_version": config.Version,
		"users": c.Users, "rooms": c.Rooms, "events": c.Events,
		"media":          map[string]any{"count": c.Media, "bytes": c.MediaBytes},
		"database_bytes": c.DatabaseBytes,
		"retention": map[string]any{"default_max_lifetime": ms(ret.DefaultMaxLifetime), "min_lifetime": ms(ret.MinLifetime),
			"max_lifetime": ms(ret.MaxLifetime), "media_max_lifetime": ms(ret.MediaMaxLifetime)},
		"last_prune_ts": nullableTS(lastPrune), "last_backup_ts": nullableTS(lastBackup),
		"backup_destinations": destinations,
	})
}

func (a *API) lag(dest string) (time.Duration, bool) {
	if a.ReplicationLag == nil {
		return 0, false
	}
	return a.ReplicationLag(dest)
}

// GET /_redoubt/admin/v1/audit
func (a *API) audit(r *http.Request, _ *httpapi.Device) httpapi.Response {
	from, limit, err := page(r, 100)
	if err != nil {
		return httpapi.Fail(err)
	}
	entries, total, err := a.DB.R().Audit(r.Context(), from, limit)
	if err != nil {
		return httpapi.Fail(err)
	}
	if entries == nil {
		entries = []storage.AuditEntry{}
	}
	body := map[string]any{"entries": entries, "total": total}
	nextToken(body, from, len(entries), total)
	return httpapi.OK(body)
}

// GET /_synapse/admin/v1/event_reports
func (a *API) eventReports(r *http.Request, _ *httpapi.Device) httpapi.Response {
	from, limit, err := page(r, 100)
	if err != nil {
		return httpapi.Fail(err)
	}
	reports, total, err := a.DB.R().EventReports(r.Context(), from, limit)
	if err != nil {
		return httpapi.Fail(err)
	}
	body := map[string]any{"event_reports": reports, "total": total}
	nextToken(body, from, len(reports), total)
	return httpapi.OK(body)
}
