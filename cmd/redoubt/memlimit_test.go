package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCgroupMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cgroup string            // /proc/self/cgroup
		files  map[string]string // under the cgroup root
		want   int64
	}{
		{"v2 container: its group is the root", "0::/\n", map[string]string{"memory.max": "536870912\n"}, 512 << 20},
		{"v2 systemd unit", "0::/system.slice/redoubt@acme.service\n",
			map[string]string{"system.slice/redoubt@acme.service/memory.max": "1073741824\n", "memory.max": "max\n"}, 1 << 30},
		{"v2 host path not mounted in the container", "0::/kubepods/pod1/abc\n", map[string]string{"memory.max": "268435456\n"}, 256 << 20},
		{"v2 no limit", "0::/\n", map[string]string{"memory.max": "max\n"}, 0},
		{"v1 memory controller", "4:memory:/docker/abc\n0::/\n",
			map[string]string{"memory/docker/abc/memory.limit_in_bytes": "402653184\n"}, 384 << 20},
		{"v1 no limit", "4:memory:/\n", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0},
		{"nothing readable", "", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, body := range tc.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			self := filepath.Join(t.TempDir(), "cgroup")
			if err := os.WriteFile(self, []byte(tc.cgroup), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := cgroupMemoryLimit(root, self); got != tc.want {
				t.Errorf("limit = %d, want %d", got, tc.want)
			}
		})
	}
}
