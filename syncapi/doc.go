// Package syncapi serves /sync and the ephemeral data it carries: typing,
// receipts, presence and notification counts. Every change a client syncs
// has a position in a stream; a sync token (streams.Token) is those
// positions.
package syncapi
