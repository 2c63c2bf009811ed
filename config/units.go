package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a Go duration that also accepts days: "90s", "15m", "12h", "30d".
type Duration time.Duration

// ParseDuration parses a Go duration or a whole number of days ("30d").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid duration %q (write e.g. 90s, 15m, 12h, 30d)", s)
	}
	return d, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a number of bytes, written plainly or with a unit: "65536", "64KiB", "100MiB", "1GiB", "10MB".
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// ParseSize parses a byte count with an optional unit.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q (write e.g. 65536, 64KiB, 100MiB)", s)
	}
	return n * mult, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = Size(v)
	return nil
}

// MemoryLimit is a size ("96MiB"), or a percentage ("80%") of the memory
// limit the process runs under: a container's, or a systemd unit's
// MemoryMax. A percentage follows that limit wherever it is set.
type MemoryLimit struct {
	Bytes   int64
	Percent int
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *MemoryLimit) UnmarshalYAML(n *yaml.Node) error {
	if pc, ok := strings.CutSuffix(strings.TrimSpace(n.Value), "%"); ok {
		p, err := strconv.Atoi(strings.TrimSpace(pc))
		if err != nil || p < 1 || p > 100 {
			return fmt.Errorf("line %d: invalid percentage %q (1%% to 100%%)", n.Line, n.Value)
		}
		*m = MemoryLimit{Percent: p}
		return nil
	}
	var size Size
	err := size.UnmarshalYAML(n)
	*m = MemoryLimit{Bytes: int64(size)}
	return err
}

// Of is the limit in bytes, given the memory limit the process runs under
// (0: none, when a percentage is of nothing).
func (m MemoryLimit) Of(limit int64) int64 {
	if m.Percent == 0 {
		return m.Bytes
	}
	return limit / 100 * int64(m.Percent)
}
