package store_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tpflow/tpflow/control/store/pgtest"
	"github.com/tpflow/tpflow/control/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }

func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) string { return filepath.Join(t.TempDir(), "sub", "control.db") })
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) string { return pgtest.DSN(t) })
}
