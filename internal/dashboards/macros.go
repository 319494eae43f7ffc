package dashboards

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Env is what Grafana knows when it runs a panel's query: the time range,
// the interval and the values of the template variables.
type Env struct {
	From, To time.Time
	// Interval is $__interval; whole seconds.
	Interval time.Duration
	// Vars holds each variable's selected values. A multi-value variable
	// set to All holds every option (none of our variables has a custom
	// all value).
	Vars map[string]Var
}

// Var is the current value of one template variable.
type Var struct {
	Values []string
	// Multi says the variable is multi-value (or has All): Grafana hands
	// the data source a list even when one value is selected.
	Multi bool
}

var (
	macroRe = regexp.MustCompile(`\$__([A-Za-z_]+)(\(([^()]*)\))?`)
	varRe   = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::([A-Za-z]+))?\}|\$([A-Za-z0-9_]+)`)
)

// Expand does what Grafana and the grafana-clickhouse-datasource plugin do
// to a panel's SQL before it reaches ClickHouse, for the macros and
// variable forms the dashboards use:
//
//   - $__timeFilter(col) → col >= toDateTime(FROM) AND col <= toDateTime(TO),
//     both in Unix seconds (the plugin includes the end).
//   - $__fromTime → toDateTime(FROM), $__toTime → toDateTime(TO).
//   - $__interval_s → the interval in whole seconds (at least 1).
//   - $__timeInterval(col) → toStartOfInterval(toDateTime(col), INTERVAL N
//     second); ClickHouse 18.16 lacks toStartOfInterval, so the dashboards
//     do not use it.
//   - ${var:singlequote} → every value in single quotes, ' escaped as \',
//     joined by commas (Grafana's singlequote format; like Grafana it does
//     not escape a backslash).
//   - ${var} and $var → the plugin's own format: a multi-value variable's
//     values quoted and joined as above, a single value as it is.
//
// Grafana's variables ($__rate_interval, $__range, ...) that the SQL may not
// use, unknown macros, unknown variables and unknown formats are errors, so
// a dashboard that needs more than this expander knows fails its test.
func Expand(sql string, env Env) (string, error) {
	var err error
	from, to := env.From.Unix(), env.To.Unix()
	iv := int64(env.Interval / time.Second)
	if iv < 1 {
		iv = 1
	}
	out := macroRe.ReplaceAllStringFunc(sql, func(m string) string {
		sub := macroRe.FindStringSubmatch(m)
		name, hasArgs, arg := sub[1], sub[2] != "", strings.TrimSpace(sub[3])
		need := func(args bool) bool {
			if hasArgs != args || args && arg == "" {
				if err == nil {
					err = fmt.Errorf("macro $__%s: wrong arguments in %q", name, m)
				}
				return false
			}
			return true
		}
		switch name {
		case "timeFilter":
			if need(true) {
				return fmt.Sprintf("%s >= toDateTime(%d) AND %s <= toDateTime(%d)", arg, from, arg, to)
			}
		case "fromTime":
			if need(false) {
				return fmt.Sprintf("toDateTime(%d)", from)
			}
		case "toTime":
			if need(false) {
				return fmt.Sprintf("toDateTime(%d)", to)
			}
		case "interval_s":
			if need(false) {
				return strconv.FormatInt(iv, 10)
			}
		case "timeInterval":
			if need(true) {
				return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %d second)", arg, iv)
			}
		default:
			if err == nil {
				err = fmt.Errorf("macro $__%s is not supported", name)
			}
		}
		return m
	})
	if err != nil {
		return "", err
	}
	out = varRe.ReplaceAllStringFunc(out, func(m string) string {
		sub := varRe.FindStringSubmatch(m)
		name, format := sub[1], sub[2]
		if name == "" {
			name = sub[3]
		}
		v, ok := env.Vars[name]
		if !ok {
			if err == nil {
				err = fmt.Errorf("variable $%s has no value", name)
			}
			return m
		}
		switch format {
		case "singlequote":
			return quoteAll(v.Values)
		case "":
			if v.Multi {
				return quoteAll(v.Values)
			}
			if len(v.Values) != 1 {
				if err == nil {
					err = fmt.Errorf("single-value variable $%s has %d values", name, len(v.Values))
				}
				return m
			}
			return v.Values[0]
		default:
			if err == nil {
				err = fmt.Errorf("variable format %q of $%s is not supported", format, name)
			}
			return m
		}
	})
	if err != nil {
		return "", err
	}
	return out, nil
}

var quoteEscaper = strings.NewReplacer(`'`, `\'`)

// quoteAll formats values as Grafana's singlequote does. No values give
// ” so that "col IN (”)" stays valid SQL and matches nothing real.
func quoteAll(values []string) string {
	if len(values) == 0 {
		return "''"
	}
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = "'" + quoteEscaper.Replace(v) + "'"
	}
	return strings.Join(q, ",")
}
