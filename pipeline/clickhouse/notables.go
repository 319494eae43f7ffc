package clickhouse

import (
	"errors"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// NoTables says how to create the tables when err is the server's answer
// to a query of a table database lacks (UNKNOWN_TABLE); it returns nil for
// any other error.
func NoTables(err error, database string) error {
	var ex *proto.Exception
	if errors.As(err, &ex) && ex.Code == 60 { // UNKNOWN_TABLE
		return fmt.Errorf("%w (database %s has no tpflow tables yet: tpflow sink --migrate creates them)", err, database)
	}
	return nil
}
