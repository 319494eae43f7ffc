package httpserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"github.com/tpflow/tpflow/internal/promreg"
)

// Role is what an authenticated caller may do. Each role may do what the
// ones below it may.
type Role int

// The roles, weakest first.
const (
	// RoleNone is no role: an unauthenticated caller.
	RoleNone Role = iota
	// RoleViewer reads: GET and HEAD.
	RoleViewer
	// RoleOperator also changes state: every other method.
	RoleOperator
	// RoleAdmin may do everything, including what RequireRole keeps to it.
	RoleAdmin
)

var roleNames = []string{"none", "viewer", "operator", "admin"}

// String returns the role's configuration name.
func (r Role) String() string {
	if r < 0 || int(r) >= len(roleNames) {
		return "Role(" + strconv.Itoa(int(r)) + ")"
	}
	return roleNames[r]
}

// ParseRole parses viewer, operator or admin.
func ParseRole(s string) (Role, error) {
	for i, n := range roleNames[1:] {
		if s == n {
			return Role(i + 1), nil
		}
	}
	return RoleNone, fmt.Errorf("must be viewer, operator or admin, got %q", s)
}

type principalKey struct{}

// Principal is who made a request.
type Principal struct {
	// Name is the user's or the token's configured name.
	Name string
	Role Role
}

// PrincipalFrom returns the caller of a request served behind an Auth:
// its name and role, or "" and RoleNone when authentication is off (then
// every request is served) or the path is open (/healthz).
func PrincipalFrom(ctx context.Context) (name string, role Role) {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p.Name, p.Role
}

// WithPrincipal returns ctx carrying p, for tests of handlers that call
// PrincipalFrom.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// RequireRole serves h only to callers with role at least min and answers
// the others 403 (401 when no one authenticated). Behind an Auth with
// authentication off, every request is served: the listener is open.
// Use it for routes that need more than their method's role (a GET that
// reveals secrets, an admin-only change).
func RequireRole(min Role, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := r.Context().Value(principalKey{}).(Principal)
		if ok && p.Role < min {
			refuse(w, http.StatusForbidden, fmt.Sprintf("%s (role %s) may not %s %s: it needs role %s", p.Name, p.Role, r.Method, r.URL.Path, min))
			return
		}
		if !ok && r.Context().Value(authOnKey{}) != nil {
			w.Header().Set("WWW-Authenticate", challenge)
			refuse(w, http.StatusUnauthorized, "authentication required")
			return
		}
		h.ServeHTTP(w, r)
	})
}

type authOnKey struct{}

const challenge = `Bearer realm="tpflow", Basic realm="tpflow", charset="UTF-8"`

// The reasons of tpflow_http_auth_failures_total.
const (
	reasonMissing   = "missing"   // no credentials
	reasonMalformed = "malformed" // an Authorization header of another scheme or broken
	reasonToken     = "bad_token"
	reasonPassword  = "bad_password"
	reasonCert      = "unknown_cert" // a verified client certificate of no configured name
	reasonRole      = "forbidden"    // authenticated with too weak a role
	reasonLimited   = "rate_limited"
)

// Auth authenticates and authorizes the requests of one listener. It is
// safe for concurrent use.
type Auth struct {
	on          bool
	openMetrics bool
	users       map[string]user
	tokens      []token
	certs       map[string]Role // by subject common name
	failures    *prometheus.CounterVec
	limiter     *failureLimiter

	bcrypt   chan struct{} // a slot per running bcrypt check
	mu       sync.Mutex
	verified map[[32]byte]string // sha256(user, password, hash) → user, of bcrypt checks that passed
}

type user struct {
	role Role
	hash []byte
}

type token struct {
	name string
	role Role
	hash [32]byte
}

// maxVerified bounds the cache of passed bcrypt checks.
const maxVerified = 1024

// maxBcrypt is how many bcrypt checks run at a time.
const maxBcrypt = 2

