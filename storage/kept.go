package storage

import "sync"

// maxKept bounds each kind of thing kept in memory: past it they are all
// dropped and read again as they are used.
const maxKept = 16384

// kept holds values read from the file, all at one value of a counter
// that triggers move whenever any of them could change (an epoch, in
// instance_state). A reader reads the counter in its snapshot and takes a
// value only if it was read at the same count; so what it takes is what
// its snapshot holds, whichever process wrote last.
type kept[V any] struct {
	mu    sync.Mutex
	epoch int64
	byKey map[string]V
}

// get returns the value read at epoch, if kept.
func (k *kept[V]) get(key string, epoch int64) (V, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.byKey[key]
	return v, ok && k.epoch == epoch
}

// put keeps a value read at epoch, dropping every value read at another.
func (k *kept[V]) put(key string, epoch int64, v V) {
	if epoch < 0 { // the counter's row is missing: keep nothing
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if epoch < k.epoch && k.byKey != nil {
		return // read before a change the kept values have seen: the counter only grows
	}
	if epoch != k.epoch || k.byKey == nil || len(k.byKey) >= maxKept {
		k.epoch, k.byKey = epoch, map[string]V{}
	}
	k.byKey[key] = v
}

// read returns the value kept at epoch, else what read returns, kept if
// read succeeds.
func (k *kept[V]) read(key string, epoch int64, read func() (V, error)) (V, error) {
	if v, ok := k.get(key, epoch); ok {
		return v, nil
	}
	v, err := read()
	if err == nil {
		k.put(key, epoch, v)
	}
	return v, err
}

// forget drops a value, so that the next reader reads it afresh.
func (k *kept[V]) forget(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.byKey, key)
}

// syncEpochKey, in instance_state, moves whenever one-time keys, fallback
// keys or global account data change (migration 026).
const syncEpochKey = "sync_epoch"
