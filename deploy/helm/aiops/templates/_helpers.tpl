{{/* Names, labels and the pieces every service's objects share. */}}

{{- define "aiops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "aiops.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "aiops.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "aiops.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object of the release. */}}
{{- define "aiops.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "aiops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aiops
{{- end -}}

{{/* Selects every pod of the release (the default-deny NetworkPolicy). */}}
{{- define "aiops.releaseSelector" -}}
app.kubernetes.io/name: {{ include "aiops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Context: dict "root" $ "name" SERVICE. Selects the pods of one service. */}}
{{- define "aiops.selectorLabels" -}}
{{ include "aiops.releaseSelector" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "aiops.serviceLabels" -}}
{{ include "aiops.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* Context: dict "root" $ "name" SERVICE. */}}
{{- define "aiops.serviceName" -}}
{{- printf "%s-%s" (include "aiops.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Context: dict "root" $ "name" SERVICE "svc" BLOCK. The GPU variant takes the CUDA image. */}}
{{- define "aiops.image" -}}
{{- $image := .svc.image -}}
{{- if and .svc.gpu .svc.gpu.enabled -}}
{{- $image = .svc.gpu.image -}}
{{- end -}}
{{- $tag := $image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if .root.Values.image.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .root.Values.image.registry) $image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding AIOPS_TOPOLOGY_URL, AIOPS_DOCUMENTS_URL and AIOPS_FEEDBACK_URL. */}}
{{- define "aiops.storesSecret" -}}
{{- .Values.storeCredentials.existingSecret | default (printf "%s-stores" (include "aiops.fullname" .)) -}}
{{- end -}}

{{- define "aiops.gatewaySecret" -}}
{{- .Values.gateway.existingSecret | default (printf "%s-gateway" (include "aiops.fullname" .)) -}}
{{- end -}}

{{- define "aiops.notifySecret" -}}
{{- .Values.action.notify.existingSecret | default (printf "%s-action-notify" (include "aiops.fullname" .)) -}}
{{- end -}}

{{- define "aiops.notifyEnabled" -}}
{{- if or .Values.action.notify.existingSecret .Values.action.notify.config -}}true{{- end -}}
{{- end -}}

{{/* A store URL with credentials: scheme://user:password@rest (both URL-escaped). */}}
{{- define "aiops.urlWithCredentials" -}}
{{- if .username -}}
{{- $userinfo := printf "%s:%s@" (urlquery .username) (urlquery .password) -}}
{{- regexReplaceAll "^([a-z0-9+.-]+)://" .url (printf "${1}://%s" $userinfo) -}}
{{- else -}}
{{- .url -}}
{{- end -}}
{{- end -}}

{{/*
The feedback store's URL without credentials: feedbackStore.url, else the document store's Elasticsearch
(endpoints.elasticsearch), with its path (the document store's index prefix) replaced by feedbackStore.indexPrefix.
*/}}
{{- define "aiops.feedbackUrl" -}}
{{- $base := .Values.feedbackStore.url | default .Values.endpoints.elasticsearch -}}
{{- printf "%s/%s" (regexReplaceAll "^([a-z]+://[^/]+).*$" $base "${1}") .Values.feedbackStore.indexPrefix -}}
{{- end -}}

{{/* Kafka bootstrap servers (host:port,host:port) from the kafka:// URL, for KEDA. */}}
{{- define "aiops.kafkaBootstrap" -}}
{{- $hosts := list -}}
{{- range (regexReplaceAll "^[a-z]+://" .Values.endpoints.kafka "" | replace ";" "," | splitList ",") -}}
{{- if . -}}
{{- $hosts = append $hosts (ternary . (printf "%s:9092" .) (contains ":" .)) -}}
{{- end -}}
{{- end -}}
{{- join "," $hosts -}}
{{- end -}}

{{/*
Replicas a Faust service can use: its input topic's partitions, and at least two (the second a warm standby
that takes the partition over when the first goes). Services without `partitions` (HTTP) scale freely.
*/}}
{{- define "aiops.replicaBound" -}}
{{- if .svc.partitions -}}{{- max (int .svc.partitions) 2 -}}{{- else -}}0{{- end -}}
{{- end -}}

{{/* Fewest replicas the service runs (the autoscaler's minimum when it scales). */}}
{{- define "aiops.minReplicas" -}}
{{- if .svc.autoscaling.enabled -}}{{- .svc.autoscaling.minReplicas -}}{{- else -}}{{- .svc.replicas -}}{{- end -}}
{{- end -}}

{{/* Egress rules: DNS, then each store in .stores (kafka, victoriametrics, neo4j, elasticsearch). */}}
{{- define "aiops.egressDnsAndStores" -}}
{{- $np := .root.Values.networkPolicy -}}
- to:
    {{- toYaml $np.dns.to | nindent 4 }}
  ports:
    {{- range $np.dns.ports }}
    - port: {{ . }}
      protocol: UDP
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- range .stores }}
{{- $backend := get $np.backends . }}
- to:
    {{- toYaml $backend.to | nindent 4 }}
  ports:
    {{- range $backend.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end }}
{{- end -}}

{{/* Where people reach the UI: gateway.publicUrl, else the gateway's Ingress host; empty without either. */}}
{{- define "aiops.publicUrl" -}}
{{- if .Values.gateway.publicUrl -}}
{{- .Values.gateway.publicUrl -}}
{{- else if .Values.ingress.enabled -}}
{{- printf "%s://%s" (ternary "https" "http" (not (empty .Values.ingress.gateway.tlsSecretName))) .Values.ingress.gateway.host -}}
{{- end -}}
{{- end -}}
