package httpserver

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/internal/testkit"
)

const (
	viewerToken   = "viewer-token-0123456789abcdef"
	operatorToken = "operator-token-0123456789abcdef"
	adminToken    = "admin-token-0123456789abcdef"
)

func sha(s string) config.Secret {
	sum := sha256.Sum256([]byte(s))
	return config.Secret(hex.EncodeToString(sum[:]))
}

// testAuthConfig has a viewer token given by its hash, an operator token
// given as itself, an admin token and a basic-auth viewer "prom" with
// password "scrape".
func testAuthConfig(t *testing.T) AuthConfig {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("scrape"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultAuthConfig()
	c.Users = []UserConfig{{Name: "prom", Role: "viewer", PasswordBcrypt: config.Secret(hash)}}
	c.Tokens = []TokenConfig{
		{Name: "grafana", Role: "viewer", SHA256: sha(viewerToken)},
		{Name: "deployer", Role: "operator", Token: operatorToken},
		{Name: "root", Role: "admin", SHA256: sha(adminToken)},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// roleEcho answers with the caller PrincipalFrom gives.
var roleEcho = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	name, role := PrincipalFrom(r.Context())
	io.WriteString(w, name+" "+role.String())
})

func authHandler(t *testing.T, c AuthConfig, reg prometheus.Registerer, now func() time.Time) http.Handler {
	t.Helper()
	a, err := NewAuth(c, reg, now)
	if err != nil {
		t.Fatal(err)
	}
	return Handler(Options{Gatherer: prometheus.NewRegistry(), Auth: a, Routes: []Route{
		{Pattern: "GET /api/v1/x", Handler: roleEcho},
		{Pattern: "POST /api/v1/x", Handler: roleEcho},
		{Pattern: "GET /api/v1/secret", Handler: RequireRole(RoleAdmin, roleEcho)},
	}})
}

type cred func(*http.Request)

func bearer(tok string) cred {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}
func basic(u, p string) cred { return func(r *http.Request) { r.SetBasicAuth(u, p) } }

func do(h http.Handler, method, path, ip string, c cred) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	req.RemoteAddr = ip + ":40000"
	if c != nil {
		c(req)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestAuthPolicy checks who may do what: /healthz is open, everything else
// needs credentials; a viewer reads but cannot change; an operator
// changes; RequireRole keeps a route to admins.
func TestAuthPolicy(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := authHandler(t, testAuthConfig(t), reg, nil)
	for i, c := range []struct {
		method, path string
		cred         cred
		code         int
		body         string
	}{
		{"GET", "/healthz", nil, 200, "ok"},
		{"GET", "/metrics", nil, 401, "authentication required"},
		{"GET", "/readyz", nil, 401, ""},
		{"GET", "/api/v1/x", nil, 401, ""},
		{"GET", "/no/such/path", nil, 401, ""},
		{"POST", "/api/v1/x", nil, 401, ""},
		{"GET", "/metrics", bearer(viewerToken), 200, ""},
		{"GET", "/readyz", bearer(viewerToken), 200, "ready"},
		{"GET", "/api/v1/x", bearer(viewerToken), 200, "grafana viewer"},
		{"HEAD", "/api/v1/x", bearer(viewerToken), 200, ""},
		{"POST", "/api/v1/x", bearer(viewerToken), 403, "grafana (role viewer) may not POST /api/v1/x: it needs role operator"},
		{"DELETE", "/api/v1/x", bearer(viewerToken), 403, ""},
		{"POST", "/api/v1/x", bearer(operatorToken), 200, "deployer operator"},
		{"GET", "/api/v1/secret", bearer(operatorToken), 403, "needs role admin"},
		{"GET", "/api/v1/secret", bearer(adminToken), 200, "root admin"},
		{"POST", "/api/v1/x", bearer(adminToken), 200, "root admin"},
		{"GET", "/api/v1/x", bearer(viewerToken + "x"), 401, "bearer token is not valid"},
		{"GET", "/api/v1/x", bearer(hex.EncodeToString([]byte(sha(viewerToken)))), 401, ""},
		{"GET", "/api/v1/x", bearer(string(sha(viewerToken))), 401, ""}, // the hash is not the token
		{"GET", "/api/v1/x", basic("prom", "scrape"), 200, "prom viewer"},
		{"GET", "/api/v1/x", basic("prom", "scrape"), 200, "prom viewer"}, // from the cache
		{"GET", "/api/v1/x", basic("prom", "wrong"), 401, "user name or password is not valid"},
		{"GET", "/api/v1/x", basic("nobody", "scrape"), 401, ""},
		{"POST", "/api/v1/x", basic("prom", "scrape"), 403, ""},
		{"GET", "/api/v1/x", func(r *http.Request) { r.Header.Set("Authorization", "Digest x") }, 401, "malformed: want Bearer TOKEN or Basic"},
		{"GET", "/api/v1/x", func(r *http.Request) { r.Header.Set("Authorization", "Basic !!!") }, 401, ""},
		{"GET", "/api/v1/x", func(r *http.Request) { r.Header.Set("Authorization", "Bearer  ") }, 401, "malformed: want Bearer TOKEN or Basic"},
	} {
		// Each case from its own address: the failures must not add up to
		// the rate limit here.
		rec := do(h, c.method, c.path, "10.0.0."+string(rune('0'+i%10))+string(rune('0'+i/10)), c.cred)
		if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.body) {
			t.Errorf("case %d: %s %s = %d %q, want %d with %q", i, c.method, c.path, rec.Code, rec.Body.String(), c.code, c.body)
		}
		if rec.Code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("case %d: 401 without WWW-Authenticate", i)
		}
	}
	for reason, want := range map[string]float64{"missing": 5, "bad_token": 3, "bad_password": 2, "malformed": 3, "forbidden": 3, "rate_limited": 0} {
		if got := testkit.Metric(t, reg, "tpflow_http_auth_failures_total", map[string]string{"reason": reason}); got != want {
			t.Errorf("tpflow_http_auth_failures_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}

// TestAuthOpenMetrics checks metrics: open: /metrics and /readyz are served
// to anyone, the rest still needs credentials.
func TestAuthOpenMetrics(t *testing.T) {
	c := testAuthConfig(t)
	c.Metrics = MetricsOpen
	h := authHandler(t, c, nil, nil)
	for path, want := range map[string]int{"/metrics": 200, "/readyz": 200, "/healthz": 200, "/api/v1/x": 401} {
		if rec := do(h, "GET", path, "10.0.0.1", nil); rec.Code != want {
			t.Errorf("GET %s = %d, want %d", path, rec.Code, want)
		}
	}
}

// TestAuthOff checks that without users and tokens every request is
// served and RequireRole lets it through.
func TestAuthOff(t *testing.T) {
	h := authHandler(t, DefaultAuthConfig(), nil, nil)
	for _, path := range []string{"/metrics", "/api/v1/x", "/api/v1/secret"} {
		if rec := do(h, "GET", path, "10.0.0.1", nil); rec.Code != 200 {
			t.Errorf("GET %s without auth configured = %d, want 200", path, rec.Code)
		}
	}
}

// TestAuthFailuresRateLimited makes one address send wrong credentials
// max_failures times (after requests without any, which do not count):
// the next request from it is answered 429 with Retry-After even with a
// good token, another address is still served, and after Retry-After the
// address may try again.
func TestAuthFailuresRateLimited(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1700000000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	reg := prometheus.NewRegistry()
	h := authHandler(t, testAuthConfig(t), reg, clock) // 10 per minute
	for range 20 {                                     // requests without credentials guess nothing
		if rec := do(h, "GET", "/api/v1/x", "192.0.2.7", nil); rec.Code != 401 {
			t.Fatalf("without credentials = %d, want 401", rec.Code)
		}
	}
	for i := range 10 {
		if rec := do(h, "GET", "/api/v1/x", "192.0.2.7", bearer("guess"+string(rune('a'+i)))); rec.Code != 401 {
			t.Fatalf("guess %d = %d, want 401", i, rec.Code)
		}
	}
	rec := do(h, "GET", "/api/v1/x", "192.0.2.7", bearer(viewerToken))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "6" {
		t.Fatalf("after 10 failures: %d Retry-After %q, want 429 with Retry-After 6 (a minute / 10)", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := do(h, "GET", "/healthz", "192.0.2.7", nil); rec.Code != 200 {
		t.Errorf("/healthz of a limited address = %d, want 200", rec.Code)
	}
	if rec := do(h, "GET", "/api/v1/x", "192.0.2.8", bearer(viewerToken)); rec.Code != 200 {
		t.Errorf("another address = %d, want 200", rec.Code)
	}
	mu.Lock()
	now = now.Add(6 * time.Second)
	mu.Unlock()
	if rec := do(h, "GET", "/api/v1/x", "192.0.2.7", bearer(viewerToken)); rec.Code != 200 {
		t.Errorf("after Retry-After: %d, want 200", rec.Code)
	}
	if got := testkit.Metric(t, reg, "tpflow_http_auth_failures_total", map[string]string{"reason": "rate_limited"}); got != 1 {
		t.Errorf("rate_limited = %v, want 1", got)
	}
}

// TestFailureLimiterBounded fills the address table: it never grows past
// maxClients, new addresses then share one limiter, and once the old
// addresses have refilled they make room again.
func TestFailureLimiterBounded(t *testing.T) {
	now := time.Unix(1700000000, 0)
	l := newFailureLimiter(2, time.Minute, func() time.Time { return now })
	for i := range maxClients + 1 { // the last one into the overflow limiter
		l.fail(net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)).String())
	}
	if n := len(l.clients); n > maxClients {
		t.Fatalf("%d addresses kept, want at most %d", n, maxClients)
	}
	if l.blocked("10.200.0.1") != 0 {
		t.Fatal("a new address is blocked before the overflow limiter is spent")
	}
	l.fail("10.200.0.2")
	if l.blocked("10.200.0.3") == 0 {
		t.Fatal("new addresses past the table do not share the overflow limiter")
	}
	now = now.Add(time.Minute)
	l.fail("10.200.0.4")
	if _, ok := l.clients["10.200.0.4"]; !ok || len(l.clients) != 1 {
		t.Fatalf("after the old addresses refilled: %d kept, new one kept %v; want only the new one", len(l.clients), ok)
	}
}

// TestRequireRoleOutsideAuth checks RequireRole's answer when a handler
// is served under an Auth that is on but the request skipped it (an open
// path) and when the principal is set directly.
func TestRequireRoleOutsideAuth(t *testing.T) {
	h := RequireRole(RoleOperator, roleEcho)
	req := httptest.NewRequest("GET", "/x", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req.WithContext(WithPrincipal(req.Context(), Principal{Name: "v", Role: RoleViewer})))
	if rec.Code != 403 {
		t.Errorf("viewer on an operator route = %d, want 403", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req.WithContext(WithPrincipal(req.Context(), Principal{Name: "o", Role: RoleOperator})))
	if rec.Code != 200 || rec.Body.String() != "o operator" {
		t.Errorf("operator = %d %q", rec.Code, rec.Body.String())
	}
}

func TestParseRole(t *testing.T) {
	for s, want := range map[string]Role{"viewer": RoleViewer, "operator": RoleOperator, "admin": RoleAdmin} {
		if r, err := ParseRole(s); err != nil || r != want || r.String() != s {
			t.Errorf("ParseRole(%q) = %v, %v", s, r, err)
		}
	}
	for _, s := range []string{"", "none", "Admin", "root"} {
		if _, err := ParseRole(s); err == nil {
			t.Errorf("ParseRole(%q) accepted", s)
		}
	}
}

// TestAuthConfigValidate checks every refused value and its message.
func TestAuthConfigValidate(t *testing.T) {
	good := testAuthConfig(t)
	checkValidate(t, func() AuthConfig {
		c := good
		c.Users = append([]UserConfig(nil), good.Users...)
		c.Tokens = append([]TokenConfig(nil), good.Tokens...)
		return c
	}, DefaultAuthConfig(), []validateCase[AuthConfig]{
		{func(c *AuthConfig) { c.Metrics = "public" }, `metrics: must be authenticated or open, got "public"`},
		{func(c *AuthConfig) { c.MaxFailures = 0 }, "max_failures: must be at least 1"},
		{func(c *AuthConfig) { c.FailureWindow = 0 }, "failure_window: must be positive"},
		{func(c *AuthConfig) { c.Users[0].Name = "" }, "users[0].name: is required"},
		{func(c *AuthConfig) { c.Users[0].Name = "a:b" }, "users[0].name: \"a:b\" must not hold a colon"},
		{func(c *AuthConfig) { c.Tokens[0].Name = "prom" }, `tokens[0].name: "prom" is given twice`},
		{func(c *AuthConfig) { c.Users[0].Role = "root" }, `users[0].role: must be viewer, operator or admin, got "root"`},
		{func(c *AuthConfig) { c.Users[0].PasswordBcrypt = "plain" }, "users[0].password_bcrypt: is not a bcrypt hash"},
		{func(c *AuthConfig) { c.Users[0].PasswordBcrypt = "" }, "users[0].password_bcrypt: is required"},
		{func(c *AuthConfig) { c.Tokens[0].SHA256 = "abc" }, "tokens[0].sha256: must be 64 hexadecimal digits"},
		{func(c *AuthConfig) { c.Tokens[0].SHA256 = sha("") }, "tokens[0].sha256: is the SHA-256 of an empty token"},
		{func(c *AuthConfig) { c.Tokens[0].Token = "x" }, "tokens[0]: give the token's sha256 (sha256, sha256_file) or the token itself"},
		{func(c *AuthConfig) { c.Tokens[1].Token = "" }, "tokens[1]: give the token's sha256"},
		{func(c *AuthConfig) { c.Tokens[1].Token = "short" }, "tokens[1].token: is 5 characters long, want at least 16"},
		{func(c *AuthConfig) { c.Tokens[2].Role = "" }, "tokens[2].role: must be viewer"},
	})
}

// validateCase is an edit of a valid configuration and the error text
// Validate must then give.
type validateCase[C any] struct {
	edit func(*C)
	want string
}

// checkValidate applies each case to a fresh valid configuration and
// checks Validate's error, and that the defaults are valid.
func checkValidate[C interface{ Validate() error }](t *testing.T, fresh func() C, defaults C, cases []validateCase[C]) {
	t.Helper()
	for _, c := range cases {
		v := fresh()
		c.edit(&v)
		if err := v.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate() = %v, want %q", err, c.want)
		}
	}
	if err := defaults.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// TestTLSClientCertificates serves with RequireAndVerifyClientCert: a
// client with a certificate of the CA is served, one without is refused
// at the handshake, and plain HTTP gets no answer.
func TestTLSClientCertificates(t *testing.T) {
	f := testkit.WriteTLS(t, t.TempDir(), "tpflow test client")
	c := DefaultTLSConfig()
	c.CertFile, c.KeyFile, c.ClientCAFile, c.ClientAuthType = f.ServerCert, f.ServerKey, f.CA, "RequireAndVerifyClientCert"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	url := serveTLS(t, c, nil)
	get := func(cfg *tls.Config) (*http.Response, error) {
		cl := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
		return cl.Get("https://" + url + "/healthz")
	}
	resp, err := get(f.ClientConfig(t, true))
	if err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("with a client certificate: %d %+v", resp.StatusCode, resp.TLS)
	}
	if _, err := get(f.ClientConfig(t, false)); err == nil {
		t.Error("a client without a certificate was served")
	}
	old := f.ClientConfig(t, true)
	old.MaxVersion = tls.VersionTLS11
	if _, err := get(old); err == nil {
		t.Error("a TLS 1.1 client was served")
	}
	if resp, err := http.Get("http://" + url + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Error("plain HTTP served on the TLS listener")
	}
}

// serveTLS serves h (nil: Handler(Options{})) with the TLS of c on a
// loopback port until the test ends, and returns its address.
func serveTLS(t *testing.T, c TLSConfig, h http.Handler) string {
	t.Helper()
	if h == nil {
		h = Handler(Options{})
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := TLSListener(l, c)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(h)
	srv.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	go srv.Serve(tl)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// TestTLSConfigValidate checks every refused value and its message.
func TestTLSConfigValidate(t *testing.T) {
	dir := t.TempDir()
	f := testkit.WriteTLS(t, dir, "tpflow test client")
	checkValidate(t, func() TLSConfig {
		c := DefaultTLSConfig()
		c.CertFile, c.KeyFile, c.ClientCAFile = f.ServerCert, f.ServerKey, f.CA
		return c
	}, DefaultTLSConfig(), []validateCase[TLSConfig]{
		{func(c *TLSConfig) { c.KeyFile = "" }, "key_file: is required with cert_file"},
		{func(c *TLSConfig) { c.CertFile = "" }, "key_file: needs cert_file"},
		{func(c *TLSConfig) { c.KeyFile = f.ClientKey }, "cert_file: cannot load the certificate " + f.ServerCert + " with key " + f.ClientKey},
		{func(c *TLSConfig) { c.CertFile = dir + "/none.crt" }, "no such file"},
		{func(c *TLSConfig) { c.ClientAuthType = "Require" }, `client_auth_type: must be NoClientCert`},
		{func(c *TLSConfig) { c.ClientAuthType, c.ClientCAFile = "RequireAndVerifyClientCert", "" }, "client_ca_file: is required with client_auth_type RequireAndVerifyClientCert"},
		{func(c *TLSConfig) { c.ClientCAFile = f.ServerKey }, "holds no PEM certificate"},
		{func(c *TLSConfig) { c.MinVersion = "TLS10" }, `min_version: must be TLS12 or TLS13, got "TLS10"`},
		{func(c *TLSConfig) { c.CertFile, c.KeyFile = "", "" }, "cert_file: is required for client certificates"},
	})
}

// TestTLSCertificateRenewal replaces the certificate files while serving:
// the next handshake gets the new certificate without a restart.
func TestTLSCertificateRenewal(t *testing.T) {
	dir := t.TempDir()
	f := testkit.WriteTLS(t, dir, "tpflow test client")
	c := DefaultTLSConfig()
	c.CertFile, c.KeyFile = f.ServerCert, f.ServerKey
	cfg, err := ServerTLS(c)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := cfg.GetCertificate(nil)
	g := testkit.WriteTLS(t, t.TempDir(), "tpflow test client")
	for _, p := range [][2]string{{g.ServerCert, f.ServerCert}, {g.ServerKey, f.ServerKey}} {
		b, err := os.ReadFile(p[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Second)
		if err := os.Chtimes(p[1], later, later); err != nil {
			t.Fatal(err)
		}
	}
	second, _ := cfg.GetCertificate(nil)
	if second == first || string(second.Certificate[0]) == string(first.Certificate[0]) {
		t.Fatal("the renewed certificate is not served")
	}
	// A broken renewal keeps the last good certificate.
	if err := os.WriteFile(f.ServerCert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	third, err := cfg.GetCertificate(nil)
	if err != nil || third != second {
		t.Fatalf("after a broken renewal: same=%v, %v; want the last good certificate", third == second, err)
	}
}

// TestClientCertificateAuthenticates serves with VerifyClientCertIfGiven
// and a role for the test client's certificate: the certificate alone
// authenticates, a client without one needs a token, and a certificate
// of another CA is refused at the handshake.
func TestClientCertificateAuthenticates(t *testing.T) {
	f := testkit.WriteTLS(t, t.TempDir(), "tpflow test client")
	tc := DefaultTLSConfig()
	tc.CertFile, tc.KeyFile, tc.ClientCAFile, tc.ClientAuthType = f.ServerCert, f.ServerKey, f.CA, "VerifyClientCertIfGiven"
	ac := testAuthConfig(t)
	ac.ClientCerts = []ClientCertConfig{{CommonName: "tpflow test client", Role: "viewer"}}
	if err := errors.Join(tc.Validate(), ac.Validate()); err != nil {
		t.Fatal(err)
	}
	a, err := NewAuth(ac, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, tc, Handler(Options{Auth: a, Routes: []Route{{Pattern: "GET /api/v1/x", Handler: roleEcho}}}))
	call := func(cfg *tls.Config, token string) (int, string, error) {
		cl := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
		req, _ := http.NewRequest("GET", "https://"+addr+"/api/v1/x", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := cl.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	if code, body, err := call(f.ClientConfig(t, true), ""); err != nil || code != 200 || body != "tpflow test client viewer" {
		t.Errorf("with the client certificate: %d %q %v, want 200 as its holder", code, body, err)
	}
	if code, _, err := call(f.ClientConfig(t, false), ""); err != nil || code != 401 {
		t.Errorf("without certificate or token: %d %v, want 401", code, err)
	}
	if code, body, err := call(f.ClientConfig(t, false), operatorToken); err != nil || code != 200 || body != "deployer operator" {
		t.Errorf("with a token only: %d %q %v", code, body, err)
	}
	if _, _, err := call(f.ForeignClientConfig(t), ""); err == nil {
		t.Error("a client certificate of another CA was accepted")
	}
}

// TestServeLoggedLogsHandshakeErrors checks that the server's own errors
// (here a plain HTTP request to the TLS listener) reach the role's logger.
func TestServeLoggedLogsHandshakeErrors(t *testing.T) {
	f := testkit.WriteTLS(t, t.TempDir(), "tpflow test client")
	c := DefaultTLSConfig()
	c.CertFile, c.KeyFile = f.ServerCert, f.ServerKey
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := TLSListener(l, c)
	if err != nil {
		t.Fatal(err)
	}
	var buf testkit.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeLogged(ctx, tl, Handler(Options{}), slog.New(slog.NewTextHandler(&buf, nil))) }()
	if resp, err := http.Get("http://" + l.Addr().String() + "/healthz"); err == nil {
		resp.Body.Close()
	}
	testkit.WaitFor(t, 5*time.Second, "the handshake error in the log", func() bool {
		return strings.Contains(buf.String(), "level=WARN") && strings.Contains(buf.String(), "TLS handshake error") && strings.Contains(buf.String(), "part=http")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestBcryptChecksBounded takes every bcrypt slot: a password that needs
// a check waits (and gives up with its request), while one already
// verified is still served from the cache.
func TestBcryptChecksBounded(t *testing.T) {
	a, err := NewAuth(testAuthConfig(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := a.Wrap(roleEcho)
	if rec := do(h, "GET", "/x", "10.0.0.1", basic("prom", "scrape")); rec.Code != 200 {
		t.Fatalf("first check: %d", rec.Code)
	}
	for range maxBcrypt {
		a.bcrypt <- struct{}{}
	}
	if rec := do(h, "GET", "/x", "10.0.0.1", basic("prom", "scrape")); rec.Code != 200 {
		t.Errorf("a verified password with every slot taken: %d, want 200 from the cache", rec.Code)
	}
	req := httptest.NewRequest("GET", "/x", nil)
	req.SetBasicAuth("prom", "other")
	ctx, cancel := context.WithTimeout(req.Context(), 50*time.Millisecond)
	defer cancel()
	rec := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(rec, req.WithContext(ctx))
	if rec.Code != 401 || time.Since(start) > 2*time.Second {
		t.Errorf("a password needing a check with every slot taken: %d after %v, want 401 when its request ends", rec.Code, time.Since(start))
	}
}
