{{/* The chart name, or nameOverride. */}}
{{- define "sigwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name: fullnameOverride, else the release name when it contains the chart name
(release "sigwatch" gives the names of config/default: sigwatch-controller-manager, ...), else
<release>-<chart>. Kept to 28 characters so that the longest name built on it,
<fullname>-controller-manager-metrics-service (35 more), stays within 63, and the shards' StatefulSet
name, <fullname>-controller-manager, within the 52 that leave room for its pods' controller-revision-hash
label.
*/}}
{{- define "sigwatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 28 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 28 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 28 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sigwatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "sigwatch.labels" -}}
helm.sh/chart: {{ include "sigwatch.chart" . }}
app.kubernetes.io/name: {{ include "sigwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: sigwatch
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The labels that select the manager's pods (config/default's, and the release). */}}
{{- define "sigwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sigwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end }}

{{- define "sigwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-controller-manager" (include "sigwatch.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sigwatch.leaderElectionNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{- define "sigwatch.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* flag renders --name=value when value is set (not null, not ""). */}}
{{- define "sigwatch.flag" -}}
{{- $v := index . 1 }}
{{- if not (kindIs "invalid" $v) }}
{{- if ne (toString $v) "" }}
{{- /* YAML numbers arrive as float64: 1000000 must not become 1e+06. */}}
{{- if and (kindIs "float64" $v) (eq (float64 (int64 $v)) $v) }}
{{- $v = int64 $v }}
{{- end }}
- {{ printf "--%s=%v" (index . 0) $v | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The manager's arguments: `manager` and one flag per value that is set. With the default values they are
config/default's: manager --leader-elect --metrics-bind-address=:8443 --health-probe-bind-address=:8081.
*/}}
{{- define "sigwatch.args" -}}
{{- $m := .Values.manager }}
{{- $log := .Values.logging }}
- manager
{{- if .Values.leaderElection.enabled }}
- --leader-elect
{{- else }}
- --leader-elect=false
{{- end }}
{{- include "sigwatch.flag" (list "leader-election-namespace" .Values.leaderElection.namespace) }}
{{- if .Values.metrics.enabled }}
- {{ printf "--metrics-bind-address=:%v" .Values.metrics.port | quote }}
{{- else }}
- --metrics-bind-address=0
{{- end }}
{{- if not .Values.metrics.secure }}
- --metrics-secure=false
{{- end }}
{{- if .Values.metrics.imageMetrics }}
- --image-metrics
{{- end }}
- {{ printf "--health-probe-bind-address=:%v" .Values.healthProbe.port | quote }}
{{- include "sigwatch.flag" (list "max-concurrent-verifications" $m.maxConcurrentVerifications) }}
{{- include "sigwatch.flag" (list "max-verifications-per-registry" $m.maxVerificationsPerRegistry) }}
{{- include "sigwatch.flag" (list "pod-workers" $m.podWorkers) }}
{{- include "sigwatch.flag" (list "gc-grace" $m.gcGrace) }}
{{- include "sigwatch.flag" (list "no-match-policy" $m.noMatchPolicy) }}
{{- range $m.insecureRegistries }}
- {{ printf "--insecure-registry=%s" . | quote }}
{{- end }}
{{- if $m.offlineTrustRoot }}
- --offline-trust-root
{{- end }}
{{- include "sigwatch.flag" (list "tuf-cache-dir" $m.tufCacheDir) }}
{{- if or $m.tufMirror $m.tufRootConfigMap }}
{{- if not (and $m.tufMirror $m.tufRootConfigMap) }}
{{- fail "manager.tufMirror and manager.tufRootConfigMap go together" }}
{{- end }}
{{- include "sigwatch.flag" (list "tuf-mirror" $m.tufMirror) }}
- --tuf-root=/etc/sigwatch/tuf-root/root.json
{{- end }}
{{- include "sigwatch.flag" (list "max-trust-root-age" $m.maxTrustRootAge) }}
{{- include "sigwatch.flag" (list "registry-timeout" $m.registryTimeout) }}
{{- include "sigwatch.flag" (list "verification-timeout" $m.verificationTimeout) }}
{{- include "sigwatch.flag" (list "max-signature-bytes" $m.maxSignatureBytes) }}
{{- include "sigwatch.flag" (list "signature-memory-budget" $m.signatureMemoryBudget) }}
{{- /* The manager's default: not rendered, so that the defaults' args stay config/default's. */}}
{{- if ne (toString $m.cloudCredentials) "gcp,aws,azure" }}
{{- include "sigwatch.flag" (list "cloud-credentials" $m.cloudCredentials) }}
{{- end }}
{{- range $m.cloudRegistries }}
- {{ printf "--cloud-registry=%s" . | quote }}
{{- end }}
{{- include "sigwatch.flag" (list "pprof-bind-address" $m.pprofBindAddress) }}
{{- /* auto is the manager's default: not rendered, as for cloudCredentials. */}}
{{- if ne (toString $m.policyReports) "auto" }}
{{- include "sigwatch.flag" (list "policy-reports" $m.policyReports) }}
{{- end }}
{{- if not $m.transparencyLogChecks }}
- --transparency-log-checks=false
{{- end }}
{{- include "sigwatch.flag" (list "transparency-log-interval" $m.transparencyLogInterval) }}
{{- include "sigwatch.flag" (list "transparency-log-rollback-grace" $m.transparencyLogRollbackGrace) }}
{{- range $m.transparencyLogURLs }}
- {{ printf "--transparency-log-url=%s" . | quote }}
{{- end }}
{{- include "sigwatch.secretAccessArgs" . }}
{{- include "sigwatch.flag" (list "zap-log-level" $log.level) }}
{{- include "sigwatch.flag" (list "zap-encoder" $log.encoder) }}
{{- include "sigwatch.flag" (list "zap-stacktrace-level" $log.stacktraceLevel) }}
{{- include "sigwatch.flag" (list "zap-time-encoding" $log.timeEncoding) }}
{{- if $log.devel }}
- --zap-devel
{{- end }}
{{- if .Values.shards.enabled }}
- {{ printf "--total-shards=%v" (int .Values.shards.count) | quote }}
- --shard=-1
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
The flags of secretAccess and registryConfig (docs/security.md#choosing-an-rbac-mode). The default mode,
cluster, renders no flag, so that the defaults' args stay config/default's. Values that cannot work fail
here, at helm install.
*/}}
{{- define "sigwatch.secretAccessArgs" -}}
{{- $a := .Values.secretAccess }}
{{- if eq $a.mode "namespaces" }}
{{- if not $a.namespaces }}
{{- fail "secretAccess.mode=namespaces needs secretAccess.namespaces (the namespaces whose Secrets the manager reads)" }}
{{- end }}
- --secret-access=namespaces
- {{ printf "--secret-namespaces=%s" (join "," $a.namespaces) | quote }}
{{- else if $a.namespaces }}
{{- fail (printf "secretAccess.namespaces is only for secretAccess.mode=namespaces (it is %s)" $a.mode) }}
{{- else if eq $a.mode "none" }}
- --secret-access=none
{{- end }}
{{- if .Values.registryConfig.secretName }}
- --registry-config=/etc/sigwatch/registry/config.json
{{- end }}
{{- end }}

{{/* The manager's pod template: the Deployment's, and the shards' StatefulSet's. */}}
{{- define "sigwatch.podTemplate" -}}
metadata:
  annotations:
    kubectl.kubernetes.io/default-container: manager
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  # The selector's labels, not the chart's version: a new chart version alone rolls no pod.
  labels:
    {{- include "sigwatch.selectorLabels" . | nindent 4 }}
    app.kubernetes.io/part-of: sigwatch
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "sigwatch.serviceAccountName" . }}
  terminationGracePeriodSeconds: 10
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: manager
      image: {{ include "sigwatch.image" . | quote }}
      {{- with .Values.image.pullPolicy }}
      imagePullPolicy: {{ . }}
      {{- end }}
      # No command: the image's entrypoint (/ko-app/sigwatch, from ko) runs
      # the args, as in config/manager/manager.yaml.
      args:
        {{- include "sigwatch.args" . | trim | nindent 8 }}
      ports:
        {{- if .Values.metrics.enabled }}
        - name: metrics
          containerPort: {{ .Values.metrics.port }}
          protocol: TCP
        {{- end }}
        - name: health
          containerPort: {{ .Values.healthProbe.port }}
          protocol: TCP
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.livenessProbe }}
      livenessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.readinessProbe }}
      readinessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        # The Sigstore TUF client caches the public-good trust root here.
        - name: tuf-cache
          mountPath: /home/nonroot/.sigstore
        - name: tmp
          mountPath: /tmp
        {{- if .Values.registryConfig.secretName }}
        - name: registry-config
          mountPath: /etc/sigwatch/registry
          readOnly: true
        {{- end }}
        {{- if .Values.manager.tufRootConfigMap }}
        - name: tuf-root
          mountPath: /etc/sigwatch/tuf-root
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      env:
        - name: HOME
          value: /home/nonroot
        {{- with .Values.goMemLimit }}
        - name: GOMEMLIMIT
          value: {{ . | quote }}
        {{- end }}
        {{- if .Values.shards.enabled }}
        # The StatefulSet ordinal at the end of the pod name is the shard (--shard=-1).
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: tuf-cache
      emptyDir: {}
    - name: tmp
      emptyDir: {}
    {{- with .Values.manager.tufRootConfigMap }}
    # --tuf-root: the initial root.json of --tuf-mirror.
    - name: tuf-root
      configMap:
        name: {{ . }}
        items:
          - key: root.json
            path: root.json
    {{- end }}
    {{- with .Values.registryConfig.secretName }}
    # --registry-config: optional, so that the manager starts without it (no credentials from it).
    - name: registry-config
      secret:
        secretName: {{ . }}
        optional: true
        items:
          - key: {{ $.Values.registryConfig.key | quote }}
            path: config.json
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
