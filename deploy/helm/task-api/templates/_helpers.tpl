{{/*
Labels on every object: a workload's name and component (its selector's two, as in the
overlays), plus Helm's bookkeeping labels.
*/}}
{{- define "task-api.labels" -}}
{{- with .component }}
app.kubernetes.io/name: task-api
app.kubernetes.io/component: {{ . }}
{{- end }}
app.kubernetes.io/part-of: task-api
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end }}

{{- define "task-api.selector" -}}
app.kubernetes.io/name: task-api
app.kubernetes.io/component: {{ . }}
{{- end }}

{{- define "task-api.image" -}}
{{ printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Every pod of ours: a non-root user, the runtime's seccomp profile, no API token. */}}
{{- define "task-api.podSecurity" -}}
serviceAccountName: task-api
automountServiceAccountToken: false
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{- define "task-api.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  privileged: false
  capabilities:
    drop: ["ALL"]
{{- end }}

{{/* The settings (ConfigMap) and the secrets every process reads, by reference only. */}}
{{- define "task-api.environment" -}}
envFrom:
  - configMapRef:
      name: task-api-config
env:
  - name: DATABASE_URL
    valueFrom:
      secretKeyRef:
        name: task-api
        key: DATABASE_URL
{{- if .migrate }}
  - name: DATABASE_MIGRATION_URL
    valueFrom:
      secretKeyRef:
        name: task-api
        key: DATABASE_MIGRATION_URL
{{- end }}
  - name: JWT_SECRET
    valueFrom:
      secretKeyRef:
        name: task-api
        key: JWT_SECRET
{{- end }}

{{/*
Reminders that reach a person (docs/guides/reminders.md), for the API and the worker: each key
optional in the task-api Secret; without VAPID_PRIVATE_KEY production sends no push.
*/}}
{{- define "task-api.reminderSecrets" -}}
- name: VAPID_PRIVATE_KEY
  valueFrom:
    secretKeyRef:
      name: task-api
      key: VAPID_PRIVATE_KEY
      optional: true
- name: SMTP_PASSWORD
  valueFrom:
    secretKeyRef:
      name: task-api
      key: SMTP_PASSWORD
      optional: true
{{- end }}

{{/*
`serve` and `worker` refuse to start while a migration is pending (exit 1, then a growing
restart back-off): they wait here instead, until `check` passes (the database answers, every
migration applied by the migrations Job).
*/}}
{{- define "task-api.waitForMigrations" -}}
- name: wait-for-migrations
  image: {{ include "task-api.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    - sh
    - -c
    - until python -m backend check; do sleep 5; done
  {{- include "task-api.environment" dict | nindent 2 }}
  resources:
    {{- toYaml .Values.waitForMigrations.resources | nindent 4 }}
  {{- include "task-api.containerSecurity" . | nindent 2 }}
{{- end }}

{{/* A changed setting rolls the pods (Kustomize does it with a hashed ConfigMap name). */}}
{{- define "task-api.configChecksum" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end }}
