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

{{/*
One component's pods: (dict "root" $ "component" "controller"|"accept").
The component label keeps the two Deployments' selectors apart, so that the
page's Service selects only the accept pods.
*/}}
{{- define "usher.componentSelectorLabels" -}}
{{ include "usher.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "usher.componentLabels" -}}
{{ include "usher.labels" .root }}
app.kubernetes.io/component: {{ .component }}
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

{{- define "usher.acceptServiceAccountName" -}}
{{- default (printf "%s-accept" (include "usher.fullname" .)) .Values.accept.serviceAccount.name }}
{{- end }}

{{/* Where the acceptance page keeps password hashes: config.accept.credentialsNamespace, else Usher's own namespace. */}}
{{- define "usher.credentialsNamespace" -}}
{{- default .Release.Namespace .Values.config.accept.credentialsNamespace }}
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
{{- define "usher.keycloakSecretDir" -}}/var/run/secrets/usher/keycloak{{- end }}
{{- define "usher.keycloakCaDir" -}}/etc/usher/keycloak-ca{{- end }}

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
{{- if eq $c.identity.provider "keycloak" }}
{{- if not $c.identity.keycloak.url }}{{ fail "config.identity.provider is keycloak: set config.identity.keycloak.url (Keycloak's base URL, without /realms)" }}{{ end }}
{{- if not $c.identity.keycloak.realm }}{{ fail "config.identity.provider is keycloak: set config.identity.keycloak.realm" }}{{ end }}
{{- if not $c.identity.keycloak.clientSecret.existingSecret }}{{ fail "config.identity.provider is keycloak: set config.identity.keycloak.clientSecret.existingSecret to the Secret holding the secret of Usher's client" }}{{ end }}
{{- if not $c.accept.oidc.enabled }}{{ fail "config.identity.provider is keycloak: enable config.accept.oidc with the same realm as issuer (people who already have an account there accept by signing in to it)" }}{{ end }}
{{- end }}
{{- if $c.rbac.enabled }}
{{- if and (not $c.rbac.roleMap) (not $c.rbac.groupMap) }}{{ fail "config.rbac.enabled is true but binds nothing: map a role or a group (config.rbac.roleMap, config.rbac.groupMap), or leave config.rbac.enabled false" }}{{ end }}
{{- if and (eq $c.rbac.username.from "IdentityUsername") (ne $c.identity.provider "keycloak") }}{{ fail "config.rbac.username.from is IdentityUsername: that needs config.identity.provider keycloak (the username of the person's account there); use Email, or leave it empty for the default" }}{{ end }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.host) }}{{ fail "ingress.enabled is true: set ingress.host" }}{{ end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}{{ fail "replicaCount > 1 needs leaderElection.enabled: otherwise every pod reconciles" }}{{ end }}
{{- if eq (include "usher.serviceAccountName" .) (include "usher.acceptServiceAccountName" .) }}{{ fail "serviceAccount.name and accept.serviceAccount.name are the same: the acceptance page needs a ServiceAccount of its own (its rights are far fewer than the controller's)" }}{{ end }}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.ingressFrom) }}{{ fail "networkPolicy.enabled is true: set networkPolicy.ingressFrom to the ingress controller's pods (a namespaceSelector and podSelector); an empty list would admit everyone" }}{{ end }}
{{- end }}

