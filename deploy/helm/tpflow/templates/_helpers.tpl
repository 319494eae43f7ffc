{{/* Object names: the release and chart, or the overrides. */}}
{{- define "tpflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tpflow.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The name of a component's objects: (dict "root" $ "component" "collect"). */}}
{{- define "tpflow.componentName" -}}
{{- printf "%s-%s" (include "tpflow.fullname" .root | trunc 50 | trimSuffix "-") .component -}}
{{- end -}}

{{- define "tpflow.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "tpflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tpflow
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of a component's objects and the selector of its pods. */}}
{{- define "tpflow.componentLabels" -}}
{{ include "tpflow.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "tpflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tpflow.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "tpflow.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{- define "tpflow.secretName" -}}
{{- default (printf "%s-secrets" (include "tpflow.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Whether a Secret is mounted: one is made, or one exists. */}}
{{- define "tpflow.hasSecret" -}}
{{- if or .Values.secrets.existingSecret .Values.secrets.kafkaPassword .Values.secrets.clickhousePassword -}}true{{- end -}}
{{- end -}}

{{/*
tpflow.yaml: what the chart knows (brokers, ClickHouse, the HTTP port, the
collector's paths and files) with .Values.config merged over it.
*/}}
{{- define "tpflow.config" -}}
{{- $v := .Values -}}
{{- $kafka := dict "brokers" $v.kafka.brokers "replication_factor" $v.kafka.replicationFactor "compression" $v.kafka.compression "partitions" $v.kafka.partitions -}}
{{- if $v.kafka.tls.enabled -}}
{{- $_ := set $kafka "tls" (dict "enabled" true "ca_file" $v.kafka.tls.caFile) -}}
{{- end -}}
{{- if $v.kafka.sasl.mechanism -}}
{{- $sasl := dict "mechanism" $v.kafka.sasl.mechanism "username" $v.kafka.sasl.username -}}
{{- if or $v.secrets.existingSecret $v.secrets.kafkaPassword -}}
{{- $_ := set $sasl "password_file" "/etc/tpflow-secrets/kafka-password" -}}
{{- end -}}
{{- $_ := set $kafka "sasl" $sasl -}}
{{- end -}}
{{- $ch := dict "dsn" $v.clickhouse.dsn "database" $v.clickhouse.database "retention_days" $v.clickhouse.retentionDays -}}
{{- if or $v.secrets.existingSecret $v.secrets.clickhousePassword -}}
{{- $_ := set $ch "password_file" "/etc/tpflow-secrets/clickhouse-password" -}}
{{- end -}}
{{- $collect := dict "state_file" (printf "%s/state.json" $v.collect.stateDir) "metrics_enabled" $v.collect.nodeMetrics -}}
{{- $metrics := dict "proc_root" "/host/proc" "cgroup_root" "/host/sys/fs/cgroup" "file_systems" (list $v.collect.stateDir) -}}
{{- if not $v.collect.kmsg -}}
{{- $_ := set $metrics "kmsg" "" -}}
{{- end -}}
{{- $_ := set $collect "metrics" $metrics -}}
{{- if $v.topology -}}
{{- $_ := set $collect "topology" "/etc/tpflow/topology.yaml" -}}
{{- end -}}
{{- $cfg := dict "kafka" $kafka "clickhouse" $ch "collect" $collect "http" (dict "listen" (printf "0.0.0.0:%d" (int $v.http.port))) -}}
{{- if $v.alertRules -}}
{{- $files := list -}}
{{- range $name, $_ := $v.alertRules -}}
{{- $files = append $files (printf "/etc/tpflow-rules/%s" $name) -}}
{{- end -}}
{{- $_ := set $cfg "alert" (dict "rules_files" $files) -}}
{{- end -}}
{{- toYaml (mustMergeOverwrite $cfg (deepCopy $v.config)) -}}
{{- end -}}

{{/* The checksums that roll a component's pods when its configuration changes. */}}
{{- define "tpflow.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end -}}

{{/*
Quantities, for the node budget: tpflow.millicores of "250m", "1", "0.5";
tpflow.bytes of "64Mi", "1Gi", "500M", "1048576". values.schema.json admits
only these forms.
*/}}
{{- define "tpflow.millicores" -}}
{{- $s := toString . -}}
{{- if hasSuffix "m" $s -}}{{- trimSuffix "m" $s | float64 -}}{{- else -}}{{- mulf (float64 $s) 1000 -}}{{- end -}}
{{- end -}}

{{- define "tpflow.bytes" -}}
{{- $s := toString . -}}
{{- $units := dict "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0 -}}
{{- $unit := regexFind "(Ki|Mi|Gi|Ti|k|M|G|T)$" $s -}}
{{- if $unit -}}{{- mulf (float64 (trimSuffix $unit $s)) (get $units $unit) -}}{{- else -}}{{- float64 $s -}}{{- end -}}
{{- end -}}

{{/*
The node budget: fail, with the arithmetic, when the agent's requests are
over any node type's share of allocatable.
*/}}
{{- define "tpflow.checkBudget" -}}
{{- $req := .Values.collect.resources.requests -}}
{{- $cpu := include "tpflow.millicores" $req.cpu | float64 -}}
{{- $mem := include "tpflow.bytes" $req.memory | float64 -}}
{{- $errs := list -}}
{{- range .Values.nodeBudget.nodeTypes -}}
{{- $acpu := include "tpflow.millicores" .allocatable.cpu | float64 -}}
{{- $amem := include "tpflow.bytes" .allocatable.memory | float64 -}}
{{- $bcpu := divf (mulf $acpu .cpuPercent) 100 -}}
{{- $bmem := divf (mulf $amem .memoryPercent) 100 -}}
{{- if gt $cpu $bcpu -}}
{{- $errs = append $errs (printf "node type %s: collect.resources.requests.cpu %s = %.0fm > %v%% of allocatable cpu %s (%.0fm) = %.1fm" .name (toString $req.cpu) $cpu .cpuPercent (toString .allocatable.cpu) $acpu $bcpu) -}}
{{- end -}}
{{- if gt $mem $bmem -}}
{{- $errs = append $errs (printf "node type %s: collect.resources.requests.memory %s = %.1fMi > %v%% of allocatable memory %s (%.0fMi) = %.1fMi" .name (toString $req.memory) (divf $mem 1048576) .memoryPercent (toString .allocatable.memory) (divf $amem 1048576) (divf $bmem 1048576)) -}}
{{- end -}}
{{- end -}}
{{- if $errs -}}
{{- fail (printf "the collect agent's requests exceed the node budget (nodeBudget.nodeTypes):\n  %s\nlower collect.resources.requests or raise the node type's cpuPercent or memoryPercent" (join "\n  " $errs)) -}}
{{- end -}}
{{- end -}}

{{/*
The aggregators share the calls topic's partitions in one consumer group:
more of them than partitions would idle.
*/}}
{{- define "tpflow.checkAggregators" -}}
{{- $a := .Values.aggregate -}}
{{- $parts := int (default 8 .Values.kafka.partitions.calls) -}}
{{- $most := ternary (int $a.autoscaling.maxReplicas) (int $a.replicas) (and $a.autoscaling.enabled (.Capabilities.APIVersions.Has "external.metrics.k8s.io/v1beta1")) -}}
{{- if and $a.enabled (gt $most $parts) -}}
{{- fail (printf "%s %d is over kafka.partitions.calls %d: the aggregators share the calls topic's partitions, so %d of them would idle; lower it or raise kafka.partitions.calls (a topic that exists keeps its partitions)" (ternary "aggregate.autoscaling.maxReplicas" "aggregate.replicas" (and $a.autoscaling.enabled (.Capabilities.APIVersions.Has "external.metrics.k8s.io/v1beta1"))) $most $parts (sub $most $parts)) -}}
{{- end -}}
{{- end -}}

{{/* GOMEMLIMIT in bytes: collect.gomemlimitPercent of the memory limit. */}}
{{- define "tpflow.gomemlimit" -}}
{{- $lim := include "tpflow.bytes" .Values.collect.resources.limits.memory | float64 -}}
{{- printf "%.0f" (floor (divf (mulf $lim .Values.collect.gomemlimitPercent) 100)) -}}
{{- end -}}

{{/* Zone anti-affinity of a component: (dict "root" $ "component" "aggregate" "mode" "preferred"). */}}
{{- define "tpflow.zoneAffinity" -}}
{{- if eq .mode "preferred" }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: topology.kubernetes.io/zone
          labelSelector:
            matchLabels:
              {{- include "tpflow.selectorLabels" . | nindent 14 }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "tpflow.selectorLabels" . | nindent 8 }}
{{- else if eq .mode "required" }}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: topology.kubernetes.io/zone
        labelSelector:
          matchLabels:
            {{- include "tpflow.selectorLabels" . | nindent 12 }}
{{- end }}
{{- end -}}

{{/* The probes of a Deployment's container. */}}
{{- define "tpflow.probes" -}}
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 10
  failureThreshold: 3
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 20
  timeoutSeconds: 10
  failureThreshold: 6
{{- end -}}
