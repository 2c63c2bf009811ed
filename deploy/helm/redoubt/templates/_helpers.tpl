{{/* The release's objects are named RELEASE-redoubt (or RELEASE when it
already says redoubt), cut to Kubernetes' 63 characters. */}}
{{- define "redoubt.fullname" -}}
{{- if contains "redoubt" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-redoubt" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "redoubt.selectorLabels" -}}
app.kubernetes.io/name: redoubt
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Every pod of the release (server, export, destroy) has these: the
network policy selects them all. */}}
{{- define "redoubt.releaseLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: redoubt
{{- end -}}

{{- define "redoubt.labels" -}}
{{ include "redoubt.selectorLabels" . }}
app.kubernetes.io/part-of: redoubt
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "redoubt.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "redoubt.sharedSecretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "redoubt.fullname" .)) -}}
{{- end -}}

{{- define "redoubt.claimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-data" (include "redoubt.fullname" .)) -}}
{{- end -}}

{{- define "redoubt.publicBaseurl" -}}
{{- if .Values.publicBaseurl -}}
{{- .Values.publicBaseurl -}}
{{- else if and .Values.ingress.enabled .Values.ingress.host -}}
https://{{ .Values.ingress.host }}
{{- end -}}
{{- end -}}

{{/* redoubt.yaml: what the chart decides (where the data and secrets are
mounted, the listener, the shutdown time, the heap's share of the memory
limit, backups), with .Values.config merged over it. */}}
{{- define "redoubt.config" -}}
{{- $c := dict
  "server_name" .Values.serverName
  "listen" (printf "0.0.0.0:%d" (int .Values.service.port))
  "plain_http" true
  "database" "/data/redoubt.db"
  "shutdown_timeout" (printf "%ds" (int .Values.shutdownTimeoutSeconds))
  "registration_shared_secret_file" "/etc/redoubt/secrets/registration_shared_secret"
  "limits" (dict "memory" .Values.memoryLimitShare)
  "log" (dict "format" "json")
-}}
{{- with include "redoubt.publicBaseurl" . }}{{ $_ := set $c "public_baseurl" . }}{{ end -}}
{{- with .Values.trustedProxies }}{{ $_ := set $c "trusted_proxies" . }}{{ end -}}
{{- if .Values.metrics.enabled }}{{ $_ := set $c "metrics" (dict "listen" (printf "0.0.0.0:%d" (int .Values.metrics.port))) }}{{ end -}}
{{- $b := dict "recipients" .Values.backup.recipients -}}
{{- if .Values.backup.destinations -}}
{{- if not .Values.backup.recipients }}{{ fail "backup.destinations need backup.recipients to encrypt to" }}{{ end -}}
{{- $ds := list -}}
{{- range .Values.backup.destinations -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$" (toString .name)) }}{{ fail (printf "backup destination %q: a name of lowercase letters, digits and '-' (it names a volume)" (toString .name)) }}{{ end -}}
{{- if not .credentialsSecret }}{{ fail (printf "backup destination %s: credentialsSecret names the Secret with its access_key and secret_key" .name) }}{{ end -}}
{{- $d := omit . "credentialsSecret" -}}
{{- $_ := set $d "access_key_file" (printf "/etc/redoubt/s3/%s/access_key" .name) -}}
{{- $_ := set $d "secret_key_file" (printf "/etc/redoubt/s3/%s/secret_key" .name) -}}
{{- $ds = append $ds $d -}}
{{- end -}}
{{- $_ := set $b "destinations" $ds -}}
{{- $_ := set $b "interval" .Values.backup.interval -}}
{{- end -}}
{{- $_ := set $c "backup" $b -}}
{{- toYaml (mergeOverwrite $c (deepCopy .Values.config)) -}}
{{- end -}}

{{/* The pod's security context and the container's: non-root, nothing
writable but the data directory and /tmp, no privilege, no capability,
the runtime's seccomp profile. Shared by the server and the export job. */}}
{{- define "redoubt.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "redoubt.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The volumes both the server and the export job mount: the data, the
configuration, the shared secret, each destination's credentials, /tmp. */}}
{{- define "redoubt.volumes" -}}
- name: data
  persistentVolumeClaim:
    claimName: {{ include "redoubt.claimName" . }}
- name: config
  secret:
    secretName: {{ include "redoubt.fullname" . }}-config
    defaultMode: 0440
- name: secrets
  secret:
    secretName: {{ include "redoubt.sharedSecretName" . }}
    defaultMode: 0440
    items:
      - key: registration_shared_secret
        path: registration_shared_secret
{{- range .Values.backup.destinations }}
- name: s3-{{ .name }}
  secret:
    secretName: {{ .credentialsSecret }}
    defaultMode: 0440
    items:
      - {key: access_key, path: access_key}
      - {key: secret_key, path: secret_key}
{{- end }}
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
{{- end -}}

{{- define "redoubt.volumeMounts" -}}
- {name: data, mountPath: /data}
- {name: config, mountPath: /etc/redoubt/config, readOnly: true}
- {name: secrets, mountPath: /etc/redoubt/secrets, readOnly: true}
{{- range .Values.backup.destinations }}
- {name: s3-{{ .name }}, mountPath: /etc/redoubt/s3/{{ .name }}, readOnly: true}
{{- end }}
- {name: tmp, mountPath: /tmp}
{{- end -}}

{{/* The pod settings every pod of the release shares: its account with no
token, no service links, the security context, pull secrets, placement. */}}
{{- define "redoubt.podCommon" -}}
serviceAccountName: {{ include "redoubt.fullname" . }}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- include "redoubt.podSecurityContext" . | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* A container running the image with args (a list), as isolated as
every other: dict "root" $ "name" NAME "args" LIST. Its caller adds ports,
probes and mounts. */}}
{{- define "redoubt.container" -}}
- name: {{ .name }}
  image: {{ include "redoubt.image" .root }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  args: {{ toJson .args }}
  resources:
    {{- toYaml .root.Values.resources | nindent 4 }}
  securityContext:
    {{- include "redoubt.containerSecurityContext" .root | nindent 4 }}
{{- end -}}

{{/* Fails unless name is one of backup.destinations: dict "root" $ "name"
NAME "key" VALUE-KEY. */}}
{{- define "redoubt.requireDestination" -}}
{{- $names := list -}}
{{- range .root.Values.backup.destinations }}{{ $names = append $names .name }}{{ end -}}
{{- if not (has .name $names) }}{{ fail (printf "%s %q is not one of backup.destinations" .key .name) }}{{ end -}}
{{- end -}}
