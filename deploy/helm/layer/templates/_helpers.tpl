{{/* Names, labels and the render-time checks shared by every template. */}}

{{- define "layer.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "layer.labels" -}}
app.kubernetes.io/part-of: layer
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Selector labels of one component: include "layer.selector" (list $ "gateway") */}}
{{- define "layer.selector" -}}
app.kubernetes.io/name: {{ printf "layer-%s" (index . 1) }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
{{- end -}}

{{- define "layer.componentLabels" -}}
{{ include "layer.labels" (index . 0) }}
{{ include "layer.selector" . }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* The release Secret: the upstream credential, rendered inbound keys, the license. */}}
{{- define "layer.secretName" -}}{{ include "layer.fullname" . }}{{- end -}}

{{- define "layer.gatewayName" -}}{{ include "layer.fullname" . }}-gateway{{- end -}}

{{- define "layer.gatewayUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "layer.gatewayName" .) .Release.Namespace .Values.gateway.port -}}
{{- end -}}

{{/* Secret and key holding the default store's credential. */}}
{{- define "layer.credentialSecret" -}}
{{- default (include "layer.secretName" .) .Values.vectorStore.credential.existingSecret -}}
{{- end -}}

{{/* The bearer workers, KEDA and the dashboard send: a Secret name and key, or "" (open mode). */}}
{{- define "layer.workerSecretName" -}}
{{- $a := .Values.vectorStore.inboundAuth -}}
{{- if eq $a.mode "keys" -}}{{ default (include "layer.secretName" .) $a.workerSecretName }}
{{- else if eq $a.mode "deriveFromStore" -}}{{ include "layer.credentialSecret" . }}
{{- end -}}
{{- end -}}
{{- define "layer.workerSecretKey" -}}
{{- $a := .Values.vectorStore.inboundAuth -}}
{{- if eq $a.mode "keys" -}}{{ default "layer-inbound-worker-api-key" $a.workerSecretKey }}
{{- else if eq $a.mode "deriveFromStore" -}}{{ .Values.vectorStore.credential.secretKey }}
{{- end -}}
{{- end -}}

{{/* A key's Secret key name: secretRef.key, else layer-inbound-<name>-api-key. */}}
{{- define "layer.keySecretKey" -}}
{{- $ref := default dict .secretRef -}}
{{- default (printf "layer-inbound-%s-api-key" .name) $ref.key -}}
{{- end -}}

{{- define "layer.databaseSecretName" -}}
{{- if .Values.gateway.queue.embedded -}}{{ include "layer.fullname" . }}-postgres
{{- else if .Values.gateway.queue.existingSecret -}}{{ .Values.gateway.queue.existingSecret }}
{{- else -}}{{ include "layer.secretName" . }}
{{- end -}}
{{- end -}}
{{- define "layer.databaseSecretKey" -}}
{{- if and (not .Values.gateway.queue.embedded) .Values.gateway.queue.existingSecret -}}{{ .Values.gateway.queue.existingSecretKey }}
{{- else -}}database-url
{{- end -}}
{{- end -}}

{{- define "layer.metricsUrl" -}}
{{- if .Values.metrics.embedded -}}{{ printf "http://%s-metrics.%s.svc:8428" (include "layer.fullname" .) .Release.Namespace }}
{{- else -}}{{ .Values.metrics.externalEndpoint }}
{{- end -}}
{{- end -}}

{{- define "layer.imagePullSecrets" -}}{{- end -}}

{{/* Restricted pod security for Layer's own containers. */}}
{{- define "layer.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/*
Render-time checks: a values file that cannot work fails here with the value to fix, instead of
rendering objects that crash-loop.
*/}}
{{- define "layer.validate" -}}
{{- $v := .Values -}}
{{- if not $v.gateway.image -}}{{ fail "gateway.image is required (the gateway image, e.g. Terraform's ECR output)" }}{{- end -}}
{{- if not (or $v.vectorStore.credential.apiKey $v.vectorStore.credential.existingSecret) -}}
{{ fail "vectorStore.credential.apiKey is required (or vectorStore.credential.existingSecret naming a pre-created Secret)" }}
{{- end -}}
{{- if not $v.s3.bucket -}}{{ fail "s3.bucket is required (snapshots, search history and clickstream live there)" }}{{- end -}}
{{- if not (has $v.vectorStore.inboundAuth.mode (list "deriveFromStore" "keys" "open")) -}}
{{ fail (printf "vectorStore.inboundAuth.mode must be deriveFromStore, keys or open, not %q" $v.vectorStore.inboundAuth.mode) }}
{{- end -}}
{{- if ne $v.vectorStore.kind "turbopuffer" -}}{{ fail "vectorStore.kind: turbopuffer is the only store kind Layer serves" }}{{- end -}}
{{- $keys := $v.vectorStore.inboundAuth.keys -}}
{{- range $v.vectorStores -}}{{- $keys = concat $keys (default list .keys) -}}{{- end -}}
{{- if eq $v.vectorStore.inboundAuth.mode "keys" -}}
  {{- if not $keys -}}{{ fail "vectorStore.inboundAuth.mode=keys needs at least one entry in vectorStore.inboundAuth.keys" }}{{- end -}}
{{- else if $keys -}}
  {{ fail "inboundAuth.keys are only read in keys mode (vectorStore.inboundAuth.mode=keys)" }}
{{- end -}}
{{- range $keys -}}
  {{- if not .name -}}{{ fail "every inbound key needs a name" }}{{- end -}}
  {{- if not .scopes -}}{{ fail (printf "inbound key %s needs scopes (read, write, admin)" .name) }}{{- end -}}
  {{- range .scopes -}}{{- if not (has . (list "read" "write" "admin")) -}}{{ fail (printf "unknown key scope %q (read, write, admin)" .) }}{{- end -}}{{- end -}}
  {{- $ref := default dict .secretRef -}}
  {{- if not (or .apiKey $ref.name) -}}{{ fail (printf "inbound key %s needs apiKey, or secretRef.name naming a pre-created Secret" .name) }}{{- end -}}
{{- end -}}
{{- range $i, $s := $v.vectorStores -}}
  {{- if not $s.name -}}{{ fail (printf "vectorStores[%d].name is required" $i) }}{{- end -}}
  {{- if not (and $s.endpoint $s.endpoint.url) -}}{{ fail (printf "vectorStores[%d].endpoint.url is required" $i) }}{{- end -}}
  {{- $c := default dict $s.credential -}}
  {{- if not (or $c.apiKey $c.existingSecret) -}}{{ fail (printf "vectorStores[%d].credential.apiKey (or existingSecret) is required" $i) }}{{- end -}}
{{- end -}}
{{- if $v.dashboard.enabled -}}
  {{- if not $v.dashboard.image -}}{{ fail "dashboard.image is required while dashboard.enabled (or set dashboard.enabled=false)" }}{{- end -}}
  {{- if or (not $v.dashboard.basicAuth.user) (not $v.dashboard.basicAuth.password) -}}
  {{ fail "dashboard.basicAuth.user and dashboard.basicAuth.password are required while dashboard.enabled: the dashboard refuses to start without basic auth" }}
  {{- end -}}
{{- end -}}
{{- if and $v.operator.enabled (not $v.operator.image) -}}{{ fail "operator.image is required while operator.enabled" }}{{- end -}}
{{- if and (not $v.gateway.queue.embedded) (not (or $v.gateway.queue.url $v.gateway.queue.existingSecret)) -}}
{{ fail "gateway.queue.embedded=false needs gateway.queue.url or gateway.queue.existingSecret (the external PostgreSQL)" }}
{{- end -}}
{{- if not (has $v.gateway.cache.tier (list "nvme" "aerospike" "disabled")) -}}{{ fail "gateway.cache.tier must be nvme, aerospike or disabled" }}{{- end -}}
{{- if and (eq $v.gateway.cache.tier "aerospike") (not $v.documentCache.enabled) -}}{{ fail "gateway.cache.tier=aerospike needs documentCache.enabled=true" }}{{- end -}}
{{- if and $v.metrics.enabled (not $v.metrics.embedded) (not $v.metrics.externalEndpoint) -}}{{ fail "metrics.embedded=false needs metrics.externalEndpoint" }}{{- end -}}
{{- range $name := list "gateway.lattice" "gateway.localClip" "search" -}}
  {{- $node := $v -}}{{- range splitList "." $name -}}{{- $node = index $node . -}}{{- end -}}
  {{- if $node.enabled -}}{{ fail (printf "%s.enabled: this chart does not render it (Layer has no such component yet); leave it false" $name) }}{{- end -}}
{{- end -}}
{{- end -}}
