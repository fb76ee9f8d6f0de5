{{/*
Chart name, cut to 63 characters (the DNS label limit of a Kubernetes name).
*/}}
{{- define "bookstore-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the chart's resources: the release name, plus the chart name unless the release
name already contains it; cut to 63 characters.
*/}}
{{- define "bookstore-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "bookstore-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource.
*/}}
{{- define "bookstore-operator.labels" -}}
helm.sh/chart: {{ include "bookstore-operator.chart" . }}
{{ include "bookstore-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: bookstore
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the operator pods (never change them: Deployment selectors are immutable).
*/}}
{{- define "bookstore-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bookstore-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the operator's ServiceAccount.
*/}}
{{- define "bookstore-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bookstore-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Operator image: repository and tag (the tag defaults to the chart's appVersion).
*/}}
{{- define "bookstore-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The operator's least-privilege rules, read from files/rbac/role.yaml: a byte-identical copy
of operator/rbac/role.yaml (the single source; a test proves the copy is identical).
*/}}
{{- define "bookstore-operator.rules" -}}
{{- $role := .Files.Get "files/rbac/role.yaml" | fromYaml }}
{{- $role.rules | default list | toYaml }}
{{- end }}

{{/*
Name of the Service in front of the operator's /metrics (the `job` of its scraped series).
*/}}
{{- define "bookstore-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "bookstore-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The label that tells the metrics Service from any other Service of the release.
*/}}
{{- define "bookstore-operator.metricsLabels" -}}
bookstore.dev/metrics: "operator"
{{- end }}
