package schemas

// Label names every event carries where known. The first six are always set
// (empty when unknown); pod, namespace and container only for containers.
const (
	LabelSystem    = "system"
	LabelApp       = "app"
	LabelGroup     = "group"
	LabelIDC       = "idc"
	LabelEnv       = "env"
	LabelHost      = "host"
	LabelPod       = "pod"
	LabelNamespace = "namespace"
	LabelContainer = "container"
)

// SchemaVersion is the EventBatch schema version this build writes and the
// only one it reads.
const SchemaVersion = 1

// Label is one name=value pair.
type Label struct {
	Name, Value string
}
