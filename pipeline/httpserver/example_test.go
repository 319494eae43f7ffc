package httpserver_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/tpflow/tpflow/pipeline/httpserver"
)

// A package that serves routes on the role's server keeps a route to
// admins with RequireRole and learns the caller with PrincipalFrom; the
// method decides the rest (GET a viewer, POST an operator).
func ExampleRequireRole() {
	c := httpserver.DefaultAuthConfig()
	c.Tokens = []httpserver.TokenConfig{
		{Name: "oncall", Role: "operator", Token: "oncall-token-0123456789"},
		{Name: "root", Role: "admin", Token: "admin-token-0123456789ab"},
	}
	auth, err := httpserver.NewAuth(c, nil, nil)
	if err != nil {
		panic(err)
	}
	reload := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, role := httpserver.PrincipalFrom(r.Context())
		fmt.Fprintf(w, "reloaded by %s (%s)", name, role)
	})
	h := httpserver.Handler(httpserver.Options{Auth: auth, Routes: []httpserver.Route{
		{Pattern: "POST /api/v1/reload", Handler: httpserver.RequireRole(httpserver.RoleAdmin, reload)},
	}})
	for _, token := range []string{"oncall-token-0123456789", "admin-token-0123456789ab"} {
		req := httptest.NewRequest("POST", "/api/v1/reload", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Body.String())
	}
	// Output:
	// 403 oncall (role operator) may not POST /api/v1/reload: it needs role admin
	//
	// 200 reloaded by root (admin)
}
