package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/schemas"
)

type window struct {
	Size time.Duration `yaml:"size"`
}

func (w window) Validate() error {
	if w.Size <= 0 {
		return schemas.Fieldf("size", "must be > 0")
	}
	return nil
}

type limits struct {
	Max int `yaml:"max"`
}

// Validate has a pointer receiver and returns a plain error: it is placed
// at the value's own path.
func (l *limits) Validate() error {
	if l.Max < 0 {
		return errors.New("max must not be negative")
	}
	return nil
}

type agg struct {
	Windows []window          `yaml:"windows"`
	Limits  limits            `yaml:"limits"`
	ByName  map[string]window `yaml:"by_name"`
	Skipped window            `yaml:"skipped" config:"novalidate"`
	Ptr     *window           `yaml:"ptr"`
}

type root struct {
	Aggregator agg    `yaml:"aggregator"`
	Name       string `yaml:"name"`
}

func (r root) Validate() error {
	if r.Name == "" {
		return schemas.Fieldf("name", "must not be empty")
	}
	return nil
}

func defaultRoot() root {
	return root{Name: "x", Aggregator: agg{Windows: []window{{time.Second}}, ByName: map[string]window{}}}
}

func TestValidateWalksEveryField(t *testing.T) {
	r := defaultRoot()
	r.Name = ""
	r.Aggregator.Windows = []window{{time.Second}, {0}}
	r.Aggregator.Limits.Max = -1
	r.Aggregator.ByName = map[string]window{"b": {0}, "a": {0}}
	r.Aggregator.Ptr = &window{}
	var got []string
	for _, e := range Flatten(Validate(r)) {
		var fe *schemas.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%T is not a *schemas.FieldError", e)
		}
		got = append(got, e.Error())
	}
	want := []string{
		"name: must not be empty",
		"aggregator.windows[1].size: must be > 0",
		"aggregator.limits: max must not be negative",
		"aggregator.by_name.a.size: must be > 0",
		"aggregator.by_name.b.size: must be > 0",
		"aggregator.ptr.size: must be > 0",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := Validate(defaultRoot()); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestLoadPlacesEveryProblem(t *testing.T) {
	data := "name: y\naggregator:\n  windows: [{size: 1s}, {size: 0s}]\n  limits: {max: -1}\n  limts: {}\n  skipped: {size: 0s}\n"
	r := defaultRoot()
	err := Load("agg.yaml", []byte(data), &r)
	want := "agg.yaml:3:26: aggregator.windows[1].size: must be > 0\n" +
		"agg.yaml:4:3: aggregator.limits: max must not be negative\n" +
		`agg.yaml:5:3: aggregator: unknown key "limts" (did you mean "limits"?)`
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Issues[2].Key != "limts" || ce.Issues[0].Path != "aggregator.windows[1].size" {
		t.Errorf("issues %+v", ce)
	}
}

func TestSourceIssueNamesTheSource(t *testing.T) {
	r := defaultRoot()
	src, err := Decode("s.yaml", []byte("aggregator:\n  limits:\n    max: 3\n"), &r)
	if err != nil {
		t.Fatal(err)
	}
	src.SetBy("name", "--name")
	if l, c := src.Position("aggregator.limits.max"); l != 3 || c != 5 {
		t.Errorf("Position = %d:%d, want 3:5", l, c)
	}
	for path, want := range map[string]string{
		"aggregator.limits.max": "s.yaml:3:5: aggregator.limits.max: bad",
		"name":                  "s.yaml: name: bad (set by --name)",
		"aggregator.windows":    "s.yaml: aggregator.windows: bad (default)",
	} {
		if got := src.Issue(path, "bad").String(); got != want {
			t.Errorf("Issue(%s) = %q, want %q", path, got, want)
		}
	}
}
