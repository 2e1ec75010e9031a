package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/modelcontextprotocol/go-sdk/auth"
)

// TokenPrincipal is the principal of a caller that presented the static
// bearer token (http.token / MCP_CONDUCTOR_HTTP_TOKEN).
const TokenPrincipal = "token"

// JWTOptions turn on OAuth 2.1 resource-server mode: bearer tokens that are
// JWTs signed by Issuer's keys (JWKS), for Audience, unexpired. The principal
// is "jwt:" + the token's sub claim.
type JWTOptions struct {
	// Issuer is the authorization server (iss claim). Its keys come from
	// JWKSURL, or from the jwks_uri of Issuer/.well-known/openid-configuration
	// (then Issuer/.well-known/oauth-authorization-server).
	Issuer   string
	Audience string
	JWKSURL  string
	// Client fetches discovery and keys; nil means a client with a 10 s timeout.
	Client *http.Client
	// Leeway tolerated on exp/nbf; 0 means 30 s.
	Leeway time.Duration
}

// errUnauthorized is all a rejected caller learns.
var errUnauthorized = fmt.Errorf("%w", auth.ErrInvalidToken)

// verifier checks bearer tokens: the static token in constant time, then
// JWTs when configured. Details of a failure go to the log, never the caller.
type verifier struct {
	tokenSum [32]byte
	hasToken bool
	jwt      *jwtVerifier
	onReject func(reason string)
}

func newVerifier(token string, jo *JWTOptions) (*verifier, error) {
	v := &verifier{}
	if token != "" {
		v.tokenSum = sha256.Sum256([]byte(token))
		v.hasToken = true
	}
	if jo != nil && jo.Issuer != "" {
		if jo.Audience == "" {
			return nil, errors.New("http.jwt: audience is required with an issuer")
		}
		v.jwt = &jwtVerifier{opts: *jo}
		if v.jwt.opts.Client == nil {
			v.jwt.opts.Client = &http.Client{Timeout: 10 * time.Second}
		}
		if v.jwt.opts.Leeway == 0 {
			v.jwt.opts.Leeway = 30 * time.Second
		}
	}
	return v, nil
}

func (v *verifier) enabled() bool { return v.hasToken || v.jwt != nil }

// verify is an auth.TokenVerifier.
func (v *verifier) verify(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
	if v.hasToken {
		sum := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(sum[:], v.tokenSum[:]) == 1 {
			return &auth.TokenInfo{UserID: TokenPrincipal}, nil
		}
	}
	if v.jwt != nil && strings.Count(token, ".") == 2 {
		claims, err := v.jwt.verify(ctx, token)
		if err == nil {
			info := &auth.TokenInfo{UserID: "jwt:" + claims.Subject, Extra: map[string]any{"sub": claims.Subject}}
			if claims.ExpiresAt != nil {
				// The SDK checks expiry again; give it the leeway we allowed.
				info.Expiration = claims.ExpiresAt.Add(v.jwt.opts.Leeway)
			}
			return info, nil
		}
	}
	if v.onReject != nil {
		v.onReject("unauthorized")
	}
	return nil, errUnauthorized
}

// middleware requires a valid bearer token; a failure is a bare 401.
func (v *verifier) middleware(next http.Handler) http.Handler {
	if !v.enabled() {
		return next
	}
	h := auth.RequireBearerToken(v.verify, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := strings.Fields(r.Header.Get("Authorization")); len(f) != 2 || !strings.EqualFold(f[0], "bearer") {
			if v.onReject != nil {
				v.onReject("unauthorized")
			}
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// principal is who made the request: the token's principal, or "" without auth.
func principal(r *http.Request) string {
	if ti := auth.TokenInfoFromContext(r.Context()); ti != nil {
		return ti.UserID
	}
	return ""
}

// jwtVerifier validates JWT access tokens against the issuer's JWKS, which
// it fetches on first use and again (at most every 30 s) when a token names
// an unknown key id.
type jwtVerifier struct {
	opts JWTOptions

	mu      sync.Mutex
	keys    map[string]crypto.PublicKey
	fetched time.Time
}

var jwtMethods = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}

func (j *jwtVerifier) verify(ctx context.Context, token string) (*jwt.RegisteredClaims, error) {
	claims := &jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return j.key(ctx, kid)
	}, jwt.WithValidMethods(jwtMethods), jwt.WithIssuer(j.opts.Issuer), jwt.WithAudience(j.opts.Audience),
		jwt.WithExpirationRequired(), jwt.WithLeeway(j.opts.Leeway))
	if err != nil {
		return nil, err
	}
	if claims.Subject == "" {
		return nil, errors.New("jwt: no sub claim")
	}
	return claims, nil
}

func (j *jwtVerifier) key(ctx context.Context, kid string) (crypto.PublicKey, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if k := j.pick(kid); k != nil {
		return k, nil
	}
	if !j.fetched.IsZero() && time.Since(j.fetched) < 30*time.Second {
		return nil, errors.New("jwt: unknown key")
	}
	keys, err := j.fetch(ctx)
	j.fetched = time.Now()
	if err != nil {
		return nil, err
	}
	j.keys = keys
	if k := j.pick(kid); k != nil {
		return k, nil
	}
	return nil, errors.New("jwt: unknown key")
}

// pick returns the key kid, or the only key when the token names none.
func (j *jwtVerifier) pick(kid string) crypto.PublicKey {
	if kid == "" && len(j.keys) == 1 {
		for _, k := range j.keys {
			return k
		}
	}
	return j.keys[kid]
}

func (j *jwtVerifier) fetch(ctx context.Context) (map[string]crypto.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	uri := j.opts.JWKSURL
	if uri == "" {
		base := strings.TrimRight(j.opts.Issuer, "/")
		for _, p := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
			var meta struct {
				JWKSURI string `json:"jwks_uri"`
			}
			if err := getJSON(ctx, j.opts.Client, base+p, &meta); err == nil && meta.JWKSURI != "" {
				uri = meta.JWKSURI
				break
			}
		}
		if uri == "" {
			return nil, errors.New("jwt: issuer metadata has no jwks_uri")
		}
	}
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			N   string `json:"n"`
			E   string `json:"e"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if err := getJSON(ctx, j.opts.Client, uri, &set); err != nil {
		return nil, err
	}
	keys := map[string]crypto.PublicKey{}
	b64 := base64.RawURLEncoding
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		switch k.Kty {
		case "RSA":
			n, err1 := b64.DecodeString(k.N)
			e, err2 := b64.DecodeString(k.E)
			if err1 != nil || err2 != nil || len(e) > 4 {
				continue
			}
			pk := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
			if pk.N.BitLen() < 2048 {
				continue
			}
			keys[k.Kid] = pk
		case "EC":
			var curve elliptic.Curve
			switch k.Crv {
			case "P-256":
				curve = elliptic.P256()
			case "P-384":
				curve = elliptic.P384()
			case "P-521":
				curve = elliptic.P521()
			default:
				continue
			}
			x, err1 := b64.DecodeString(k.X)
			y, err2 := b64.DecodeString(k.Y)
			if err1 != nil || err2 != nil {
				continue
			}
			pk := &ecdsa.PublicKey{Curve: curve, X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
			if !curve.IsOnCurve(pk.X, pk.Y) { //nolint:staticcheck // validating untrusted JWKS input
				continue
			}
			keys[k.Kid] = pk
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("jwt: JWKS has no usable signing key")
	}
	return keys, nil
}

func getJSON(ctx context.Context, c *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}
