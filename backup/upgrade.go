package backup

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/objectstore"
	"github.com/redoubt-systems/redoubt/storage"
)

// BeforeUpgrade returns what storage calls before a newer binary migrates
// the schema: a snapshot of the database as the older one left it, sent to
// every destination (backup.before_upgrade), so an upgrade that goes wrong
// can be undone by restoring it with the older binary. Without
// destinations, or switched off, it does nothing. If no destination takes
// the snapshot, the start fails with nothing migrated: an upgrade waits
// for its backup rather than running without one.
func BeforeUpgrade(cfg *config.Config, stores []*objectstore.Store, log *slog.Logger, now func() time.Time) storage.BeforeMigrating {
	if len(stores) == 0 || !cfg.Backup.BeforeUpgrade {
		return nil
	}
	return func(ctx context.Context, db *storage.DB, from, to int) error {
		log.Info("backup before upgrade: sending a snapshot before migrating", "schema_from", from, "schema_to", to)
		t, err := Take(ctx, cfg, db, "", stores, now())
		for _, s := range t.Sent {
			if s.Err != nil {
				log.Error("backup before upgrade: a destination failed", "destination", s.Store.Name, "err", s.Err)
				continue
			}
			log.Info("backup before upgrade: sent", "destination", s.Store.Name, "snapshot", s.Snapshot)
		}
		if err != nil {
			return fmt.Errorf("schema %d to %d: no backup before migrating (start again when a destination answers, or set backup.before_upgrade: false): %w", from, to, err)
		}
		return nil
	}
}
