// Package codec encodes and decodes EventBatch, the payload of every Kafka
// message tpflow writes (schemas/tpflow.proto).
//
// # Format
//
// An EventBatch is ordinary Protobuf: any Protobuf library reads it. Strings
// that repeat across events are stored once per batch in a symbol table and
// referred to by index; symbol 0 is "". A label set is a list of symbol
// references as name, value pairs sorted by name, and a Series is a
// (label set, method) pair, so a CallEvent is five small integers. A reference
// 0 into an empty symbol table or an empty label set table is valid and means
// "" or the empty label set; any other reference must be in range.
//
// # Decoding
//
// Decode is hand-written over protowire rather than proto.Unmarshal because the
// aggregator decodes millions of calls per second per core: it fills a
// caller-owned Batch whose slices are reused from batch to batch, so that a
// steady-state decode allocates nothing. Calls, metrics, series, label sets and
// symbols are decoded into flat slices. Logs, panes, alerts and resource panes
// are not on any hot path: Decode checks their wire structure and references
// and keeps each one's encoded bytes (Batch.Logs, Batch.Panes, Batch.Alerts,
// Batch.ResourcePanes); Batch.Full
// decodes the whole message with proto.Unmarshal for the consumers that need
// them. Decode accepts fields in any order, packed and unpacked repeated
// scalars, and skips unknown fields. It is stricter than proto.Unmarshal in
// two ways: a known field with the wrong wire type is ErrMalformed (rather
// than kept as an unknown field), and every reference is range-checked. It
// does not check that strings are valid UTF-8; Full does, as proto.Unmarshal
// always does for proto3.
//
// Errors wrap one of the sentinels ErrTruncated, ErrMalformed,
// ErrUnknownVersion, ErrOversized and ErrBadReference with the position that
// failed; Reason maps an error to a short label for dead-letter counters.
// Decode never panics, whatever the input. With
// DecodeOptions.KeepBadRecords a log, pane, alert or resource pane that
// fails its check no longer fails the batch: it is listed in
// Batch.BadRecords, so that a consumer stores the others and dead-letters
// it alone.
//
// # Aliasing and ownership
//
// A decoded Batch aliases the buffer it was decoded from: Symbols, Producer,
// Logs, Panes, Alerts and ResourcePanes point into it without copying. The
// Batch is valid only until that buffer is modified or reused, and only until
// the Batch itself is passed to Decode again. Copy what must outlive it (strings.Clone), or use
// Full, whose result shares nothing with the buffer.
//
// # Encoding
//
// Builder interns symbols, label sets and series while events are added and
// writes the batch with AppendTo, encoding calls, metrics, series and label
// sets by hand without per-event allocation. It writes schema_version as the
// last field, so a batch cut short at any byte is rejected by Decode: either
// mid-field (ErrTruncated) or before its version (ErrUnknownVersion).
package codec
