package report

import "testing"

func TestFormatOf(t *testing.T) {
	for out, want := range map[string]string{"": "md", "r.md": "md", "r.HTML": "html", "r.htm": "html", "a/b.csv": "csv", "r.txt": "md"} {
		if got := FormatOf(out); got != want {
			t.Errorf("FormatOf(%q) = %q, want %q", out, got, want)
		}
	}
}