{{/*
Usher's configuration file from .Values.config, for one component:
(dict "root" $ "component" "controller"|"accept"). Only what is set, so that
Usher's own defaults apply to the rest; secrets as files mounted by that
component's Deployment, and each component names only the secrets it uses:
the controller's file has no OIDC client secret and no CSRF key, the
acceptance page's no SMTP password.
*/}}
{{- define "usher.config" -}}
{{- $component := .component }}
{{- with .root }}
{{- $c := .Values.config }}
{{- $usher := dict }}
{{- with include "usher.baseUrl" . }}{{ $_ := set $usher "baseUrl" . }}{{ end }}
{{- $_ := set $usher "security" (dict "invitations" $c.security.invitations) }}
{{- $_ := set $usher "tenancy" $c.tenancy }}
{{- /* Usher's own namespace: invitation records and (by default) password hashes live there. */}}
{{- $_ := set $usher "namespace" .Release.Namespace }}
{{- if $c.mail.enabled }}
{{- $mail := dict "host" $c.mail.host "port" $c.mail.port "from" $c.mail.from "allowSelfSigned" $c.mail.allowSelfSigned "pool" $c.mail.pool "rateLimitPerSecond" $c.mail.rateLimitPerSecond }}
{{- with $c.mail.tls }}{{ $_ := set $mail "tls" . }}{{ end }}
{{- with $c.mail.replyTo }}{{ $_ := set $mail "replyTo" . }}{{ end }}
{{- /* The page sends no mail: it knows a mail server is configured (it judges links with the controller's rules), not the password. */}}
{{- if and $c.mail.auth.user (eq $component "controller") }}
{{- $_ := set $mail "auth" (dict "user" $c.mail.auth.user "passwordFile" (printf "%s/%s" (include "usher.mailPasswordDir" .) $c.mail.auth.key)) }}
{{- end }}
{{- $_ := set $usher "mail" $mail }}
{{- end }}
{{- /*
config.accept.trustProxy: a list of proxies, or a number of hops. Behind the
chart's Ingress and not set: 1, the one hop the ingress controller appends to
X-Forwarded-For (values.yaml says when that holds).
*/}}
{{- $trust := $c.accept.trustProxy }}
{{- if and (kindIs "slice" $trust) (eq (len $trust) 0) .Values.ingress.enabled }}{{ $trust = 1 }}{{ end }}
{{- if not (kindIs "slice" $trust) }}{{ $trust = int $trust }}{{ end }}
{{- $accept := dict "port" .Values.ports.http "credentialsNamespace" (include "usher.credentialsNamespace" .) "rateLimit" $c.accept.rateLimit "trustProxy" $trust }}
{{- with $c.accept.loginUrl }}{{ $_ := set $accept "loginUrl" . }}{{ end }}
{{- if eq $component "accept" }}
{{- if $c.accept.csrfKey.existingSecret }}
{{- $_ := set $accept "csrfKeyFile" (printf "%s/%s" (include "usher.csrfKeyDir" .) $c.accept.csrfKey.key) }}
{{- end }}
{{- if $c.accept.oidc.enabled }}
{{- $_ := set $accept "oidc" (dict "issuer" $c.accept.oidc.issuer "clientId" $c.accept.oidc.clientId "clientSecretFile" (printf "%s/%s" (include "usher.oidcSecretDir" .) $c.accept.oidc.clientSecret.key)) }}
{{- end }}
{{- end }}
{{- $_ := set $usher "accept" $accept }}
{{- if eq $c.identity.provider "keycloak" }}
{{- $kc := $c.identity.keycloak }}
{{- $keycloak := dict "url" $kc.url "realm" $kc.realm "clientId" $kc.clientId }}
{{- /* The client's secret and CA go to the controller only: the page never calls Keycloak. */}}
{{- if eq $component "controller" }}
{{- $_ := set $keycloak "clientSecretFile" (printf "%s/%s" (include "usher.keycloakSecretDir" .) $kc.clientSecret.key) }}
{{- with $kc.caConfigMap }}{{ $_ := set $keycloak "caFile" (printf "%s/%s" (include "usher.keycloakCaDir" $) $kc.caKey) }}{{ end }}
{{- end }}
{{- $_ := set $usher "identity" (dict "provider" "keycloak" "onUserDelete" $c.identity.onUserDelete "keycloak" $keycloak) }}
{{- end }}
{{- $_ := set $usher "access" $c.access }}
{{- /* config.rbac, only when enabled and only the keys set: Usher's defaults apply to the rest (username.from's depends on config.identity). */}}
{{- if $c.rbac.enabled }}
{{- $rbac := dict "enabled" true }}
{{- with $c.rbac.roleMap }}{{ $_ := set $rbac "roleMap" . }}{{ end }}
{{- with $c.rbac.groupMap }}{{ $_ := set $rbac "groupMap" . }}{{ end }}
{{- $username := dict }}
{{- with $c.rbac.username.from }}{{ $_ := set $username "from" . }}{{ end }}
{{- with $c.rbac.username.prefix }}{{ $_ := set $username "prefix" . }}{{ end }}
{{- with $username }}{{ $_ := set $rbac "username" . }}{{ end }}
{{- with $c.rbac.groups.prefix }}{{ $_ := set $rbac "groups" (dict "prefix" .) }}{{ end }}
{{- $_ := set $usher "rbac" $rbac }}
{{- end }}
{{- $_ := set $usher "controller" $c.controller }}
{{- toYaml (dict "usher" $usher) }}
{{- end }}
{{- end }}
