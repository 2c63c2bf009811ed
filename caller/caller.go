// Package caller is who makes a request: the device an access token
// belongs to. The domain takes it to decide what the caller may do and
// see; httpapi finds it from the access token.
package caller

// Device is a user's logged-in device.
type Device struct {
	UserID   string
	DeviceID string
	IsAdmin  bool
}

// Connection is where a request came from: the client's address (as the
// trusted proxies report it) and user agent.
type Connection struct {
	IP, UserAgent string
}