// NewAuth returns the Auth of a validated c, counting failures in
// tpflow_http_auth_failures_total{reason} of reg (nil registers none).
// now is the limiter's clock; nil is time.Now.
func NewAuth(c AuthConfig, reg prometheus.Registerer, now func() time.Time) (*Auth, error) {
	if now == nil {
		now = time.Now
	}
	a := &Auth{
		on: c.Enabled(), openMetrics: c.Metrics == MetricsOpen, users: map[string]user{}, certs: map[string]Role{},
		verified: map[[32]byte]string{}, bcrypt: make(chan struct{}, maxBcrypt),
		limiter: newFailureLimiter(c.MaxFailures, c.FailureWindow, now),
	}
	for _, u := range c.Users {
		r, err := ParseRole(u.Role)
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", u.Name, err)
		}
		a.users[u.Name] = user{role: r, hash: []byte(u.PasswordBcrypt.Reveal())}
	}
	for _, t := range c.Tokens {
		r, err := ParseRole(t.Role)
		if err != nil {
			return nil, fmt.Errorf("token %s: %w", t.Name, err)
		}
		tk := token{name: t.Name, role: r}
		if t.SHA256 != "" {
			b, err := hex.DecodeString(t.SHA256.Reveal())
			if err != nil || len(b) != len(tk.hash) {
				return nil, fmt.Errorf("token %s: sha256 is not 64 hexadecimal digits", t.Name)
			}
			copy(tk.hash[:], b)
		} else {
			tk.hash = sha256.Sum256([]byte(t.Token.Reveal()))
		}
		a.tokens = append(a.tokens, tk)
	}
	for _, cc := range c.ClientCerts {
		r, err := ParseRole(cc.Role)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s: %w", cc.CommonName, err)
		}
		a.certs[cc.CommonName] = r
	}
	a.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tpflow_http_auth_failures_total",
		Help: "Requests refused by the HTTP authentication, by reason: missing, malformed, bad_token, bad_password, unknown_cert, forbidden (too weak a role), rate_limited (the client address failed too often).",
	}, []string{"reason"})
	for _, r := range []string{reasonMissing, reasonMalformed, reasonToken, reasonPassword, reasonCert, reasonRole, reasonLimited} {
		a.failures.WithLabelValues(r)
	}
	var err error
	if a.failures, err = promreg.Register(reg, a.failures); err != nil {
		return nil, fmt.Errorf("cannot register the authentication metrics: %w", err)
	}
	return a, nil
}

// Enabled reports whether requests must authenticate.
func (a *Auth) Enabled() bool { return a != nil && a.on }

// Wrap returns h behind the authentication: /healthz is always served;
// /metrics and /readyz need a viewer unless the configuration opens them;
// GET and HEAD need a viewer, every other method an operator. A caller
// authenticates with a bearer token, basic auth or, sending neither, a
// client certificate verified by the listener's TLS. A caller
// with no or wrong credentials is answered 401, one with too weak a role
// 403, and a client address past its failures (wrong credentials; none
// at all is no guess and does not count) 429 with Retry-After.
// With authentication off, h is returned as it is.
func (a *Auth) Wrap(h http.Handler) http.Handler {
	if !a.Enabled() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if open(r, a.openMetrics) {
			h.ServeHTTP(w, r)
			return
		}
		ip := clientIP(r)
		if wait := a.limiter.blocked(ip); wait > 0 {
			a.failures.WithLabelValues(reasonLimited).Inc()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			refuse(w, http.StatusTooManyRequests, "too many failed authentications from "+ip+"; retry later")
			return
		}
		p, reason := a.authenticate(r)
		if reason != "" {
			a.failures.WithLabelValues(reason).Inc()
			if reason != reasonMissing {
				// Only wrong credentials are guesses; a client that sent
				// none (a browser's first request, a probe) is not.
				a.limiter.fail(ip)
			}
			w.Header().Set("WWW-Authenticate", challenge)
			refuse(w, http.StatusUnauthorized, map[string]string{
				reasonMissing:   "authentication required: send Authorization: Bearer TOKEN, basic auth or a client certificate",
				reasonMalformed: "the Authorization header is malformed: want Bearer TOKEN or Basic credentials",
				reasonToken:     "the bearer token is not valid",
				reasonPassword:  "the user name or password is not valid",
				reasonCert:      "the client certificate's common name has no role",
			}[reason])
			return
		}
		need := RoleViewer
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			need = RoleOperator
		}
		if p.Role < need {
			a.failures.WithLabelValues(reasonRole).Inc()
			refuse(w, http.StatusForbidden, fmt.Sprintf("%s (role %s) may not %s %s: it needs role %s", p.Name, p.Role, r.Method, r.URL.Path, need))
			return
		}
		ctx := context.WithValue(WithPrincipal(r.Context(), p), authOnKey{}, true)
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// open reports whether r is served without authentication.
func open(r *http.Request, openMetrics bool) bool {
	switch r.URL.Path {
	case "/healthz":
		return true
	case "/metrics", "/readyz":
		return openMetrics
	}
	return false
}

