package e2e

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func fileContains(t *testing.T, path, s string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, []byte(s))
}

// esc escapes an ID for use as a gjson path component.
func esc(s string) string { return strings.NewReplacer(".", `\.`, "*", `\*`, "?", `\?`).Replace(s) }
