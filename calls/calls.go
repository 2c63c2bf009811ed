// Package calls is what group calls (MatrixRTC with a LiveKit SFU, as
// Element Call and Element X place them) need of the server: OpenID tokens,
// and the token service that turns one into a LiveKit access token for a
// member of the room (what element-hq's lk-jwt-service does beside
// Synapse), checked here without a federation request.
package calls

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	redoubtauth "github.com/redoubt-systems/redoubt/auth"
	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
)

// Store is the part of storage.Q calls use.
type Store interface {
	AddOpenIDToken(ctx context.Context, hash []byte, userID string, now, expires int64) error
	ExpiringCallMemberships(ctx context.Context) ([]storage.Event, error)
	Membership(ctx context.Context, roomID, userID string) (string, int64, error)
	OpenIDTokenUser(ctx context.Context, hash []byte, now int64) (string, error)
	User(ctx context.Context, userID string) (storage.User, error)
}

var _ Store = storage.Q{}

// OpenIDLifetime is how long an OpenID token is good for (Synapse's hour).
const OpenIDLifetime = time.Hour

// tokenLifetime is how long a LiveKit token lets its holder join.
const tokenLifetime = time.Hour

// Service issues OpenID tokens and LiveKit tokens.
type Service struct {
	Cfg *config.Config
	DB  storage.View[Store]
	Now func() time.Time
	// Client reaches the LiveKit server's API (to open a call's room).
	Client *http.Client
	// Rooms sends the leave of an expired call membership.
	Rooms *rooms.Service
	Log   *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}
}

// OpenIDToken is the answer of /openid/request_token.
type OpenIDToken struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	MatrixServerName string `json:"matrix_server_name"`
	ExpiresIn        int64  `json:"expires_in"`
}

// RequestOpenID makes an OpenID token for a user.
func (s *Service) RequestOpenID(ctx context.Context, userID string) (OpenIDToken, error) {
	token := "rdo_" + redoubtauth.RandomString(32)
	now := s.Now()
	err := s.DB.Write(ctx, func(q Store) error {
		return q.AddOpenIDToken(ctx, redoubtauth.HashToken(token), userID, now.UnixMilli(), now.Add(OpenIDLifetime).UnixMilli())
	})
	return OpenIDToken{AccessToken: token, TokenType: "Bearer", MatrixServerName: s.Cfg.ServerName,
		ExpiresIn: int64(OpenIDLifetime.Seconds())}, err
}

// Transports are the RTC foci clients are offered (MSC4143): the token
// service, if a LiveKit server is configured.
func (s *Service) Transports() []map[string]string {
	if !s.Cfg.Calls.Enabled() {
		return []map[string]string{}
	}
	return []map[string]string{{"type": "livekit", "livekit_service_url": s.Cfg.PublicBaseURL + ServicePath}}
}

// ServicePath is where the token service is served; Element Call appends
// /get_token or /sfu/get.
const ServicePath = "/_redoubt/livekit"

// The token service's refusals, as lk-jwt-service answers them.
var (
	ErrNotConfigured = &matrixerr.Error{Kind: matrixerr.KindNotFound, Code: "M_NOT_FOUND", Message: "calls are not configured on this server"}
	ErrBadOpenID     = &matrixerr.Error{Kind: matrixerr.KindUnauthorized, Code: "M_UNAUTHORIZED", Message: "the OpenID token is unknown, expired or not this server's"}
)

// Grant is a request for a LiveKit token: the OpenID token, the Matrix
// room, and who in it.
type Grant struct {
	OpenIDToken string
	ServerName  string
	RoomID      string
	DeviceID    string
	ClaimedUser string // get_token: the member's claimed user
	MemberID    string // get_token: the membership's ID
	SlotID      string // get_token
	// Legacy is the /sfu/get form: the room and device only.
	Legacy bool
}

// Answer is the token service's answer: where the LiveKit server is, and
// the token to join the call's room with.
type Answer struct {
	URL string `json:"url"`
	JWT string `json:"jwt"`
}

