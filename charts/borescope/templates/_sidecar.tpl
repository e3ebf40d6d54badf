{{/*
The borescope sidecar as a container, for charts that add it statically
instead of through the webhook. It renders the same container the injector
adds. The pod must also set `shareProcessNamespace: true` and mount the
volumes from "borescope.sidecar.volumes".

Usage (in a pod spec; borescope as a dependency of your chart):

  shareProcessNamespace: true
  containers:
    - name: app
      ...
    {{- include "borescope.sidecar.container" (dict "image" "ghcr.io/borescope/borescope:0.1.0" "uid" 1000) | nindent 4 }}
  volumes:
    {{- include "borescope.sidecar.volumes" (dict) | nindent 4 }}

Parameters (a dict):
  image        (required) the sidecar image.
  uid          the app's UID (the sidecar runs as it); omit to use the image's user.
  gid          the app's GID.
  profile      "restricted" (default) or "privileged" (root + SYS_PTRACE; outside
               Pod Security "baseline").
  port         gRPC port on 127.0.0.1 (default 7777).
  healthPort   plaintext health-only port with a readiness probe (default 0 = off).
  tokenSecret  Secret whose "sha256" key is the token hash (default: none).
  pullPolicy   image pull policy (default IfNotPresent).
  command,args container command/args (default: the image's entrypoint,
               `borescope serve`).
  requests     resource requests (default cpu 10m, memory 32Mi); limits (default none).
  extraEnv     extra environment, name: value.
  native       true to render it as a native sidecar (for initContainers,
               restartPolicy: Always; Kubernetes >= 1.29).
*/}}
{{- define "borescope.sidecar.container" -}}
{{- $image := required "borescope.sidecar.container needs \"image\"" .image }}
{{- $profile := default "restricted" .profile }}
{{- $port := int (default 7777 .port) }}
{{- $healthPort := int (default 0 .healthPort) }}
{{- $requests := default (dict "cpu" "10m" "memory" "32Mi") .requests }}
- name: borescope
  image: {{ $image | quote }}
  imagePullPolicy: {{ default "IfNotPresent" .pullPolicy }}
  {{- with .command }}
  command: {{ toJson . }}
  {{- end }}
  {{- with .args }}
  args: {{ toJson . }}
  {{- end }}
  {{- if .native }}
  restartPolicy: Always
  {{- end }}
  env:
    - name: BORESCOPE_LISTEN
      value: {{ printf "127.0.0.1:%d" $port | quote }}
    - name: BORESCOPE_POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: BORESCOPE_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    - name: BORESCOPE_NODE_NAME
      valueFrom:
        fieldRef:
          fieldPath: spec.nodeName
    {{- with .tokenSecret }}
    - name: BORESCOPE_TOKEN_SHA256
      valueFrom:
        secretKeyRef:
          name: {{ . | quote }}
          key: sha256
          optional: true
    {{- end }}
    {{- if $healthPort }}
    - name: BORESCOPE_HEALTH_LISTEN
      value: {{ printf "0.0.0.0:%d" $healthPort | quote }}
    {{- end }}
    {{- range $k, $v := .extraEnv }}
    - name: {{ $k | quote }}
      value: {{ $v | quote }}
    {{- end }}
  resources:
    requests: {{- toYaml $requests | nindent 6 }}
    {{- with .limits }}
    limits: {{- toYaml . | nindent 6 }}
    {{- end }}
  securityContext:
    allowPrivilegeEscalation: false
    privileged: false
    readOnlyRootFilesystem: true
    seccompProfile:
      type: RuntimeDefault
    {{- if eq $profile "privileged" }}
    capabilities:
      drop: ["ALL"]
      add: ["SYS_PTRACE"]
    runAsUser: 0
    runAsNonRoot: false
    {{- else }}
    capabilities:
      drop: ["ALL"]
    {{- if kindIs "invalid" .uid }}
    runAsNonRoot: true
    {{- else }}
    runAsUser: {{ int .uid }}
    runAsNonRoot: {{ ne (int .uid) 0 }}
    {{- if not (kindIs "invalid" .gid) }}
    runAsGroup: {{ int .gid }}
    {{- end }}
    {{- end }}
    {{- end }}
  volumeMounts:
    - name: borescope-tmp
      mountPath: /tmp
  terminationMessagePolicy: FallbackToLogsOnError
  {{- if $healthPort }}
  ports:
    - name: bs-health
      containerPort: {{ $healthPort }}
  readinessProbe:
    grpc:
      port: {{ $healthPort }}
    periodSeconds: 10
  {{- end }}
{{- end }}

{{/*
The volumes the static sidecar needs. Parameters: tmpSizeLimit (default 64Mi).
*/}}
{{- define "borescope.sidecar.volumes" -}}
- name: borescope-tmp
  emptyDir:
    sizeLimit: {{ default "64Mi" .tmpSizeLimit }}
{{- end }}
