// Package schemas is the leaf package of tpflow: the Protobuf wire types
// (generated, in tpflowpb, from tpflow.proto), label names with the one
// table of the call key's labels (KeyLabels: name, ClickHouse column,
// order) and configuration field errors. Every other package may import
// it; it imports none of them. The ClickHouse DDL lives with its
// migrations in pipeline/clickhouse.
package schemas
