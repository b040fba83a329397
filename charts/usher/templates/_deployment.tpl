{{/*
The Deployment of one component, (dict "root" $ "component" "controller"|"accept"):
the same image and pod hardening, each with its own ServiceAccount, replicas,
resources, configuration file and only the Secrets it uses mounted.
  controller: deployment.yaml, `--component controller`, leader election.
  accept:     deployment-accept.yaml, `--component accept`, the web page.
*/}}
{{- define "usher.deployment" -}}
{{- $component := .component }}
{{- $controller := eq $component "controller" }}
{{- $scope := . }}
{{- with .root }}
{{- $c := .Values.config }}
{{- $replicas := ternary .Values.replicaCount .Values.accept.replicaCount $controller }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "usher.fullname" . }}{{ if not $controller }}-accept{{ end }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "usher.componentLabels" $scope | nindent 4 }}
spec:
  replicas: {{ $replicas }}
  selector:
    matchLabels:
      {{- include "usher.componentSelectorLabels" $scope | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "usher.componentSelectorLabels" $scope | nindent 8 }}
        {{- with .Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # Usher reads its configuration at start: roll the pods when it changes.
        checksum/config: {{ include "usher.config" $scope | sha256sum }}
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ ternary (include "usher.serviceAccountName" .) (include "usher.acceptServiceAccountName" .) $controller }}
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.podSecurityContext | nindent 8 }}
      {{- if $controller }}
      # Usher drains in-flight reconciles and releases its Lease on SIGTERM, within 25 s.
      {{- else }}
      # Usher finishes in-flight requests on SIGTERM, within 25 s.
      {{- end }}
      terminationGracePeriodSeconds: 30
      containers:
        - name: usher
          image: {{ include "usher.image" . | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args: [--component, {{ $component }}, --config, /etc/usher/config.yaml]
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            {{- if $controller }}
            # Leader election: this pod's identity in the Lease (POD_NAME), and where the Lease is (POD_NAMESPACE).
            - name: USHER_LEADER_ELECTION
              value: {{ .Values.leaderElection.enabled | quote }}
            - name: USHER_LEASE_NAME
              value: {{ include "usher.leaseName" . | quote }}
            {{- end }}
            - name: USHER_METRICS_PORT
              value: {{ .Values.ports.metrics | quote }}
            - name: LOG_LEVEL
              value: {{ .Values.logLevel | quote }}
            {{- with .Values.nodeOptions }}
            - name: NODE_OPTIONS
              value: {{ . | quote }}
            {{- end }}
          ports:
            {{- if not $controller }}
            - name: http
              containerPort: {{ .Values.ports.http }}
              protocol: TCP
            {{- end }}
            - name: metrics
              containerPort: {{ .Values.ports.metrics }}
              protocol: TCP
          # Both probes on the metrics port: a busy acceptance page does not fail them.
          livenessProbe:
            httpGet:
              path: /healthz
              port: metrics
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /readyz
              port: metrics
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
          resources:
            {{- toYaml (ternary .Values.resources .Values.accept.resources $controller) | nindent 12 }}
          securityContext:
            {{- toYaml .Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/usher
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- if and $controller $c.mail.enabled $c.mail.auth.user }}
            - name: mail-password
              mountPath: {{ include "usher.mailPasswordDir" . }}
              readOnly: true
            {{- end }}
            {{- if and (not $controller) $c.accept.oidc.enabled }}
            - name: oidc-client-secret
              mountPath: {{ include "usher.oidcSecretDir" . }}
              readOnly: true
            {{- end }}
            {{- if and $controller (eq $c.identity.provider "keycloak") }}
            - name: keycloak-client-secret
              mountPath: {{ include "usher.keycloakSecretDir" . }}
              readOnly: true
            {{- with $c.identity.keycloak.caConfigMap }}
            - name: keycloak-ca
              mountPath: {{ include "usher.keycloakCaDir" $ }}
              readOnly: true
            {{- end }}
            {{- end }}
            {{- if and (not $controller) $c.accept.csrfKey.existingSecret }}
            - name: csrf-key
              mountPath: {{ include "usher.csrfKeyDir" . }}
              readOnly: true
            {{- end }}
      volumes:
        # This component's configuration file only (configmap.yaml has one per component).
        - name: config
          configMap:
            name: {{ include "usher.fullname" . }}
            items:
              - key: {{ $component }}.yaml
                path: config.yaml
        # The root file system is read-only; Node and libraries may still want a scratch folder.
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- if and $controller $c.mail.enabled $c.mail.auth.user }}
        - name: mail-password
          secret:
            secretName: {{ $c.mail.auth.existingSecret }}
            items:
              - key: {{ $c.mail.auth.key }}
                path: {{ $c.mail.auth.key }}
            defaultMode: 0440
        {{- end }}
        {{- if and (not $controller) $c.accept.oidc.enabled }}
        - name: oidc-client-secret
          secret:
            secretName: {{ $c.accept.oidc.clientSecret.existingSecret }}
            items:
              - key: {{ $c.accept.oidc.clientSecret.key }}
                path: {{ $c.accept.oidc.clientSecret.key }}
            defaultMode: 0440
        {{- end }}
        {{- if and $controller (eq $c.identity.provider "keycloak") }}
        - name: keycloak-client-secret
          secret:
            secretName: {{ $c.identity.keycloak.clientSecret.existingSecret }}
            items:
              - key: {{ $c.identity.keycloak.clientSecret.key }}
                path: {{ $c.identity.keycloak.clientSecret.key }}
            defaultMode: 0440
        {{- with $c.identity.keycloak.caConfigMap }}
        - name: keycloak-ca
          configMap:
            name: {{ . }}
            items:
              - key: {{ $c.identity.keycloak.caKey }}
                path: {{ $c.identity.keycloak.caKey }}
        {{- end }}
        {{- end }}
        {{- if and (not $controller) $c.accept.csrfKey.existingSecret }}
        - name: csrf-key
          secret:
            secretName: {{ $c.accept.csrfKey.existingSecret }}
            items:
              - key: {{ $c.accept.csrfKey.key }}
                path: {{ $c.accept.csrfKey.key }}
            defaultMode: 0440
        {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if .Values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml .Values.topologySpreadConstraints | nindent 8 }}
      {{- else if gt (int $replicas) 1 }}
      {{- if $controller }}
      # A standby on another node is what makes a node failure survivable.
      {{- else }}
      # Pages on several nodes: a node failure leaves the page up.
      {{- end }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "usher.componentSelectorLabels" $scope | nindent 14 }}
      {{- end }}
{{- end }}
{{- end }}
