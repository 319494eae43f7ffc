package plane

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tpflow/tpflow/internal/atomicfile"
	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/pipeline/httpserver"
)

// TokenFile is the file, in the data directory of `tpflow run`, that holds
// the operator token of its embedded control plane.
const TokenFile = "control.token"

// LocalOperator is the name the writes made with that token are recorded
// under.
const LocalOperator = "local-operator"

// LocalAuth is how the control plane embedded in a process whose listener
// may have no operator credential (`tpflow run`) authenticates.
type LocalAuth struct {
	// Listen is the http.auth of the whole listener.
	Listen httpserver.AuthConfig
	// Control, when enabled, authenticates the control plane's routes
	// alone (the rest of the listener stays as Listen has it).
	Control httpserver.AuthConfig
	// TokenPath is the file of the operator token made at start, "" when
	// the listener's http.auth has an operator credential of its own.
	TokenPath string
}

// NewLocalAuth decides the authentication of an embedded control plane
// from c, the listener's http.auth, and dir, the data directory. The
// control plane never serves an unauthenticated caller (CheckAuth): with
// an operator or admin credential in c, c serves it as it is. Otherwise a
// random operator token is made and written to dir/TokenFile, mode 0600,
// replacing the one of an earlier start; with c on, the token is added to
// c, and with c off (loopback, no http.auth) it authenticates the control
// routes only, so the rest of the listener stays open as before.
func NewLocalAuth(c httpserver.AuthConfig, dir string) (LocalAuth, error) {
	if CheckAuth(c) == nil {
		return LocalAuth{Listen: c}, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return LocalAuth{}, fmt.Errorf("cannot make the control plane's operator token: %w", err)
	}
	tok := hex.EncodeToString(b)
	path := filepath.Join(dir, TokenFile)
	// The temporary file atomicfile writes is 0600 from its creation.
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		err = atomicfile.Write(path, []byte(tok+"\n"), 0o600)
	}
	if err != nil {
		return LocalAuth{}, fmt.Errorf("cannot write the control plane's operator token: %w", err)
	}
	t := httpserver.TokenConfig{Name: LocalOperator, Role: httpserver.RoleOperator.String(), Token: config.Secret(tok)}
	la := LocalAuth{Listen: c, TokenPath: path}
	if c.Enabled() {
		la.Listen.Tokens = append(append([]httpserver.TokenConfig(nil), c.Tokens...), t)
	} else {
		la.Control = c
		la.Control.Tokens = []httpserver.TokenConfig{t}
	}
	return la, nil
}
