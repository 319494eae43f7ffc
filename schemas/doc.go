// Package schemas is the leaf package of tpflow: the Protobuf wire types
// (generated, in tpflowpb), label names, configuration field errors and the
// ClickHouse DDL. Every other package may import it; it imports none of them.
package schemas

