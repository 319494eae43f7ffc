package main

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"github.com/tpflow/tpflow/internal/cli"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/tpflow/tpflow/internal/config/sections"
	"github.com/tpflow/tpflow/internal/testkit"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
	"github.com/tpflow/tpflow/pipeline/httpserver"
)

const productionConfig = "../../deploy/tpflow.production.yaml"

// etcPathRE finds the files under /etc/tpflow/ a configuration names.
var etcPathRE = regexp.MustCompile(`/etc/tpflow/([A-Za-z0-9._/-]+)`)

// The credentials the production test writes where the production
// configuration expects them.
const (
	prodViewerToken   = "grafana-token-7f1c2d9e4b5a6c3d8e0f"
	prodOperatorToken = "oncall-token-2b4d6f8a0c1e3a5c7e9f"
	prodScraperPass   = "scraper-password-q8w7e6"
)

// productionFiles writes, under dir, every file deploy/tpflow.production.yaml
// names under /etc/tpflow/, and returns the configuration's text with
// /etc/tpflow/ and /var/lib/tpflow/ moved under dir, and the TLS files.
func productionFiles(t *testing.T, dir string) (string, testkit.TLSFiles) {
	t.Helper()
	text, err := os.ReadFile(productionConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"tls", "secrets", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	tf := testkit.WriteTLS(t, filepath.Join(dir, "tls"), "prometheus")
	ca, _ := os.ReadFile(tf.CA)
	hash := func(tok string) string { s := sha256.Sum256([]byte(tok)); return hex.EncodeToString(s[:]) + "\n" }
	bc, err := bcrypt.GenerateFromPassword([]byte(prodScraperPass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"tls/kafka-ca.crt":             string(ca),
		"secrets/kafka-password":       "kafka-secret\n",
		"secrets/clickhouse-password":  "clickhouse-secret\n",
		"secrets/grafana-token.sha256": hash(prodViewerToken),
		"secrets/oncall-token.sha256":  hash(prodOperatorToken),
		"secrets/admin-token.sha256":   hash("admin-token-not-used-here-0123"),
		"secrets/scraper.bcrypt":       string(bc) + "\n",
		"rules.yaml":                   goodRules,
		"tls/ca.crt":                   "", // written by WriteTLS
		"tls/server.crt":               "",
		"tls/server.key":               "",
	}
	named := map[string]bool{}
	for _, line := range strings.Split(string(text), "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, m := range etcPathRE.FindAllStringSubmatch(line, -1) {
			named[m[1]] = true
		}
	}
	for p := range named {
		content, ok := files[p]
		if !ok {
			t.Fatalf("%s names /etc/tpflow/%s, which this test does not provide", productionConfig, p)
		}
		if content != "" {
			if err := os.WriteFile(filepath.Join(dir, p), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	// What the clients of SECURITY.md's examples read.
	cert, _ := os.ReadFile(tf.ClientCert)
	key, _ := os.ReadFile(tf.ClientKey)
	for p, content := range map[string]string{
		"secrets/grafana-token": prodViewerToken + "\n", "secrets/scraper-password": prodScraperPass + "\n",
		"tls/prometheus.crt": string(cert), "tls/prometheus.key": string(key),
	} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := strings.NewReplacer("/etc/tpflow/", dir+"/", "/var/lib/tpflow/", dir+"/state/").Replace(string(text))
	return out, tf
}

// productionTestConfig writes, under dir, deploy/tpflow.production.yaml
// with the files it names (productionFiles) and its kafka, clickhouse,
// broker and collect sections pointed at the test's broker, ClickHouse,
// broker HTTP address and a log directory, and returns its path.
func productionTestConfig(t *testing.T, dir, brokerAddr, dsn, brokerHTTP string) (string, testkit.TLSFiles) {
	t.Helper()
	text, tf := productionFiles(t, dir)
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(dir, "logs")
	if err := os.Mkdir(logDir, 0o700); err != nil {
		t.Fatal(err)
	}
	doc["kafka"] = map[string]any{"brokers": []string{brokerAddr}}
	doc["clickhouse"] = map[string]any{"dsn": dsn, "database": "tpflow_production"}
	doc["broker"] = map[string]any{"http_listen": brokerHTTP}
	var collect map[string]any
	if err := yaml.Unmarshal([]byte(collectSection(logDir)), &collect); err != nil {
		t.Fatal(err)
	}
	doc["collect"] = collect["collect"]
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "tpflow.yaml")
	if err := os.WriteFile(cfg, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, tf
}

// tlsClient is an HTTP client with cfg.
func tlsClient(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// TestProductionConfigIsValid loads deploy/tpflow.production.yaml, with
// the files it names in place, and checks that it turns on what it
// promises: TLS, authentication, no profiler, secrets from files.
func TestProductionConfigIsValid(t *testing.T) {
	dir := t.TempDir()
	text, _ := productionFiles(t, dir)
	cfg, err := sections.Load(productionConfig, []byte(text), nil)
	if err != nil {
		t.Fatalf("%s:\n%v", productionConfig, err)
	}
	h := cfg.HTTP
	if !h.TLS.Enabled() || !h.Auth.Enabled() || h.Auth.Metrics != "authenticated" || h.PprofListen != "" || h.TLS.ClientCAFile == "" {
		t.Errorf("http section %+v: want TLS with client CAs, authentication with /metrics authenticated, no profiler", h)
	}
	if cfg.Kafka.SASL.Password.Reveal() != "kafka-secret" || cfg.ClickHouse.Password.Reveal() != "clickhouse-secret" {
		t.Errorf("the passwords are not read from their files")
	}
	if strings.Contains(cfg.ClickHouse.DSN, "secret") {
		t.Errorf("the DSN holds a password: %s", cfg.ClickHouse.DSN)
	}
}

// TestEveryRoleRefusesUnauthenticated starts every role (the control
// plane included) and tpflow run with deploy/tpflow.production.yaml (its
// kafka, clickhouse, collect and broker sections pointed at the test's
// broker, ClickHouse and files) on
// their real listeners, and checks over TLS that each refuses an
// unauthenticated request to every path but /healthz, that a viewer
// token reads but cannot change, that an operator may change, that a
// client certificate authenticates, and that no credential reaches its
// log.
func TestEveryRoleRefusesUnauthenticated(t *testing.T) {
	t.Parallel()
	ch := chtest.Start(t)
	brokerAddr, brokerHTTP := freeAddr(t), freeAddr(t)
	startBrokerAt(t, brokerAddr)
	dir := t.TempDir()
	cfg, tf := productionTestConfig(t, dir, brokerAddr, "clickhouse://"+ch.Addr(), brokerHTTP)
	anon, withCert := tlsClient(tf.ClientConfig(t, false)), tlsClient(tf.ClientConfig(t, true))
	common := []string{"/metrics", "/readyz", "/no/such/path"}
	api := []string{"/api/v1/tp?app=x", "/api/v1/capacity", "/api/v1/topology"}
	control := []string{"/api/v1/topology", "/api/v1/systems", "/api/v1/config/global/versions", "/api/v1/operations"}
	roles := map[string][]string{
		"collect": common, "aggregate": common, "sink": common, "alert": common, "broker": common,
		"api":     append(append([]string{}, common...), api...),
		"control": append(append([]string{}, common...), control...),
		"run":     append(append([]string{"/api/v1/windows"}, common...), api...),
	}
	clients := prodClients{anon: anon, cert: withCert, foreign: tlsClient(tf.ForeignClientConfig(t))}
	for name, paths := range roles {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			listen := freeAddr(t)
			args := []string{name, "--config", cfg, "--listen", listen}
			switch name {
			case "broker":
				args[4] = freeAddr(t) // the broker's Kafka port; its HTTP is broker.http_listen
				listen = brokerHTTP
			case "run":
				args = append(args, "--no-live", "--data-dir", filepath.Join(dir, "run"))
			}
			checkRefusesUnauthenticated(t, startRoleWith(t, "https://"+listen, anon, args...), listen, paths, clients)
		})
	}
}

// prodClients are the TLS clients of the production test: with no
// certificate, with the CA's client certificate, and with one of another
// CA.
type prodClients struct{ anon, cert, foreign *http.Client }

// checkRefusesUnauthenticated checks the refusals of the role p serving
// on listen, on paths (see TestEveryRoleRefusesUnauthenticated).
func checkRefusesUnauthenticated(t *testing.T, p *roleProcess, listen string, paths []string, c prodClients) {
	t.Helper()
	name, anon, withCert, base := filepath.Base(t.Name()), c.anon, c.cert, p.base
	if _, _, err := httpDo(c.foreign, "GET", base+"/healthz", nil); err == nil {
		t.Errorf("%s: a client certificate of another CA was accepted", name)
	}
	if code, body, err := httpDo(anon, "GET", base+"/healthz", nil); err != nil || code != 200 || string(body) != "ok\n" {
		t.Errorf("%s: GET /healthz = %d %q %v, want 200 without credentials", name, code, body, err)
	}
	if code, _, err := httpGet("http://" + listen + "/healthz"); err == nil && code == 200 {
		t.Errorf("%s: plain HTTP is served", name)
	}
	viewer := http.Header{"Authorization": {"Bearer " + prodViewerToken}}
	operator := http.Header{"Authorization": {"Bearer " + prodOperatorToken}}
	basic := http.Header{}
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth("scraper", prodScraperPass)
	basic.Set("Authorization", r.Header.Get("Authorization"))
	for _, path := range paths {
		for _, m := range []string{"GET", "POST", "DELETE"} {
			if code, body, err := httpDo(anon, m, base+path, nil); err != nil || code != http.StatusUnauthorized {
				t.Errorf("%s: %s %s without credentials = %d %q %v, want 401", name, m, path, code, body, err)
			}
		}
		for who, h := range map[string]http.Header{"viewer token": viewer, "basic-auth viewer": basic} {
			code, body, err := httpDo(anon, "GET", base+path, h)
			if err != nil || code == http.StatusUnauthorized || code == http.StatusForbidden || (code == http.StatusNotFound) != (path == "/no/such/path") {
				t.Errorf("%s: GET %s with a %s = %d %q %v, want it read", name, path, who, code, body, err)
			}
			if code, body, err := httpDo(anon, "POST", base+path, h); err != nil || code != http.StatusForbidden {
				t.Errorf("%s: POST %s with a %s = %d %q %v, want 403", name, path, who, code, body, err)
			}
		}
		if code, body, err := httpDo(anon, "POST", base+path, operator); err != nil || code == http.StatusUnauthorized || code == http.StatusForbidden {
			t.Errorf("%s: POST %s with an operator token = %d %q %v, want it let through", name, path, code, body, err)
		}
	}
	if code, body, err := httpDo(withCert, "GET", base+"/metrics", nil); err != nil || code != 200 || !strings.Contains(string(body), "tpflow_http_auth_failures_total{reason=\"missing\"}") {
		t.Errorf("%s: GET /metrics with the client certificate = %d %v, want 200 with the failures counted", name, code, err)
	}
	// The role's log holds none of the credentials it was sent or read.
	if log := p.errOut.String(); !strings.Contains(log, `"tls":true,"auth":true`) {
		t.Errorf("%s: the log does not say the listener serves TLS with authentication:\n%s", name, log)
	}
	for _, secret := range []string{prodViewerToken, prodOperatorToken, prodScraperPass, "kafka-secret", "clickhouse-secret"} {
		if strings.Contains(p.errOut.String(), secret) {
			t.Errorf("%s: the log shows the secret %q", name, secret)
		}
	}
}

// TestSecureHTTPWarns checks the start-up warnings of a listener that is
// not on loopback: without authentication, and with it but without TLS;
// none on loopback or with both.
func TestSecureHTTPWarns(t *testing.T) {
	tf := testkit.WriteTLS(t, t.TempDir(), "prometheus")
	withAuth := sections.DefaultHTTPConfig()
	withAuth.Auth.Tokens = []httpserver.TokenConfig{{Name: "a", Role: "viewer", Token: prodViewerToken}}
	withBoth := withAuth
	withBoth.TLS.CertFile, withBoth.TLS.KeyFile = tf.ServerCert, tf.ServerKey
	for _, c := range []struct {
		addr string
		cfg  sections.HTTPConfig
		want string
	}{
		{"0.0.0.0:0", sections.DefaultHTTPConfig(), "without authentication on a non-loopback address"},
		{"0.0.0.0:0", withAuth, "without TLS on a non-loopback address"},
		{"0.0.0.0:0", withBoth, ""},
		{"127.0.0.1:0", sections.DefaultHTTPConfig(), ""},
	} {
		l, err := net.Listen("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		var log testkit.Buffer
		env := &cli.Env{Logger: slog.New(slog.NewTextHandler(&log, nil))}
		if _, _, err := cli.SecureHTTP(env, l, c.cfg, nil); err != nil {
			t.Fatal(err)
		}
		l.Close()
		if got := log.String(); (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s, tls %v, auth %v: logged %q, want %q", c.addr, c.cfg.TLS.Enabled(), c.cfg.Auth.Enabled(), got, c.want)
		}
	}
}
