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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	conductor "github.com/mcp-conductor/conductor"
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

// NamedToken is one more static bearer token; its principal is
// "token:"+Name and its role Role (a key of HTTPOptions.Roles).
type NamedToken struct {
	Name, Token, Role string
}

// verifier checks bearer tokens: the static tokens in constant time, then
// JWTs when configured, and finds the caller's role. Details of a failure
// go to the log, never the caller.
type verifier struct {
	tokens   []staticToken
	jwt      *jwtVerifier
	roles    roleMap
	onReject func(reason string)
}

type staticToken struct {
	sum       [32]byte
	principal string
	role      *conductor.Role
}

// roleMap maps principals to roles (HTTPOptions.Roles and friends).
type roleMap struct {
	byName map[string]*conductor.Role
	names  []string // sorted: claims are tried in this order
	def    *conductor.Role
}

func newRoleMap(o HTTPOptions) (roleMap, error) {
	rm := roleMap{byName: map[string]*conductor.Role{}}
	for name, r := range o.Roles {
		r.Name = name
		rm.byName[name] = &r
		rm.names = append(rm.names, name)
	}
	slices.Sort(rm.names)
	var err error
	rm.def, err = rm.lookup("DefaultRole", o.DefaultRole)
	return rm, err
}

// lookup finds a role by name; "" is no role.
func (rm roleMap) lookup(field, name string) (*conductor.Role, error) {
	if name == "" {
		return nil, nil
	}
	r := rm.byName[name]
	if r == nil {
		return nil, fmt.Errorf("%s: no role named %q", field, name)
	}
	return r, nil
}

// orDefault is r, or the default role when r is nil.
func (rm roleMap) orDefault(r *conductor.Role) *conductor.Role {
	if r == nil {
		return rm.def
	}
	return r
}

// forClaims is the first role, by name, whose claims all match; else the
// default role. A claim matches when its value (a string, or any element of
// a list) is one of the role's values.
func (rm roleMap) forClaims(claims jwt.MapClaims) *conductor.Role {
	for _, name := range rm.names {
		r := rm.byName[name]
		if len(r.Claims) == 0 {
			continue
		}
		ok := true
		for claim, want := range r.Claims {
			if !claimMatches(claims[claim], want) {
				ok = false
				break
			}
		}
		if ok {
			return r
		}
	}
	return rm.def
}

func claimMatches(v any, want []string) bool {
	switch t := v.(type) {
	case string:
		return slices.Contains(want, t)
	case []any:
		for _, e := range t {
			if s, ok := e.(string); ok && slices.Contains(want, s) {
				return true
			}
		}
	case bool, float64:
		return slices.Contains(want, fmt.Sprint(t))
	}
	return false
}

// roleKey holds the caller's role in auth.TokenInfo.Extra.
const roleKey = "conductor.role"

// roleOf is the role the verifier found for a request's token; nil without
// auth, or when no role applies (the administrator's policy alone).
func roleOf(ti *auth.TokenInfo) *conductor.Role {
	if ti == nil {
		return nil
	}
	r, _ := ti.Extra[roleKey].(*conductor.Role)
	return r
}

// requestRole is the role of the caller of an MCP request.
func requestRole(extra *mcp.RequestExtra) *conductor.Role {
	if extra == nil {
		return nil
	}
	return roleOf(extra.TokenInfo)
}

func newVerifier(o HTTPOptions) (*verifier, error) {
	token, jo := o.Token, o.JWT
	rm, err := newRoleMap(o)
	if err != nil {
		return nil, err
	}
	v := &verifier{roles: rm}
	if token != "" {
		r, err := rm.lookup("TokenRole", o.TokenRole)
		if err != nil {
			return nil, err
		}
		v.tokens = append(v.tokens, staticToken{sum: sha256.Sum256([]byte(token)), principal: TokenPrincipal, role: rm.orDefault(r)})
	}
	for _, t := range o.Tokens {
		if t.Name == "" || t.Token == "" {
			return nil, errors.New("Tokens: a token needs a name and a value")
		}
		r, err := rm.lookup("Tokens["+t.Name+"].Role", t.Role)
		if err != nil {
			return nil, err
		}
		v.tokens = append(v.tokens, staticToken{sum: sha256.Sum256([]byte(t.Token)), principal: TokenPrincipal + ":" + t.Name, role: rm.orDefault(r)})
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

func (v *verifier) enabled() bool { return len(v.tokens) > 0 || v.jwt != nil }

// verify is an auth.TokenVerifier. The caller's role goes in Extra
// (roleOf).
func (v *verifier) verify(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
	sum := sha256.Sum256([]byte(token))
	var found *staticToken
	for i := range v.tokens { // compare with every token: no early exit
		if subtle.ConstantTimeCompare(sum[:], v.tokens[i].sum[:]) == 1 {
			found = &v.tokens[i]
		}
	}
	if found != nil {
		return &auth.TokenInfo{UserID: found.principal, Extra: map[string]any{roleKey: found.role}}, nil
	}
	if v.jwt != nil && strings.Count(token, ".") == 2 {
		claims, err := v.jwt.verify(ctx, token)
		if err == nil {
			sub, _ := claims.GetSubject()
			info := &auth.TokenInfo{UserID: "jwt:" + sub, Extra: map[string]any{"sub": sub, roleKey: v.roles.forClaims(claims)}}
			if exp, _ := claims.GetExpirationTime(); exp != nil {
				// The SDK checks expiry again; give it the leeway we allowed.
				info.Expiration = exp.Add(v.jwt.opts.Leeway)
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

func (j *jwtVerifier) verify(ctx context.Context, token string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return j.key(ctx, kid)
	}, jwt.WithValidMethods(jwtMethods), jwt.WithIssuer(j.opts.Issuer), jwt.WithAudience(j.opts.Audience),
		jwt.WithExpirationRequired(), jwt.WithLeeway(j.opts.Leeway))
	if err != nil {
		return nil, err
	}
	if sub, _ := claims.GetSubject(); sub == "" {
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
