{{/*
Names, labels and the operator's arguments, shared by the templates.

Labels: deploy/ puts app.kubernetes.io/name and app.kubernetes.io/part-of on every object; the
chart adds Helm's standard ones (instance, managed-by, version, helm.sh/chart). Selectors use the
name label only, as deploy/ does, so the chart and deploy/ select the same pods: one release per
namespace.
*/}}

{{/* The chart's name, or nameOverride: the app.kubernetes.io/name label. */}}
{{- define "keypool-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The operator's own objects' name: fullnameOverride, else the release name when it contains the
chart's name, else "<release>-<chart name>" (Helm's usual rule).
*/}}
{{- define "keypool-operator.fullname" -}}
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

{{/* What the pods are selected by (Deployment, Services, PDB, NetworkPolicies, anti-affinity). */}}
{{- define "keypool-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keypool-operator.name" . }}
{{- end }}

{{/* Every object's labels: deploy/'s two and Helm's standard ones. */}}
{{- define "keypool-operator.labels" -}}
{{ include "keypool-operator.selectorLabels" . }}
app.kubernetes.io/part-of: keypool-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The image reference: repository, then @digest or :tag (default: the chart's appVersion). */}}
{{- define "keypool-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
`keypool operator`'s arguments. Settings left empty are not passed, so the operator's own default
(one place: src/config.ts) applies. Each row: flag, value.
*/}}
{{- define "keypool-operator.args" -}}
- operator
{{- if .Values.leaderElection.enabled }}
- --leader-elect
{{- end }}
{{- with .Values.watchNamespaces }}
- {{ printf "--namespaces=%s" (join "," .) | quote }}
{{- end }}
{{- $flags := list
  (list "leader-election-lease-duration" .Values.leaderElection.leaseDuration)
  (list "leader-election-renew-deadline" .Values.leaderElection.renewDeadline)
  (list "leader-election-retry-period" .Values.leaderElection.retryPeriod)
  (list "auth-audiences" (join "," .Values.auth.audiences))
  (list "auth-stale-grace" .Values.auth.staleGrace)
  (list "proxy-max-body" .Values.proxy.maxBody)
  (list "proxy-retry-body" .Values.proxy.retryBody)
  (list "proxy-max-wait-limit" .Values.proxy.maxWait)
  (list "shutdown-delay" .Values.shutdownDelay)
  (list "state-store" .Values.stateStore.url)
  (list "state-store-prefix" .Values.stateStore.prefix)
  (list "state-store-failure" .Values.stateStore.failure)
}}
{{- range $flags }}
{{- $value := toString (index . 1) }}
{{- if $value }}
- {{ printf "--%s=%s" (index . 0) $value | quote }}
{{- end }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* The container's environment: the state store's Secrets, the pod's namespace, the log level. */}}
{{- define "keypool-operator.env" -}}
{{- with .Values.stateStore.urlSecret }}
{{- if .name }}
- name: KEYPOOL_STATE_STORE
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- with .Values.stateStore.passwordSecret }}
{{- if .name }}
- name: KEYPOOL_STATE_STORE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: KEYPOOL_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The pods' affinity: affinity when set, else the podAntiAffinityPreset. */}}
{{- define "keypool-operator.affinity" -}}
{{- if .Values.affinity }}
{{- toYaml .Values.affinity }}
{{- else if eq .Values.podAntiAffinityPreset "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "keypool-operator.selectorLabels" . | nindent 12 }}
{{- else if eq .Values.podAntiAffinityPreset "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "keypool-operator.selectorLabels" . | nindent 10 }}
{{- end }}
{{- end }}

{{/*
Combinations of values the schema cannot rule out, each failing with what to change. Included by
deployment.yaml, so every render runs it.
*/}}
{{- define "keypool-operator.validate" -}}
{{- $v := .Values }}
{{- if and (gt (int $v.replicas) 1) (not $v.leaderElection.enabled) }}
{{- fail (printf "replicas is %d but leaderElection.enabled is false: several replicas need leader election (only the leader may write status). Set leaderElection.enabled=true or replicas=1." (int $v.replicas)) }}
{{- end }}
{{- if and $v.stateStore.url $v.stateStore.urlSecret.name }}
{{- fail "stateStore.url and stateStore.urlSecret.name are both set: give the state store's URL one way." }}
{{- end }}
{{- if and $v.stateStore.passwordSecret.name (not (or $v.stateStore.url $v.stateStore.urlSecret.name)) }}
{{- fail "stateStore.passwordSecret is set but the state store has no URL: set stateStore.url or stateStore.urlSecret.name." }}
{{- end }}
{{- with $v.podDisruptionBudget }}
{{- if and .enabled (not (toString .maxUnavailable)) (not (kindIs "string" .minAvailable)) (ge (int .minAvailable) (int $v.replicas)) }}
{{- fail (printf "podDisruptionBudget.minAvailable (%d) is not below replicas (%d): no node could ever be drained. Lower it, raise replicas, or set podDisruptionBudget.enabled=false." (int .minAvailable) (int $v.replicas)) }}
{{- end }}
{{- end }}
{{- end }}
