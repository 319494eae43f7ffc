package api

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Role is what a principal may do: a viewer reads, an operator and an
// admin also write.
type Role string

// The roles, from the least to the most allowed.
const (
	RoleViewer   Role = "viewer"
	RoleOperator Role = "operator"
	RoleAdmin    Role = "admin"
)

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleViewer, RoleOperator, RoleAdmin:
		return r, nil
	}
	return "", fmt.Errorf("role %q must be viewer, operator or admin", s)
}

// CanWrite reports whether the role may change state.
func (r Role) CanWrite() bool { return r == RoleOperator || r == RoleAdmin }

// Principal is who makes a request.
type Principal struct {
	Name string
	Role Role
}

// ErrUnauthenticated is what an Authenticator returns for a request with
// no credentials or unknown ones.
var ErrUnauthenticated = errors.New("missing or unknown bearer token")

// Authenticator tells who made a request. The API answers 401 when it
// fails and 403 when the principal's role may not do what it asks.
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// StaticTokens authenticates "Authorization: Bearer TOKEN" against a
// fixed table of tokens.
type StaticTokens map[string]Principal

// Authenticate implements Authenticator, comparing tokens in constant
// time.
func (t StaticTokens) Authenticate(r *http.Request) (Principal, error) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return Principal{}, ErrUnauthenticated
	}
	var found Principal
	hit := false
	for k, p := range t {
		if subtle.ConstantTimeCompare([]byte(k), []byte(token)) == 1 {
			found, hit = p, true
		}
	}
	if !hit {
		return Principal{}, ErrUnauthenticated
	}
	return found, nil
}