// authenticate returns the caller of r, or the reason it is not one.
func (a *Auth) authenticate(r *http.Request) (Principal, string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return a.certPrincipal(r)
	}
	scheme, cred, _ := strings.Cut(h, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		cred = strings.TrimSpace(cred)
		if cred == "" {
			return Principal{}, reasonMalformed
		}
		sum := sha256.Sum256([]byte(cred))
		found := -1
		// Compare with every token, in constant time each, so that
		// neither a token's bytes nor its position shows in the time.
		for i := range a.tokens {
			if subtle.ConstantTimeCompare(sum[:], a.tokens[i].hash[:]) == 1 {
				found = i
			}
		}
		if found < 0 {
			return Principal{}, reasonToken
		}
		return Principal{Name: a.tokens[found].name, Role: a.tokens[found].role}, ""
	case strings.EqualFold(scheme, "Basic"):
		name, pass, ok := r.BasicAuth()
		if !ok {
			return Principal{}, reasonMalformed
		}
		u, known := a.users[name]
		if !a.checkPassword(r.Context(), name, pass, u, known) {
			return Principal{}, reasonPassword
		}
		return Principal{Name: name, Role: u.role}, ""
	}
	return Principal{}, reasonMalformed
}

// certPrincipal is the holder of r's verified client certificate.
func (a *Auth) certPrincipal(r *http.Request) (Principal, string) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return Principal{}, reasonMissing
	}
	cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
	role, ok := a.certs[cn]
	if !ok {
		return Principal{}, reasonCert
	}
	return Principal{Name: cn, Role: role}, ""
}

// dummyHash is compared with the password of an unknown user, so that an
// unknown name takes as long as a wrong password. It is made at first
// use: making it costs as much as a check.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("tpflow-no-such-user"), bcrypt.DefaultCost)
	return h
})

// checkPassword checks pass against u's bcrypt hash. A bcrypt check takes
// tens of milliseconds, so one that passed is remembered by the SHA-256
// of name, password and hash (a scraper authenticates every 15 s); a
// changed password or hash misses the cache.
//
// At most maxBcrypt checks run at a time, so that wrong passwords from
// many addresses cannot take every core; the others wait, for as long as
// their request lasts.
func (a *Auth) checkPassword(ctx context.Context, name, pass string, u user, known bool) bool {
	k := sha256.Sum256([]byte(name + "\x00" + pass + "\x00" + string(u.hash)))
	a.mu.Lock()
	_, hit := a.verified[k]
	a.mu.Unlock()
	if hit && known {
		return true
	}
	select {
	case a.bcrypt <- struct{}{}:
		defer func() { <-a.bcrypt }()
	case <-ctx.Done():
		return false
	}
	if !known {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(pass))
		return false
	}
	if bcrypt.CompareHashAndPassword(u.hash, []byte(pass)) != nil {
		return false
	}
	a.mu.Lock()
	if len(a.verified) >= maxVerified {
		clear(a.verified)
	}
	a.verified[k] = name
	a.mu.Unlock()
	return true
}

// clientIP is the address the request came from. Headers such as
// X-Forwarded-For are not trusted: anyone can send them.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func refuse(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

// failureLimiter lets each client address fail n times in a burst,
// refilled evenly over a window, and keeps at most maxClients addresses:
// when full, the addresses back to a full burst are forgotten, and if none
// is, the new ones share one limiter (overflow).
type failureLimiter struct {
	mu       sync.Mutex
	now      func() time.Time
	limit    rate.Limit
	burst    int
	clients  map[string]*rate.Limiter
	overflow *rate.Limiter
}

const maxClients = 4096

func newFailureLimiter(n int, window time.Duration, now func() time.Time) *failureLimiter {
	n = max(n, 1)
	if window <= 0 {
		window = time.Minute
	}
	lim := rate.Limit(float64(n) / window.Seconds())
	return &failureLimiter{now: now, limit: lim, burst: n, clients: map[string]*rate.Limiter{}, overflow: rate.NewLimiter(lim, n)}
}

// limiter returns the limiter of ip, making one when create; nil when
// ip has none and create is false.
func (l *failureLimiter) limiter(ip string, now time.Time, create bool) *rate.Limiter {
	if c := l.clients[ip]; c != nil {
		return c
	}
	if len(l.clients) >= maxClients && create {
		for k, v := range l.clients {
			if v.TokensAt(now) >= float64(l.burst) {
				delete(l.clients, k)
			}
		}
	}
	if len(l.clients) >= maxClients {
		return l.overflow
	}
	if !create {
		return nil
	}
	c := rate.NewLimiter(l.limit, l.burst)
	l.clients[ip] = c
	return c
}

// blocked returns how long ip must wait before it may try again; 0 when
// it may now.
func (l *failureLimiter) blocked(ip string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	c := l.limiter(ip, now, false)
	if c == nil {
		return 0
	}
	if tokens := c.TokensAt(now); tokens < 1 {
		return time.Duration((1 - tokens) / float64(l.limit) * float64(time.Second))
	}
	return 0
}

// fail records a failed authentication of ip.
func (l *failureLimiter) fail(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.limiter(ip, now, true).AllowN(now, 1)
}
