{{/* Names and labels, as `helm create` makes them. */}}
{{- define "usher.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "usher.fullname" -}}
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

{{- define "usher.selectorLabels" -}}
app.kubernetes.io/name: {{ include "usher.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "usher.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "usher.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "usher.serviceAccountName" -}}
{{- default (include "usher.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{- define "usher.leaseName" -}}
{{- default (printf "%s-leader" (include "usher.fullname" .)) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "usher.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where secrets are mounted; the configuration names these files. */}}
{{- define "usher.mailPasswordDir" -}}/var/run/secrets/usher/mail{{- end }}
{{- define "usher.oidcSecretDir" -}}/var/run/secrets/usher/oidc{{- end }}
{{- define "usher.csrfKeyDir" -}}/var/run/secrets/usher/csrf{{- end }}

{{- define "usher.baseUrl" -}}
{{- if .Values.config.baseUrl }}
{{- .Values.config.baseUrl }}
{{- else if .Values.ingress.enabled }}
{{- printf "%s://%s" (ternary "https" "http" (ne .Values.ingress.tls.secretName "")) .Values.ingress.host }}
{{- end }}
{{- end }}

{{/*
Rules across keys that a JSON schema cannot say plainly; each failure names
the values key to set.
*/}}
{{- define "usher.validate" -}}
{{- $c := .Values.config }}
{{- if $c.mail.enabled }}
{{- if not $c.mail.host }}{{ fail "config.mail.enabled is true: set config.mail.host (the SMTP server)" }}{{ end }}
{{- if not $c.mail.from }}{{ fail "config.mail.enabled is true: set config.mail.from (e.g. \"Platform <no-reply@example.com>\")" }}{{ end }}
{{- if and $c.mail.auth.user (not $c.mail.auth.existingSecret) }}{{ fail "config.mail.auth.user is set: set config.mail.auth.existingSecret to the Secret holding the SMTP password (key config.mail.auth.key)" }}{{ end }}
{{- end }}
{{- if $c.accept.oidc.enabled }}
{{- if not $c.accept.oidc.issuer }}{{ fail "config.accept.oidc.enabled is true: set config.accept.oidc.issuer" }}{{ end }}
{{- if not $c.accept.oidc.clientId }}{{ fail "config.accept.oidc.enabled is true: set config.accept.oidc.clientId" }}{{ end }}
{{- if not $c.accept.oidc.clientSecret.existingSecret }}{{ fail "config.accept.oidc.enabled is true: set config.accept.oidc.clientSecret.existingSecret to the Secret holding the client secret" }}{{ end }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.host) }}{{ fail "ingress.enabled is true: set ingress.host" }}{{ end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}{{ fail "replicaCount > 1 needs leaderElection.enabled: otherwise every pod reconciles" }}{{ end }}
{{- end }}

{{/*
Usher's configuration file from .Values.config: only what is set, so that
Usher's own defaults apply to the rest; secrets as files mounted by the
Deployment.
*/}}
{{- define "usher.config" -}}
{{- $c := .Values.config }}
{{- $usher := dict }}
{{- with include "usher.baseUrl" . }}{{ $_ := set $usher "baseUrl" . }}{{ end }}
{{- $_ := set $usher "security" (dict "invitations" $c.security.invitations) }}
{{- $_ := set $usher "tenancy" $c.tenancy }}
{{- if $c.mail.enabled }}
{{- $mail := dict "host" $c.mail.host "port" $c.mail.port "from" $c.mail.from "allowSelfSigned" $c.mail.allowSelfSigned "pool" $c.mail.pool "rateLimitPerSecond" $c.mail.rateLimitPerSecond }}
{{- with $c.mail.tls }}{{ $_ := set $mail "tls" . }}{{ end }}
{{- with $c.mail.replyTo }}{{ $_ := set $mail "replyTo" . }}{{ end }}
{{- if $c.mail.auth.user }}
{{- $_ := set $mail "auth" (dict "user" $c.mail.auth.user "passwordFile" (printf "%s/%s" (include "usher.mailPasswordDir" .) $c.mail.auth.key)) }}
{{- end }}
{{- $_ := set $usher "mail" $mail }}
{{- end }}
{{- $accept := dict "port" .Values.ports.http "credentialsNamespace" (default .Release.Namespace $c.accept.credentialsNamespace) "rateLimit" $c.accept.rateLimit "trustProxy" $c.accept.trustProxy }}
{{- with $c.accept.loginUrl }}{{ $_ := set $accept "loginUrl" . }}{{ end }}
{{- if $c.accept.csrfKey.existingSecret }}
{{- $_ := set $accept "csrfKeyFile" (printf "%s/%s" (include "usher.csrfKeyDir" .) $c.accept.csrfKey.key) }}
{{- end }}
{{- if $c.accept.oidc.enabled }}
{{- $_ := set $accept "oidc" (dict "issuer" $c.accept.oidc.issuer "clientId" $c.accept.oidc.clientId "clientSecretFile" (printf "%s/%s" (include "usher.oidcSecretDir" .) $c.accept.oidc.clientSecret.key)) }}
{{- end }}
{{- $_ := set $usher "accept" $accept }}
{{- $_ := set $usher "controller" $c.controller }}
{{- toYaml (dict "usher" $usher) }}
{{- end }}
