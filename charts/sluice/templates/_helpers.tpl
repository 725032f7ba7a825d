{{/* The release's full name, at most 63 characters. */}}
{{- define "sluice.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "sluice.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The labels that select the controller's pods. */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{/* The service account the controller runs as. */}}
{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The namespace watched in namespaced mode. */}}
{{- define "sluice.watchNamespace" -}}
{{- default .Release.Namespace .Values.watchNamespace -}}
{{- end -}}

{{/* The namespace of the GitOps control plane. */}}
{{- define "sluice.gitopsNamespace" -}}
{{- default .Release.Namespace .Values.gitops.namespace -}}
{{- end -}}

{{/* Whether the Application controller runs: it is off in namespaced mode (it needs cluster-scoped reads). */}}
{{- define "sluice.gitops" -}}
{{- if and .Values.gitops.enabled (not .Values.namespaced) -}}true{{- end -}}
{{- end -}}

{{/* The subject of every binding. */}}
{{- define "sluice.subject" -}}
- kind: ServiceAccount
  name: {{ include "sluice.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end -}}

{{/*
What the Rollout and AnalysisRun controllers do in the namespaces they watch; each verb is one the code uses.
*/}}
{{- define "sluice.rolloutRules" -}}
# Rollouts: watched, status written by merge patch, spec patched by user actions (pause, abort).
- apiGroups: [argoproj.io]
  resources: [rollouts]
  verbs: [get, list, watch, patch]
- apiGroups: [argoproj.io]
  resources: [rollouts/status]
  verbs: [patch]
# Experiments: watched, status written by merge patch; a Rollout's experiment step creates one, terminates
# it by patch and deletes old ones.
- apiGroups: [argoproj.io]
  resources: [experiments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [argoproj.io]
  resources: [experiments/status]
  verbs: [patch]
# AnalysisRuns: created for steps and background analysis, terminated by patch, old ones deleted.
- apiGroups: [argoproj.io]
  resources: [analysisruns]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [argoproj.io]
  resources: [analysisruns/status]
  verbs: [patch]
- apiGroups: [argoproj.io]
  resources: [analysistemplates]
  verbs: [get, list, watch]
# The pods' ReplicaSets: created per revision, scaled and annotated by patch, old ones deleted.
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get, list, watch, create, patch, delete]
# workloadRef: the referenced Deployment is read and scaled down by patch.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, patch]
# Restarts evict pods (PodDisruptionBudgets respected); pods are listed to find the ones to restart.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, patch]
- apiGroups: [""]
  resources: [pods/eviction]
  verbs: [create]
# Canary, stable, active and preview Services: selectors patched to the pod-template hash; an experiment
# template's Service created with it and deleted when it ends.
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
# Istio traffic routing: weights and subsets patched.
- apiGroups: [networking.istio.io]
  resources: [virtualservices, destinationrules]
  verbs: [get, list, watch, patch]
# Gateway API traffic routing: route weights and header-route rules patched; watched (metadata) so that a
# weight changed by someone else is put back at once.
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes, grpcroutes, tcproutes]
  verbs: [get, list, watch, patch]
# SMI traffic routing: the TrafficSplit created (owned by the Rollout), its weights patched; watched
# (metadata) so that a weight changed by someone else is put back at once.
- apiGroups: [split.smi-spec.io]
  resources: [trafficsplits]
  verbs: [get, list, watch, create, patch]
# NGINX traffic routing: stable Ingresses read; the canary Ingress beside each created, then patched; all
# watched (metadata only) so that a change to either brings the Rollout back.
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch, create, patch]
# Job metrics of analyses.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
# Events on Rollouts and AnalysisRuns (a repeat bumps the count).
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- end -}}

{{/* What the Application controller does with Argo CD's objects. */}}
{{- define "sluice.gitopsRules" -}}
# Applications: watched, status and finalizers patched; created, patched and deleted by ApplicationSets.
- apiGroups: [argoproj.io]
  resources: [applications]
  verbs: [get, list, watch, create, patch, delete]
# ApplicationSets: watched, status patched.
- apiGroups: [argoproj.io]
  resources: [applicationsets]
  verbs: [get, list, watch]
- apiGroups: [argoproj.io]
  resources: [applicationsets/status]
  verbs: [patch]
# AppProjects: watched (their roles, windows and allow lists).
- apiGroups: [argoproj.io]
  resources: [appprojects]
  verbs: [get, list, watch]
{{- end -}}
