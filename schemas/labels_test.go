package schemas

import (
	"slices"
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
