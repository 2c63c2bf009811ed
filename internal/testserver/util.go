package testserver

import (
	"bytes"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"
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

// NullAt returns the path of the first null in a response, or "". Strict
// clients (matrix-nio, the Rust SDK) reject a null where the spec has a list
// or an object, so no response has one; event content is the sender's and
// is passed on as it came, so nulls there are not looked at. A member's
// unset avatar_url or display name is null, as Synapse sends it and the spec
// allows for an optional string.
func NullAt(r gjson.Result) string {
	var walk func(r gjson.Result, path string) string
	walk = func(r gjson.Result, path string) string {
		if r.Type == gjson.Null {
			return path
		}
		if !r.IsObject() && !r.IsArray() {
			return ""
		}
		found := ""
		r.ForEach(func(k, v gjson.Result) bool {
			key := k.String()
			if !r.IsArray() && (key == "content" || key == "prev_content") {
				return true
			}
			if !r.IsArray() && v.Type == gjson.Null && (key == "avatar_url" || key == "display_name") {
				return true
			}
			if r.IsArray() {
				key = "[]"
			}
			found = walk(v, path+"."+key)
			return found == ""
		})
		return found
	}
	return walk(r, "")
}

// InFiles reports whether the database file or its WAL holds s.
func (s *Server) InFiles(t testing.TB, str string) bool {
	t.Helper()
	return FileContains(t, s.Cfg.Database, str) || FileContains(t, s.Cfg.Database+"-wal", str)
}

// Forgotten fails the test unless, within a second, neither the database
// file nor its WAL holds s: what a redaction, an erasure or a retention
// pass removes must be gone from both that soon, with no help from the
// test.
func (s *Server) Forgotten(t testing.TB, str string) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); s.InFiles(t, str); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a second on, the database file or its WAL still holds %q", str)
		}
	}
}

// Txn is a fresh transaction ID.
func Txn() string { return randomTxn() }
