package dashboards

import (
	"encoding/json"
	"errors"

	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
)

// Data source identities, shared by the provisioning file and every panel.
const (
	ClickHouseType = "grafana-clickhouse-datasource"
	ClickHouseUID  = "tpflow-clickhouse"
	PrometheusType = "prometheus"
	PrometheusUID  = "tpflow-prometheus"
)

func ref(typ, uid string) common.DataSourceRef {
	return common.DataSourceRef{Type: &typ, Uid: &uid}
}

// ClickHouseRef and PrometheusRef point a panel or a variable at the
// provisioned data sources.
var (
	ClickHouseRef = ref(ClickHouseType, ClickHouseUID)
	PrometheusRef = ref(PrometheusType, PrometheusUID)
)

// Format is the plugin's result format: how Grafana turns rows into frames.
type Format int

// The grafana-clickhouse-datasource formats (its Format enum).
const (
	FormatTimeSeries Format = 0
	FormatTable      Format = 1
)

// CHQuery is one raw-SQL query of the grafana-clickhouse-datasource plugin.
// RawSQL may use the macros that Expand implements and ${var:singlequote}
// template variables.
type CHQuery struct {
	RefID      string               `json:"refId"`
	Datasource common.DataSourceRef `json:"datasource"`
	EditorType string               `json:"editorType"`
	QueryType  string               `json:"queryType"`
	Format     Format               `json:"format"`
	RawSQL     string               `json:"rawSql"`
}

// ImplementsDataqueryVariant marks CHQuery as a panel target.
func (CHQuery) ImplementsDataqueryVariant() {}

// DataqueryType returns the plugin id.
func (CHQuery) DataqueryType() string { return ClickHouseType }

// Equals reports whether other is the same query.
func (q CHQuery) Equals(other variants.Dataquery) bool {
	o, ok := other.(CHQuery)
	if !ok {
		return false
	}
	a, _ := json.Marshal(q)
	b, _ := json.Marshal(o)
	return string(a) == string(b)
}

// Validate rejects a query without SQL.
func (q CHQuery) Validate() error {
	if q.RawSQL == "" {
		return errors.New("clickhouse query " + q.RefID + " has no SQL")
	}
	return nil
}

// chBuilder adapts a CHQuery to the SDK's panel WithTarget.
type chBuilder struct{ q CHQuery }

func (b chBuilder) Build() (variants.Dataquery, error) { return b.q, b.q.Validate() }

func chSeries(refID, sql string) chBuilder {
	return chBuilder{CHQuery{RefID: refID, Datasource: ClickHouseRef, EditorType: "sql", QueryType: "timeseries", Format: FormatTimeSeries, RawSQL: sql}}
}

func chTable(refID, sql string) chBuilder {
	return chBuilder{CHQuery{RefID: refID, Datasource: ClickHouseRef, EditorType: "sql", QueryType: "table", Format: FormatTable, RawSQL: sql}}
}
