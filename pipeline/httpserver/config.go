package httpserver

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/schemas"
)

// TLSConfig is the TLS of a listener, named as in the Prometheus web
// configuration file (tls_server_config). Without CertFile the listener
// serves plain HTTP.
type TLSConfig struct {
	// CertFile is the PEM server certificate (with its chain); it is read
	// again when the file changes, so a renewed certificate needs no
	// restart.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile.
	KeyFile string `yaml:"key_file"`
	// ClientCAFile is the PEM bundle of the CAs that client certificates
	// are verified against.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuthType is Go's name of the client certificate policy:
	// NoClientCert (the default), RequestClientCert, RequireAnyClientCert,
	// VerifyClientCertIfGiven or RequireAndVerifyClientCert.
	ClientAuthType string `yaml:"client_auth_type"`
	// MinVersion is the lowest TLS version accepted: TLS12 (the default)
	// or TLS13.
	MinVersion string `yaml:"min_version"`
}

// DefaultTLSConfig returns the TLS defaults: plain HTTP; once a
// certificate is given, TLS 1.2 or later and no client certificate.
func DefaultTLSConfig() TLSConfig {
	return TLSConfig{ClientAuthType: "NoClientCert", MinVersion: "TLS12"}
}

// Enabled reports whether the listener serves TLS.
func (c TLSConfig) Enabled() bool { return c.CertFile != "" }

var clientAuthTypes = map[string]tls.ClientAuthType{
	"NoClientCert":               tls.NoClientCert,
	"RequestClientCert":          tls.RequestClientCert,
	"RequireAnyClientCert":       tls.RequireAnyClientCert,
	"VerifyClientCertIfGiven":    tls.VerifyClientCertIfGiven,
	"RequireAndVerifyClientCert": tls.RequireAndVerifyClientCert,
}

var tlsVersions = map[string]uint16{"TLS12": tls.VersionTLS12, "TLS13": tls.VersionTLS13}

// Validate reports every impossible value as a *schemas.FieldError,
// reading the certificate, its key and the client CAs so that a bad file
// stops the process at start-up, not at the first connection.
func (c TLSConfig) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) { errs = append(errs, schemas.Fieldf(field, format, args...)) }
	cat, ok := clientAuthTypes[c.ClientAuthType]
	if !ok {
		add("client_auth_type", "must be NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert, got %q", c.ClientAuthType)
	}
	if _, ok := tlsVersions[c.MinVersion]; !ok {
		add("min_version", "must be TLS12 or TLS13, got %q", c.MinVersion)
	}
	switch {
	case c.CertFile == "" && c.KeyFile != "":
		add("key_file", "needs cert_file, the certificate of this key")
	case c.CertFile != "" && c.KeyFile == "":
		add("key_file", "is required with cert_file")
	case c.CertFile != "":
		if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
			add("cert_file", "cannot load the certificate %s with key %s: %v", c.CertFile, c.KeyFile, err)
		}
	}
	if !c.Enabled() && (c.ClientCAFile != "" || (ok && cat != tls.NoClientCert)) {
		add("cert_file", "is required for client certificates (client_ca_file, client_auth_type)")
	}
	if c.ClientCAFile != "" {
		if _, err := loadCAs(c.ClientCAFile); err != nil {
			add("client_ca_file", "%v", err)
		}
	} else if cat == tls.VerifyClientCertIfGiven || cat == tls.RequireAndVerifyClientCert {
		add("client_ca_file", "is required with client_auth_type %s", c.ClientAuthType)
	}
	return errors.Join(errs...)
}

func loadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read the client CAs: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// AuthConfig says who may call a listener. With no user and no token
// every request is served (the listener's default address is loopback);
// with any, every request but /healthz must authenticate.
type AuthConfig struct {
	// Users authenticate with HTTP basic auth and a bcrypt-hashed
	// password, as in the Prometheus web configuration file.
	Users []UserConfig `yaml:"users"`
	// Tokens authenticate with "Authorization: Bearer TOKEN".
	Tokens []TokenConfig `yaml:"tokens"`
	// ClientCerts authenticate with a client certificate verified against
	// tls.client_ca_file, by the certificate's subject common name; a
	// request with credentials as well is authenticated by those.
	ClientCerts []ClientCertConfig `yaml:"client_certs"`
	// Metrics is "authenticated" (the default) or "open": whether /metrics
	// and /readyz need a viewer when authentication is on.
	Metrics string `yaml:"metrics"`
	// MaxFailures is how many wrong credentials a client IP address may
	// send per FailureWindow (as a burst, refilled evenly); past it the
	// address is answered 429 with Retry-After, credentials unchecked. A
	// request without credentials is refused 401 but is no guess and does
	// not count.
	MaxFailures int `yaml:"max_failures"`
	// FailureWindow is the period MaxFailures refills over.
	FailureWindow time.Duration `yaml:"failure_window"`
}

