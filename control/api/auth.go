package api

import (
	"fmt"
	"net/http"

	"github.com/tpflow/tpflow/pipeline/httpserver"
)

// Principal is who makes a request: the caller the shared HTTP layer
// (pipeline/httpserver's Auth, configured in http.auth) authenticated.
type Principal = httpserver.Principal

// authorize returns the caller of r, or writes the refusal and reports
// false: 401 when no one authenticated (the API is served without an
// httpserver.Auth, or authentication is off: the control plane never
// serves an anonymous caller, so that every write knows who made it), 403
// when a write comes from a viewer. The Auth in front has refused both
// already; this check keeps the API closed when it is mounted elsewhere.
func authorize(w http.ResponseWriter, r *http.Request, write bool) (Principal, bool) {
	name, role := httpserver.PrincipalFrom(r.Context())
	p := Principal{Name: name, Role: role}
	switch {
	case role == httpserver.RoleNone || name == "":
		w.Header().Set("WWW-Authenticate", `Bearer realm="tpflow"`)
		httpserver.WriteJSON(w, http.StatusUnauthorized, apiError{Error: "authentication required: the control API serves only callers authenticated by http.auth"})
		return p, false
	case write && role < httpserver.RoleOperator:
		httpserver.WriteJSON(w, http.StatusForbidden, apiError{Error: fmt.Sprintf("%s is a %s; writes need an operator or admin", name, role)})
		return p, false
	}
	return p, true
}
