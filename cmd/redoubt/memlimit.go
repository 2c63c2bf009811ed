package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// cgroupMemoryLimit is the memory limit of the cgroup the process runs in
// (a container's limit, a systemd unit's MemoryMax), or 0 when it has
// none or none can be read. root is /sys/fs/cgroup and procSelfCgroup
// /proc/self/cgroup outside tests.
func cgroupMemoryLimit(root, procSelfCgroup string) int64 {
	b, err := os.ReadFile(procSelfCgroup)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		// ID:CONTROLLERS:PATH. cgroup v2's one hierarchy is "0::PATH",
		// v1's memory controller has a hierarchy of its own. Inside a
		// container the path may name the host's group, which is not
		// mounted there: its own group is then the mount's root.
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var dir, file string
		switch {
		case parts[0] == "0" && parts[1] == "":
			dir, file = root, "memory.max"
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			dir, file = filepath.Join(root, "memory"), "memory.limit_in_bytes"
		default:
			continue
		}
		for _, d := range []string{filepath.Join(dir, parts[2]), dir} {
			if n := readLimit(filepath.Join(d, file)); n > 0 {
				return n
			}
		}
	}
	return 0
}

// readLimit reads a cgroup limit file: bytes, or "max" (v2) or a number
// near 2^63 (v1) for none, which are 0.
func readLimit(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n >= 1<<62 {
		return 0
	}
	return n
}
