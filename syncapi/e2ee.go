package syncapi

import (
	"context"
	"encoding/json"

	"github.com/redoubt-systems/redoubt/devicelists"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// The to-device and device-list streams: to-device messages, whose device
// lists changed, and the one-time key counts.

// toDeviceLimit bounds the to-device messages of one response; the rest
// follow in the next.
const toDeviceLimit = 100

// ackToDevice deletes the messages a device received before its token: the
// token proves the client has them, so they are never delivered twice and
// kept until then, across restarts too. Sliding sync calls it; /sync reads
// the same in its response's snapshot (builder.pending).
func (s *Service) ackToDevice(ctx context.Context, dev *httpapi.Device, upTo int64) error {
	pending, err := s.DB.R().HasToDeviceUpTo(ctx, dev.UserID, dev.DeviceID, upTo)
	if err != nil || !pending {
		return err
	}
	return s.deleteToDevice(ctx, dev, upTo)
}

// deleteToDevice deletes a device's messages up to a position.
func (s *Service) deleteToDevice(ctx context.Context, dev *httpapi.Device, upTo int64) error {
	return s.DB.Write(ctx, func(q Store) error {
		return q.DeleteToDeviceUpTo(ctx, dev.UserID, dev.DeviceID, upTo)
	})
}

// e2ee fills the encryption streams: to-device messages, device list
// changes and the device's key counts.
func (b *builder) e2ee() error {
	var msgs []storage.ToDevice
	if b.since.ToDevice < b.to.ToDevice {
		var err error
		if msgs, err = b.q.ToDeviceFor(b.ctx, b.dev.UserID, b.dev.DeviceID, b.since.ToDevice, b.to.ToDevice, toDeviceLimit); err != nil {
			return err
		}
	}
	if len(msgs) == toDeviceLimit {
		b.to.ToDevice = msgs[len(msgs)-1].Pos
	}
	for _, m := range msgs {
		ev, _ := json.Marshal(map[string]any{"type": m.Type, "sender": m.Sender, "content": json.RawMessage(m.Content)})
		b.res.ToDevice.Events = append(b.res.ToDevice.Events, ev)
		b.empty = false
	}
	if !b.initial() && (b.since.DeviceLists < b.to.DeviceLists || b.since.Events < b.to.Events) {
		changed, left, err := devicelists.Delta(b.ctx, b.q, b.dev.UserID, b.since, b.to)
		if err != nil {
			return err
		}
		if len(changed) > 0 || len(left) > 0 {
			b.res.DeviceLists = &deviceLists{Changed: changed, Left: left}
			b.empty = false
		}
	}
	counts, fallback, err := b.q.DeviceKeyCounts(b.ctx, b.dev.UserID, b.dev.DeviceID)
	if err != nil {
		return err
	}
	if _, ok := counts["signed_curve25519"]; !ok {
		counts["signed_curve25519"] = 0
	}
	b.res.OTKCounts, b.res.UnusedFallbackKey = counts, fallback
	return nil
}
