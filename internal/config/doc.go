// Package config is tpflow's one configuration loader: the main
// configuration, the alert rules files and the topology file are all
// decoded and validated here, and every problem is reported with its file,
// line and column.
//
// Decoding is gopkg.in/yaml.v3 with KnownFields: the library decodes onto a
// value that holds the defaults, reports unknown keys, duplicate keys and
// values of the wrong type, and keeps going after each, so that one run
// lists every problem. yaml.v3 was chosen over github.com/goccy/go-yaml
// because it collects all errors of a document instead of stopping at the
// first, and because it is already the module's YAML library. Its errors
// carry only a line; the loader places each on the node it is about (key or
// value, with its column and dotted path) and rewords it in the project's
// terms ("cannot parse \"ten\" as a duration"). On top of the library the
// loader keeps what the project needs: a key with no value keeps its
// default, booleans are only true and false, numbers are finite, and
// durations are Go durations ("10s").
//
// Validation is recursive, after OpenTelemetry's confmap: [Validate] walks
// the decoded value and calls Validate() error on every struct, list
// element and map value that has it, prefixing the *schemas.FieldError
// values it returns with the key path of that value
// ("aggregator.windows[1]"). A Validate method checks its own fields and
// leaves the fields that have a Validate of their own to the walk; a field
// tagged `config:"novalidate"` is not walked (its owner validates it).
// [Load] joins decoding and validation and places every problem at the line
// of its key.
//
// [WriteDocumented] prints a value as commented YAML (config print-defaults
// and config print).
//
// Secrets (passwords, signing keys) are of type [Secret]: every way of
// printing one gives [REDACTED], and WriteDocumented also hides the
// password of any URL. Decode fills a Secret KEY from its sibling KEY_file
// (a file path; the trailing newline is trimmed) or expands the ${NAME}
// environment references in its value, and reports an unreadable file, an
// unset variable or KEY given with KEY_file at the key's line.
package config