// Token checks a request for a LiveKit token and makes one: the OpenID
// token must be this server's and unexpired, its user joined to the room;
// the LiveKit room and identity are derived as lk-jwt-service derives
// them. A user allowed to start calls has the call's LiveKit room opened
// first; others may only join one under way.
func (s *Service) Token(ctx context.Context, g Grant) (Answer, error) {
	lk := s.Cfg.Calls.LiveKit
	if !s.Cfg.Calls.Enabled() {
		return Answer{}, ErrNotConfigured
	}
	if g.ServerName != s.Cfg.ServerName {
		return Answer{}, ErrBadOpenID
	}
	userID, err := s.DB.R().OpenIDTokenUser(ctx, redoubtauth.HashToken(g.OpenIDToken), s.Now().UnixMilli())
	if errors.Is(err, storage.ErrNotFound) {
		return Answer{}, ErrBadOpenID
	}
	if err != nil {
		return Answer{}, err
	}
	if g.ClaimedUser != "" && g.ClaimedUser != userID {
		return Answer{}, &matrixerr.Error{Kind: matrixerr.KindUnauthorized, Code: "M_UNAUTHORIZED", Message: "the member's user is not the OpenID token's"}
	}
	membership, _, err := s.DB.R().Membership(ctx, g.RoomID, userID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return Answer{}, err
	}
	if membership != "join" {
		return Answer{}, matrixerr.Forbidden("you are not in this room")
	}
	var room, identity string
	if g.Legacy {
		room, identity = hashOf(g.RoomID, "m.call#ROOM"), userID+":"+g.DeviceID
	} else {
		room, identity = hashOf(g.RoomID, g.SlotID), hashOf(userID, g.DeviceID, g.MemberID)
	}
	if s.mayStart(ctx, userID) {
		if err := s.openRoom(ctx, room); err != nil {
			return Answer{}, err
		}
	}
	jwt, err := s.accessToken(identity, tokenLifetime, videoGrant{RoomJoin: true, Room: room, CanPublish: new(true), CanSubscribe: new(true)})
	if err != nil {
		return Answer{}, err
	}
	return Answer{URL: lk.URL, JWT: jwt}, nil
}

// hashOf is lk-jwt-service's name for a LiveKit room or participant: the
// unpadded base64 of the SHA-256 of the parts as a JSON array.
func hashOf(parts ...string) string {
	b, _ := json.Marshal(parts)
	sum := sha256.Sum256(b)
	return base64.RawStdEncoding.EncodeToString(sum[:])
}

func (s *Service) mayStart(ctx context.Context, userID string) bool {
	if s.Cfg.Calls.StartCalls == "members" {
		return true
	}
	u, err := s.DB.R().User(ctx, userID)
	return err == nil && u.IsAdmin
}

// openRoom creates a call's LiveKit room if it is not there yet
// (RoomService.CreateRoom, as lk-jwt-service does for users who may start
// calls): emptied rooms close after five minutes.
func (s *Service) openRoom(ctx context.Context, room string) error {
	lk := s.Cfg.Calls.LiveKit
	jwt, err := s.accessToken("", time.Minute, videoGrant{RoomCreate: true})
	if err != nil {
		return err
	}
	api := strings.Replace(strings.Replace(lk.URL, "wss://", "https://", 1), "ws://", "http://", 1)
	body, _ := json.Marshal(map[string]any{"name": room, "empty_timeout": 300, "departure_timeout": 20})
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(api, "/")+"/twirp/livekit.RoomService/CreateRoom", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+jwt)
	res, err := s.Client.Do(req)
	if err != nil {
		return matrixerr.BadGateway("the LiveKit server cannot be reached: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return matrixerr.BadGateway("the LiveKit server refused to open the call's room: %d %s", res.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// videoGrant is what a LiveKit access token allows (LiveKit's "video"
// claim).
type videoGrant struct {
	RoomCreate   bool   `json:"roomCreate,omitempty"`
	RoomJoin     bool   `json:"roomJoin,omitempty"`
	Room         string `json:"room,omitempty"`
	CanPublish   *bool  `json:"canPublish,omitempty"`
	CanSubscribe *bool  `json:"canSubscribe,omitempty"`
}

// accessToken is a LiveKit access token: a JWT signed with the API
// secret (HS256), issued by the API key, for an identity. It is made with
// go-jose rather than livekit/protocol's auth package, whose protobuf
// types would add 15 MB to the binary for these few claims; the tests
// check the tokens against a real LiveKit server.
func (s *Service) accessToken(identity string, validity time.Duration, grant videoGrant) (string, error) {
	lk := s.Cfg.Calls.LiveKit
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(lk.APISecret)},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	now := s.Now()
	claims := map[string]any{"iss": lk.APIKey, "nbf": now.Unix(), "exp": now.Add(validity).Unix(), "video": grant}
	if identity != "" {
		claims["sub"] = identity
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}
