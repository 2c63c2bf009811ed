package auth

import (
	"strings"
	"testing"

	"github.com/redoubt-systems/redoubt/config"
)

// User IDs and localparts: whatever a client sends as a user name either
// resolves to a valid user ID of this server or is refused.
func FuzzResolveUser(f *testing.F) {
	for _, seed := range []string{"alice", "@alice:test.local", "@alice:elsewhere", "Alice", "", "@", "@:", "a b", "@alice:test.local:8448", strings.Repeat("a", 300), "ünï", "@x"} {
		f.Add(seed)
	}
	s := &Service{Cfg: &config.Config{ServerName: "test.local"}}
	f.Fuzz(func(t *testing.T, name string) {
		id, err := s.ResolveUser(name)
		if err != nil {
			return
		}
		if !strings.HasPrefix(id, "@") || !strings.HasSuffix(id, ":test.local") || len(id) > 255 {
			t.Fatalf("%q resolved to %q", name, id)
		}
		if again, err := s.ResolveUser(id); err != nil || again != id {
			t.Fatalf("%q resolved to %q, which resolves to %q (%v)", name, id, again, err)
		}
	})
}
