package testserver

import (
	"bytes"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

var txnCounter atomic.Int64

func randomTxn() string { return "txn" + strconv.FormatInt(txnCounter.Add(1), 10) }

// PathEscape escapes an ID for a path segment (room IDs may contain '/').
func PathEscape(s string) string { return url.PathEscape(s) }

// Esc escapes an ID for use as one component of a gjson path.
func Esc(s string) string { return strings.NewReplacer(".", `\.`, "*", `\*`, "?", `\?`).Replace(s) }

// FileContains reports whether a file (absent counts as empty) holds s.
func FileContains(t testing.TB, path, s string) bool {
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
