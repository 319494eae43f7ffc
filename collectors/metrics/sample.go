package metrics

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tpflow/tpflow/schemas"
)

// Kind says how a Sample's value is read.
type Kind uint8

// Sample kinds, as schemas' MetricKind.
const (
	Gauge Kind = iota + 1
	Counter
)

// Sample is one measurement.
type Sample struct {
	Name   string
	Value  float64
	Kind   Kind
	Labels []schemas.Label // labels specific to the sample (device, interface, ...)
}

// ErrNotFound wraps a missing file or directory.
var ErrNotFound = fs.ErrNotExist

func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	return b, nil
}

// readUint reads a file holding one unsigned integer (or "max").
func readUint(path string) (v uint64, max bool, err error) {
	b, err := readFile(path)
	if err != nil {
		return 0, false, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, true, nil
	}
	v, err = strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("cannot parse %s: %w", path, err)
	}
	return v, false, nil
}

// readKV reads "key value" lines into m, calling set for each; it returns
// the number of malformed lines.
func readKV(path string, set func(key string, v uint64)) (malformed int, err error) {
	b, err := readFile(path)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			malformed++
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			malformed++
			continue
		}
		set(f[0], v)
	}
	return malformed, nil
}

// join joins a root and an absolute or relative path inside it; ".."
// cannot climb above root.
func join(root string, parts ...string) string {
	p := filepath.Join(parts...)
	return filepath.Join(root, filepath.Clean("/"+p))
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

func lbl(name, value string) []schemas.Label { return []schemas.Label{{Name: name, Value: value}} }