// DefaultAuthConfig returns the authentication defaults: none, and once
// on, /metrics authenticated and 10 failures per minute per client.
func DefaultAuthConfig() AuthConfig {
	return AuthConfig{Users: []UserConfig{}, Tokens: []TokenConfig{}, ClientCerts: []ClientCertConfig{}, Metrics: MetricsAuthenticated, MaxFailures: 10, FailureWindow: time.Minute}
}

// The values of AuthConfig.Metrics.
const (
	MetricsAuthenticated = "authenticated"
	MetricsOpen          = "open"
)

// Enabled reports whether requests must authenticate.
func (c AuthConfig) Enabled() bool { return len(c.Users)+len(c.Tokens)+len(c.ClientCerts) > 0 }

// ClientCertConfig is the role of the holder of a client certificate.
type ClientCertConfig struct {
	// CommonName is the certificate's subject CN, unique among users,
	// tokens and client certificates.
	CommonName string `yaml:"common_name"`
	// Role is viewer, operator or admin.
	Role string `yaml:"role"`
}

// UserConfig is one basic-auth user.
type UserConfig struct {
	// Name is the user name, unique among users and tokens.
	Name string `yaml:"name"`
	// Role is viewer, operator or admin.
	Role string `yaml:"role"`
	// PasswordBcrypt is the bcrypt hash of the password (htpasswd -nbB,
	// or `tpflow` users' usual tools); PasswordBcryptFile may hold it.
	PasswordBcrypt     config.Secret `yaml:"password_bcrypt"`
	PasswordBcryptFile string        `yaml:"password_bcrypt_file"`
}

// TokenConfig is one bearer token. It is given either as the hex SHA-256
// of the token (so the configuration never holds the token) or as the
// token itself, typically in a file shared with the client (token_file);
// the process keeps only its hash.
type TokenConfig struct {
	// Name names the token's holder, unique among users and tokens.
	Name string `yaml:"name"`
	// Role is viewer, operator or admin.
	Role string `yaml:"role"`
	// SHA256 is the lowercase hex SHA-256 of the token
	// (printf %s TOKEN | sha256sum); SHA256File may hold it.
	SHA256     config.Secret `yaml:"sha256"`
	SHA256File string        `yaml:"sha256_file"`
	// Token is the token itself; TokenFile may hold it.
	Token     config.Secret `yaml:"token"`
	TokenFile string        `yaml:"token_file"`
}

// Validate reports every impossible value as a *schemas.FieldError.
func (c AuthConfig) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) { errs = append(errs, schemas.Fieldf(field, format, args...)) }
	if c.Metrics != MetricsAuthenticated && c.Metrics != MetricsOpen {
		add("metrics", "must be authenticated or open, got %q", c.Metrics)
	}
	if c.MaxFailures < 1 {
		add("max_failures", "must be at least 1, got %d", c.MaxFailures)
	}
	if c.FailureWindow <= 0 {
		add("failure_window", "must be positive, got %s", c.FailureWindow)
	}
	names := map[string]bool{}
	name := func(field, n string) {
		switch {
		case n == "":
			add(field, "is required")
		case strings.ContainsAny(n, ":\r\n"):
			add(field, "%q must not hold a colon or a line break", n)
		case names[n]:
			add(field, "%q is given twice among users and tokens", n)
		}
		names[n] = true
	}
	for i, u := range c.Users {
		p := fmt.Sprintf("users[%d].", i)
		name(p+"name", u.Name)
		if _, err := ParseRole(u.Role); err != nil {
			add(p+"role", "%v", err)
		}
		if u.PasswordBcrypt == "" {
			add(p+"password_bcrypt", "is required (the bcrypt hash of the password, as htpasswd -nbB makes)")
		} else if _, err := bcrypt.Cost([]byte(u.PasswordBcrypt.Reveal())); err != nil {
			add(p+"password_bcrypt", "is not a bcrypt hash: %v", err)
		}
	}
	for i, t := range c.Tokens {
		p := fmt.Sprintf("tokens[%d].", i)
		name(p+"name", t.Name)
		if _, err := ParseRole(t.Role); err != nil {
			add(p+"role", "%v", err)
		}
		switch {
		case (t.SHA256 == "") == (t.Token == ""):
			add(strings.TrimSuffix(p, "."), "give the token's sha256 (sha256, sha256_file) or the token itself (token, token_file), one of them")
		case t.SHA256 != "":
			if b, err := hex.DecodeString(t.SHA256.Reveal()); err != nil || len(b) != 32 {
				add(p+"sha256", "must be 64 hexadecimal digits (printf %%s TOKEN | sha256sum)")
			} else if empty := sha256.Sum256(nil); string(b) == string(empty[:]) {
				add(p+"sha256", "is the SHA-256 of an empty token")
			}
		case len(t.Token) < 16:
			add(p+"token", "is %d characters long, want at least 16 (openssl rand -hex 32)", len(t.Token))
		}
	}
	for i, cc := range c.ClientCerts {
		p := fmt.Sprintf("client_certs[%d].", i)
		name(p+"common_name", cc.CommonName)
		if _, err := ParseRole(cc.Role); err != nil {
			add(p+"role", "%v", err)
		}
	}
	return errors.Join(errs...)
}
