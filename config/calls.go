package config

import (
	"net/url"
)

// Calls are group calls (MatrixRTC, Element Call): a LiveKit server
// beside Redoubt, and the token service that lets members into it.
type Calls struct {
	LiveKit LiveKit `yaml:"livekit"`
	// StartCalls is who may start a call (open its LiveKit room):
	// "members" (anyone joined to the Matrix room, the default) or
	// "admins" (the server's admins). Others join calls already started.
	StartCalls string `yaml:"start_calls"`
}

// LiveKit is the LiveKit server calls use.
type LiveKit struct {
	// URL is the LiveKit server's WebSocket URL as clients reach it
	// (wss://livekit.example.org). Empty: no calls.
	URL           string `yaml:"url"`
	APIKey        string `yaml:"api_key"`
	APISecret     string `yaml:"api_secret"`
	APISecretFile string `yaml:"api_secret_file"`
}

// Enabled reports whether calls are configured.
func (c Calls) Enabled() bool { return c.LiveKit.URL != "" }

func (c *Calls) validate(bad func(key, format string, args ...any)) {
	switch c.StartCalls {
	case "":
		c.StartCalls = "members"
	case "members", "admins":
	default:
		bad("calls.start_calls", "%q is not one of members, admins", c.StartCalls)
	}
	lk := &c.LiveKit
	secretFromFile(bad, "calls.livekit.api_secret_file", lk.APISecretFile, &lk.APISecret)
	if lk.URL == "" {
		return
	}
	if u, err := url.Parse(lk.URL); err != nil || (u.Scheme != "wss" && u.Scheme != "ws") || u.Host == "" {
		bad("calls.livekit.url", "%q is not a ws:// or wss:// URL", lk.URL)
	}
	if lk.APIKey == "" || lk.APISecret == "" {
		bad("calls.livekit.api_key", "a LiveKit URL needs its API key and secret")
	}
}
