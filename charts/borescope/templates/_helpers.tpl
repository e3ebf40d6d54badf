{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "borescope.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release-chart unless the release name already contains the chart name.
*/}}
{{- define "borescope.fullname" -}}
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
The injector's resource name.
*/}}
{{- define "borescope.injector.fullname" -}}
{{- printf "%s-injector" (include "borescope.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Chart label value: name-version.
*/}}
{{- define "borescope.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "borescope.labels" -}}
helm.sh/chart: {{ include "borescope.chart" . }}
{{ include "borescope.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels.
*/}}
{{- define "borescope.selectorLabels" -}}
app.kubernetes.io/name: {{ include "borescope.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The injector's selector labels; borescope.io/role keeps the webhook off its own pods.
*/}}
{{- define "borescope.injector.selectorLabels" -}}
{{ include "borescope.selectorLabels" . }}
app.kubernetes.io/component: injector
borescope.io/role: injector
{{- end }}

{{/*
The injector's ServiceAccount name.
*/}}
{{- define "borescope.injector.serviceAccountName" -}}
{{- if .Values.injector.serviceAccount.create }}
{{- default (include "borescope.injector.fullname" .) .Values.injector.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.injector.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Sidecar and injector images (tag defaults to the appVersion).
*/}}
{{- define "borescope.sidecar.image" -}}
{{- printf "%s:%s" .Values.sidecar.image.repository (default .Chart.AppVersion .Values.sidecar.image.tag) }}
{{- end }}
{{- define "borescope.injector.image" -}}
{{- printf "%s:%s" .Values.injector.image.repository (default .Chart.AppVersion .Values.injector.image.tag) }}
{{- end }}

{{/*
The webhook's TLS material when the chart makes it (no cert-manager), as a
dict {ca, crt, key}. Made once per render and kept in .Values so the Secret,
the webhook's caBundle and the Deployment's checksum agree; an existing
Secret is reused (lookup) so upgrades do not rotate certificates and restart
the injector for nothing. Offline rendering (helm template) has no lookup
and generates a fresh set.
*/}}
{{- define "borescope.tls" -}}
{{- if not (hasKey .Values "__borescopeTLS") }}
{{- $svc := include "borescope.injector.fullname" . }}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (printf "%s-tls" $svc) }}
{{- if and $secret $secret.data (index $secret.data "ca.crt") }}
{{- $_ := set .Values "__borescopeTLS" (dict "ca" (index $secret.data "ca.crt" | b64dec) "crt" (index $secret.data "tls.crt" | b64dec) "key" (index $secret.data "tls.key" | b64dec)) }}
{{- else }}
{{- $days := int .Values.tls.selfSignedDays }}
{{- $ca := genCA (printf "%s-ca" $svc) $days }}
{{- $dns := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) }}
{{- $cert := genSignedCert (printf "%s.%s.svc" $svc .Release.Namespace) nil $dns $days $ca }}
{{- $_ := set .Values "__borescopeTLS" (dict "ca" $ca.Cert "crt" $cert.Cert "key" $cert.Key) }}
{{- end }}
{{- end }}
{{- toJson (get .Values "__borescopeTLS") }}
{{- end }}

{{/*
The injector's settings file (JSON), from the sidecar values.
*/}}
{{- define "borescope.injector.settings" -}}
{{- $s := .Values.sidecar }}
{{- $excluded := concat (list "kube-system") .Values.injector.excludedNamespaces | uniq }}
{{- dict
  "image" (include "borescope.sidecar.image" .)
  "image_pull_policy" $s.image.pullPolicy
  "command" $s.command
  "args" $s.args
  "profile" $s.profile
  "allow_privileged_annotation" $s.allowPrivilegedAnnotation
  "token_secret" $s.tokenSecret
  "port" (int $s.port)
  "health_port" (int $s.healthPort)
  "requests" $s.requests
  "limits" $s.limits
  "tmp_size_limit" $s.tmpSizeLimit
  "excluded_namespaces" $excluded
  "own_namespace" .Release.Namespace
  "extra_env" $s.extraEnv
  | toPrettyJson }}
{{- end }}

{{/*
"true" when the injector talks to the API: only to keep caBundle in step with
self-generated certificates (cert-manager's cainjector does it otherwise).
*/}}
{{- define "borescope.injector.usesApi" -}}
{{- if and .Values.injector.rbac.create (not .Values.tls.certManager.enabled) }}true{{ else }}false{{ end }}
{{- end }}
