package testserver

import (
	"net/url"
	"strconv"
	"sync/atomic"
)

var txnCounter atomic.Int64

func randomTxn() string { return "txn" + strconv.FormatInt(txnCounter.Add(1), 10) }

// PathEscape escapes an ID for a path segment (room IDs may contain '/').
func PathEscape(s string) string { return url.PathEscape(s) }
