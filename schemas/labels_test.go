package schemas

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestKeyLabels(t *testing.T) {
	if got, want := KeyLabelNames(-1), []string{"system", "app", "group", "idc", "method"}; !slices.Equal(got, want) {
		t.Errorf("KeyLabelNames(-1) = %q, want %q", got, want)
	}
	if got, want := KeyLabelNames(4), []string{"system", "app", "group", "idc"}; !slices.Equal(got, want) {
		t.Errorf("KeyLabelNames(4) = %q, want %q", got, want)
	}
	if got, want := KeyColumns(-1), "system, app, group_name, idc, method"; got != want {
		t.Errorf("KeyColumns(-1) = %q, want %q", got, want)
	}
	if got, want := KeyColumns(2), "system, app"; got != want {
		t.Errorf("KeyColumns(2) = %q, want %q", got, want)
	}
	if c, ok := KeyColumn("group"); !ok || c != "group_name" {
		t.Errorf("KeyColumn(group) = %q, %v", c, ok)
	}
	if c, ok := KeyColumn("host"); ok {
		t.Errorf("KeyColumn(host) = %q, true; host is not a key label", c)
	}
	if KeyLabelIndex("idc") != 3 || KeyLabelIndex("host") != -1 {
		t.Errorf("KeyLabelIndex(idc) = %d, KeyLabelIndex(host) = %d; want 3 and -1", KeyLabelIndex("idc"), KeyLabelIndex("host"))
	}
	ls := KeyLabels()
	ls[0].Name = "changed"
	if KeyLabels()[0].Name != LabelSystem {
		t.Error("KeyLabels hands out the table itself")
	}
}

func TestCheckKeyLabelValue(t *testing.T) {
	for _, v := range []string{"", "GetUser", "it's", "a -- b", "x' UNION SELECT 1 --", "/api/v1/{id}", "方法", "tab\u00a0nbsp"} {
		if err := CheckKeyLabelValue(v); err != nil {
			t.Errorf("CheckKeyLabelValue(%q) = %v, want nil", v, err)
		}
	}
	for v, why := range map[string]string{
		`\'`:          "backslash",
		`a\b`:         "backslash",
		"line\nbreak": "U+000A",
		"nul\x00":     "U+0000",
		"del\x7f":     "U+007F",
		"c1\u0085":    "U+0085",
	} {
		err := CheckKeyLabelValue(v)
		if !errors.Is(err, ErrUnsafeLabelValue) || !strings.Contains(err.Error(), why) {
			t.Errorf("CheckKeyLabelValue(%q) = %v, want ErrUnsafeLabelValue naming %s", v, err, why)
		}
	}
}

func TestKeyLabelValue(t *testing.T) {
	// The values follow the table's order; a key without a method (four
	// values) has no method label, and a label outside the key is none.
	vals := []string{"sys", "app", "grp", "idc", "m"}
	for i, l := range KeyLabels() {
		if v, ok := KeyLabelValue(l.Name, vals...); !ok || v != vals[i] {
			t.Errorf("KeyLabelValue(%q) = %q, %v; want %q", l.Name, v, ok, vals[i])
		}
	}
	if v, ok := KeyLabelValue(LabelMethod, vals[:4]...); ok {
		t.Errorf("method of a four-label key = %q, want none", v)
	}
	if v, ok := KeyLabelValue(LabelHost, vals...); ok {
		t.Errorf("host = %q, want no key label", v)
	}
}
