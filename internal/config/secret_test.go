package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// creds holds secrets the way sections do: beside a KEY_file, in a nested
// struct and in a list.
type creds struct {
	Password     Secret `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	Hooks        []hook `yaml:"hooks"`
}

type hook struct {
	URL        string `yaml:"url"`
	Secret     Secret `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
}

const testSecret = "hunter2-s3cr3t"

// TestSecretNeverPrints checks every way a Secret may be printed gives
// [REDACTED], and that an empty one prints empty.
func TestSecretNeverPrints(t *testing.T) {
	v := creds{Password: testSecret, Hooks: []hook{{URL: "http://h", Secret: testSecret}}}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "password", v.Password, "creds", v)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "password", v.Password)
	y, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{
		//lint:ignore S1025 what the %s verb prints is the point of the check
		"%s": fmt.Sprintf("%s", v.Password), "%v": fmt.Sprintf("%v", v), "%+v": fmt.Sprintf("%+v", v),
		"%#v": fmt.Sprintf("%#v", v), "yaml": string(y), "json": string(j), "slog": logged.String(),
		"error": fmt.Errorf("cannot log in with %v", v.Password).Error(),
	} {
		if strings.Contains(out, testSecret) || !strings.Contains(out, Redacted) {
			t.Errorf("%s shows the secret or lacks %s: %s", name, Redacted, out)
		}
	}
	if v.Password.Reveal() != testSecret {
		t.Errorf("Reveal() = %q", v.Password.Reveal())
	}
	if s := fmt.Sprint(Secret("")); s != "" {
		t.Errorf("an empty secret prints %q, want empty", s)
	}
}

func decodeCreds(t *testing.T, doc string) (creds, []string) {
	t.Helper()
	var v creds
	issues := decodeIssues(t, "c.yaml", doc, &v)
	return v, issues
}

func TestSecretFromFileAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TPFLOW_TEST_HOOK_SECRET", "from-env")
	v, issues := decodeCreds(t, fmt.Sprintf("password_file: %s\nhooks:\n  - url: http://h\n    secret: pre-${TPFLOW_TEST_HOOK_SECRET}-post\n  - url: http://g\n    secret_file: %s\n", pw, pw))
	if len(issues) > 0 {
		t.Fatalf("issues: %v", issues)
	}
	if v.Password.Reveal() != testSecret {
		t.Errorf("password from file = %q, want %q (trailing newline trimmed)", v.Password.Reveal(), testSecret)
	}
	if got := v.Hooks[0].Secret.Reveal(); got != "pre-from-env-post" {
		t.Errorf("hooks[0].secret = %q, want the variable expanded", got)
	}
	if got := v.Hooks[1].Secret.Reveal(); got != testSecret {
		t.Errorf("hooks[1].secret from secret_file = %q", got)
	}
}

func TestSecretProblemsArePlaced(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent")
	t.Setenv("TPFLOW_TEST_SET", "x")
	_, issues := decodeCreds(t, fmt.Sprintf("password: ${TPFLOW_TEST_SET}${TPFLOW_TEST_UNSET}\nhooks:\n  - url: http://h\n    secret_file: %s\n  - secret: %s\n    secret_file: %s\n", missing, testSecret, missing))
	want := []string{
		`c.yaml:1:1: password: environment variable TPFLOW_TEST_UNSET is not set`,
		`c.yaml:4:5: hooks[0].secret_file: cannot read the secret: open ` + missing + `: no such file or directory`,
		`c.yaml:6:5: hooks[1].secret_file: give secret or secret_file, not both`,
	}
	if strings.Join(issues, "\n") != strings.Join(want, "\n") {
		t.Errorf("issues:\n%s\nwant:\n%s", strings.Join(issues, "\n"), strings.Join(want, "\n"))
	}
	for _, is := range issues {
		if strings.Contains(is, testSecret) {
			t.Errorf("an issue shows the secret: %s", is)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"clickhouse://user:" + testSecret + "@ch:9000?dial_timeout=5s": "clickhouse://user:xxxxx@ch:9000?dial_timeout=5s",
		"clickhouse://user@ch:9000":                                    "clickhouse://user@ch:9000",
		"clickhouse://ch:9000":                                         "clickhouse://ch:9000",
		"http://a b:" + testSecret + "@%zz":                            "(unparsable URL)",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWriteDocumentedRedacts checks that the documented print of a loaded
// value shows neither a secret nor a URL's password.
func TestWriteDocumentedRedacts(t *testing.T) {
	type section struct {
		DSN   string `yaml:"dsn"`
		Creds creds  `yaml:"creds"`
	}
	v := section{DSN: "clickhouse://u:" + testSecret + "@ch:9000", Creds: creds{Password: testSecret, Hooks: []hook{{URL: "http://h", Secret: testSecret}}}}
	docs := map[string]string{"dsn": "d.", "creds": "c.", "creds.password": "p.", "creds.password_file": "f.", "creds.hooks": "h."}
	var b strings.Builder
	if err := WriteDocumented(&b, v, docs, ""); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, testSecret) || strings.Count(out, Redacted) != 4 || !strings.Contains(out, "dsn: clickhouse://u:xxxxx@ch:9000\n") {
		t.Errorf("printed (want the password and both secrets redacted, each with its default comment):\n%s", out)
	}
}
