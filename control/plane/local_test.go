package plane_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tpflow/tpflow/control/plane"
	"github.com/tpflow/tpflow/pipeline/httpserver"
)

// TestLocalAuth covers the three cases of an embedded control plane's
// authentication: http.auth with an operator serves as it is; with
// viewers only the token made at start joins it; with none, the token
// guards the control routes alone. Each start makes a new token.
func TestLocalAuth(t *testing.T) {
	viewer := httpserver.TokenConfig{Name: "grafana", Role: "viewer", Token: "viewer-token-0123456789"}
	operator := httpserver.TokenConfig{Name: "olga", Role: "operator", Token: opToken}

	dir := t.TempDir()
	la, err := plane.NewLocalAuth(httpserver.AuthConfig{Tokens: []httpserver.TokenConfig{viewer, operator}}, dir)
	if err != nil || la.TokenPath != "" || la.Control.Enabled() || len(la.Listen.Tokens) != 2 {
		t.Fatalf("with an operator: %+v, %v; want http.auth as it is and no token", la, err)
	}
	if _, err := os.Stat(filepath.Join(dir, plane.TokenFile)); !os.IsNotExist(err) {
		t.Errorf("a token file was written although http.auth has an operator: %v", err)
	}

	viewers := httpserver.AuthConfig{Tokens: []httpserver.TokenConfig{viewer}}
	la, err = plane.NewLocalAuth(viewers, dir)
	if err != nil || la.Control.Enabled() || len(la.Listen.Tokens) != 2 || la.Listen.Tokens[1].Name != plane.LocalOperator || la.Listen.Tokens[1].Role != "operator" || len(viewers.Tokens) != 1 {
		t.Fatalf("with viewers only: %+v, %v; want the operator token added to a copy of http.auth", la, err)
	}
	first := la.Listen.Tokens[1].Token.Reveal()

	sub := filepath.Join(dir, "new")
	la, err = plane.NewLocalAuth(httpserver.AuthConfig{}, sub)
	if err != nil || la.Listen.Enabled() || len(la.Control.Tokens) != 1 || la.TokenPath != filepath.Join(sub, plane.TokenFile) {
		t.Fatalf("without http.auth: %+v, %v; want the listener open and the control routes behind the token", la, err)
	}
	tok := la.Control.Tokens[0].Token.Reveal()
	b, err := os.ReadFile(la.TokenPath)
	fi, _ := os.Stat(la.TokenPath)
	if err != nil || string(b) != tok+"\n" || fi.Mode().Perm() != 0o600 || len(tok) != 64 || tok == first {
		t.Errorf("token file %q (%v, mode %v) for token %q; want it, 0600, 64 hex digits, new at each start", b, err, fi.Mode(), tok)
	}
	if err := plane.CheckAuth(la.Control); err != nil {
		t.Errorf("the control routes' auth has no operator: %v", err)
	}
}
