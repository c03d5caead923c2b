{{/*
orleans-tunnel.name: the chart name (or nameOverride), cut to 63 characters because Kubernetes
names and label values are DNS labels.
*/}}
{{- define "orleans-tunnel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
orleans-tunnel.fullname: "<release>-<chart>" (or fullnameOverride), cut to 63 characters; the
release name alone when it already contains the chart name.
*/}}
{{- define "orleans-tunnel.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
orleans-tunnel.componentName: the full name of one component, e.g. "<fullname>-gateway-tunnel".
The full name is cut first so that the suffix survives, then the whole is cut to 63 characters.
Call with (dict "context" $ "component" "gateway-tunnel").
*/}}
{{- define "orleans-tunnel.componentName" -}}
{{- $suffix := .component -}}
{{- $room := sub 62 (len $suffix) | int -}}
{{- printf "%s-%s" (include "orleans-tunnel.fullname" .context | trunc $room | trimSuffix "-") $suffix | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
orleans-tunnel.chart: "<chart>-<version>" for the helm.sh/chart label.
*/}}
{{- define "orleans-tunnel.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
orleans-tunnel.labels: the standard labels of every resource of one component, plus commonLabels.
Call with (dict "context" $ "component" "silo").
*/}}
{{- define "orleans-tunnel.labels" -}}
helm.sh/chart: {{ include "orleans-tunnel.chart" .context }}
{{ include "orleans-tunnel.selectorLabels" . }}
app.kubernetes.io/version: {{ .context.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
app.kubernetes.io/part-of: orleans-tunnel
{{- with .context.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
orleans-tunnel.selectorLabels: the labels that select one component's pods (never change them in
an upgrade: Deployment selectors are immutable). Call with (dict "context" $ "component" "silo").
*/}}
{{- define "orleans-tunnel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "orleans-tunnel.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
orleans-tunnel.serviceAccountName: the ServiceAccount one role's pods run as. Call with
(dict "context" $ "role" "silo").
*/}}
{{- define "orleans-tunnel.serviceAccountName" -}}
{{- $sa := .context.Values.serviceAccount -}}
{{- $name := index $sa.names .role | default "" -}}
{{- if $sa.create -}}
{{- $name | default (include "orleans-tunnel.componentName" (dict "context" .context "component" .role)) -}}
{{- else -}}
{{- $name | default "default" -}}
{{- end -}}
{{- end -}}

{{/*
orleans-tunnel.image: the image reference of one role: [registry/]repository:tag[@digest], the tag
falling back to image.tag and then to the chart's appVersion. Call with
(dict "context" $ "image" .Values.silo.image).
*/}}
{{- define "orleans-tunnel.image" -}}
{{- $root := .context.Values.image -}}
{{- $tag := .image.tag | default $root.tag | default .context.Chart.AppVersion -}}
{{- include "orleans-tunnel.imageRef" (dict "context" .context "repository" .image.repository "tag" $tag "digest" (.image.digest | default "")) -}}
{{- end -}}

{{/*
orleans-tunnel.imageRef: [image.registry/]repository:tag[@digest] of any image the chart runs
(the roles, Redis, the helm test pod). Call with (dict "context" $ "repository" r "tag" t "digest" d).
*/}}
{{- define "orleans-tunnel.imageRef" -}}
{{- $registry := .context.Values.image.registry | default "" | trimSuffix "/" -}}
{{- $ref := printf "%s:%s" .repository .tag -}}
{{- if $registry -}}
{{- $ref = printf "%s/%s" $registry $ref -}}
{{- end -}}
{{- if .digest -}}
{{- $ref = printf "%s@%s" $ref .digest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{/*
orleans-tunnel.redisAuthSecretName: the Secret (key "password") of the in-chart Redis' password.
*/}}
{{- define "orleans-tunnel.redisAuthSecretName" -}}
{{- .Values.redis.auth.existingSecret | default (include "orleans-tunnel.componentName" (dict "context" . "component" "redis-auth")) -}}
{{- end -}}

{{/*
orleans-tunnel.redisPassword: the password of the chart-made Redis Secret: the one already in the
cluster (so upgrades keep it), else a random one, generated once per render.
*/}}
{{- define "orleans-tunnel.redisPassword" -}}
{{- $memo := .Values.redis.auth -}}
{{- if not (hasKey $memo "generatedPassword") -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "orleans-tunnel.redisAuthSecretName" .) -}}
{{- if and $existing $existing.data (hasKey $existing.data "password") -}}
{{- $_ := set $memo "generatedPassword" (index $existing.data "password" | b64dec) -}}
{{- else -}}
{{- $_ := set $memo "generatedPassword" (randAlphaNum 32) -}}
{{- end -}}
{{- end -}}
{{- $memo.generatedPassword -}}
{{- end -}}

{{/*
orleans-tunnel.redisEnv: the container environment that gives a silo or gateway Cluster:Redis from a
Secret, so the connection string (and its password) never lands in a ConfigMap: the external
connection string (redis.existingSecret), or the in-chart Redis' address with its password.
*/}}
{{- define "orleans-tunnel.redisEnv" -}}
{{- if .Values.redis.existingSecret -}}
- name: OTUN_Cluster__Redis
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.existingSecretKey }}
{{- else -}}
{{- $address := printf "%s:%v" (include "orleans-tunnel.componentName" (dict "context" . "component" "redis")) .Values.redis.port -}}
{{- if .Values.redis.auth.enabled -}}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "orleans-tunnel.redisAuthSecretName" . }}
      key: password
- name: OTUN_Cluster__Redis
  value: {{ printf "%s,password=$(REDIS_PASSWORD),abortConnect=false" $address | quote }}
{{- else -}}
- name: OTUN_Cluster__Redis
  value: {{ printf "%s,abortConnect=false" $address | quote }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
orleans-tunnel.redisChecksum: rolls silos and gateways when the Redis connection changes. Secrets
are referenced by name (their contents are not known at render time, or are random).
*/}}
{{- define "orleans-tunnel.redisChecksum" -}}
{{- $r := .Values.redis -}}
{{- printf "%v/%s/%s/%v/%s/%v" $r.enabled $r.existingSecret $r.existingSecretKey $r.auth.enabled (include "orleans-tunnel.redisAuthSecretName" .) $r.port | sha256sum -}}
{{- end -}}

{{/*
orleans-tunnel.gatewayStatefulSetName: the gateways' StatefulSet, cut to 52 characters: Kubernetes
labels its pods "controller-revision-hash: <name>-<10 characters>", which must fit in 63.
*/}}
{{- define "orleans-tunnel.gatewayStatefulSetName" -}}
{{- include "orleans-tunnel.componentName" (dict "context" . "component" "gateway") | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/*
orleans-tunnel.headlessName: the gateways' headless Service, which gives each gateway pod a DNS name.
*/}}
{{- define "orleans-tunnel.headlessName" -}}
{{- include "orleans-tunnel.componentName" (dict "context" . "component" "gateway-headless") -}}
{{- end -}}

{{/*
orleans-tunnel.tunnelScheme: https when the tunnel endpoint serves TLS.
*/}}
{{- define "orleans-tunnel.tunnelScheme" -}}
{{- ternary "https" "http" .Values.gateway.tls.tunnel.enabled -}}
{{- end -}}

{{/*
orleans-tunnel.peerUrl: Gateway:AdvertisedTunnel, the in-cluster tunnel URL of one gateway pod
($(POD_NAME) is expanded by Kubernetes). A name, never a pod IP: a certificate can cover it and an
IPv6 address needs no brackets.
*/}}
{{- define "orleans-tunnel.peerUrl" -}}
{{- printf "%s://$(POD_NAME).%s.%s.svc:%v" (include "orleans-tunnel.tunnelScheme" .) (include "orleans-tunnel.headlessName" .) .Release.Namespace .Values.gateway.ports.tunnel -}}
{{- end -}}

{{/*
orleans-tunnel.secondsOf: whole seconds of a "hh:mm:ss" value.
*/}}
{{- define "orleans-tunnel.secondsOf" -}}
{{- $parts := splitList ":" . -}}
{{- add (mul (atoi (index $parts 0)) 3600) (mul (atoi (index $parts 1)) 60) (atoi (index $parts 2 | splitList "." | first)) -}}
{{- end -}}

{{/*
orleans-tunnel.tunnelUrl: the URL of this release's tunnel Service, the agent's default gateway.
*/}}
{{- define "orleans-tunnel.tunnelUrl" -}}
{{- printf "%s://%s:%v" (ternary "https" "http" .Values.gateway.tls.tunnel.enabled) (include "orleans-tunnel.componentName" (dict "context" . "component" "gateway-tunnel")) .Values.gateway.tunnelService.port -}}
{{- end -}}

{{/*
orleans-tunnel.siloAppsettings: the silo's appsettings.json (sections Cluster and Backpressure),
with silo.config merged over it. Listeners bind 0.0.0.0 (the code's defaults are loopback).
*/}}
{{- define "orleans-tunnel.siloAppsettings" -}}
{{- $v := .Values -}}
{{- $cluster := dict "ClusterId" $v.cluster.clusterId "ServiceId" $v.cluster.serviceId "SiloPort" $v.cluster.siloPort "GatewayPort" $v.cluster.gatewayPort "Admin" (printf "http://0.0.0.0:%v" $v.silo.adminPort) -}}
{{- $backpressure := dict "MaxConcurrentPerAgent" $v.backpressure.maxConcurrentPerAgent "MaxConcurrentPerService" $v.backpressure.maxConcurrentPerService "LeaseTimeout" $v.backpressure.leaseTimeout -}}
{{- if $v.cluster.tls.enabled -}}
{{- $_ := set $cluster "Tls" (include "orleans-tunnel.clusterTlsSettings" . | fromJson) -}}
{{- end -}}
{{- $settings := dict "Cluster" $cluster "Backpressure" $backpressure -}}
{{- mergeOverwrite $settings (deepCopy $v.silo.config) | toPrettyJson -}}
{{- end -}}

{{/*
orleans-tunnel.gatewayAppsettings: the gateway's appsettings.json (sections Cluster and Gateway:
listeners, routes, agent credentials), with gateway.config merged over it. Agent credentials are
token hashes only, so they may live in a ConfigMap.
*/}}
{{- define "orleans-tunnel.gatewayAppsettings" -}}
{{- $v := .Values -}}
{{- $g := $v.gateway -}}
{{- $cluster := dict "ClusterId" $v.cluster.clusterId "ServiceId" $v.cluster.serviceId "GatewayPort" $v.cluster.gatewayPort -}}
{{- $gateway := dict "Ingress" (printf "http://0.0.0.0:%v" $g.ports.ingress) "Tunnel" (printf "http://0.0.0.0:%v" $g.ports.tunnel) "Admin" (printf "http://0.0.0.0:%v" $g.ports.admin) "ResponseTimeout" $g.responseTimeout "ShutdownGracePeriod" $g.shutdownGracePeriod "DrainDelay" $g.drainDelay -}}
{{- if not (kindIs "invalid" $g.maxRequestBodySize) -}}
{{- $_ := set $gateway "MaxRequestBodySize" $g.maxRequestBodySize -}}
{{- end -}}
{{- if $g.tls.ingress.enabled -}}
{{- $_ := set $gateway "HttpsIngress" (printf "https://0.0.0.0:%v" $g.tls.ingress.port) -}}
{{- $_ := set $gateway "CertificatePath" "/etc/otun/tls/ingress/tls.crt" -}}
{{- $_ := set $gateway "CertificateKeyPath" "/etc/otun/tls/ingress/tls.key" -}}
{{- end -}}
{{- if $g.tls.tunnel.enabled -}}
{{- $_ := set $gateway "Tunnel" (printf "https://0.0.0.0:%v" $g.ports.tunnel) -}}
{{- $_ := set $gateway "TunnelCertificatePath" "/etc/otun/tls/tunnel/tls.crt" -}}
{{- $_ := set $gateway "TunnelCertificateKeyPath" "/etc/otun/tls/tunnel/tls.key" -}}
{{- if $g.tls.tunnel.clientCa.secretName -}}
{{- $_ := set $gateway "TunnelClientCaPath" (printf "/etc/otun/ca/agents/%s" $g.tls.tunnel.clientCa.key) -}}
{{- end -}}
{{- end -}}
{{- if include "orleans-tunnel.peerCaSecret" . -}}
{{- $_ := set $gateway "PeerCaFile" (printf "/etc/otun/ca/peers/%s" $g.tls.peerCa.key) -}}
{{- end -}}
{{- if $v.cluster.tls.enabled -}}
{{- $_ := set $cluster "Tls" (include "orleans-tunnel.clusterTlsSettings" . | fromJson) -}}
{{- end -}}
{{- $routes := list -}}
{{- range $g.routes -}}
{{- $route := dict "Host" .host "Service" .service -}}
{{- if .pathPrefix -}}
{{- $_ := set $route "PathPrefix" .pathPrefix -}}
{{- end -}}
{{- $routes = append $routes $route -}}
{{- end -}}
{{- $agents := list -}}
{{- range $g.agents -}}
{{- $agents = append $agents (dict "Id" .id "TokenSha256" .tokenSha256 "Services" .services) -}}
{{- end -}}
{{- range $kind, $list := dict "TcpServices" $g.tcpServices "UdpServices" $g.udpServices -}}
{{- $services := list -}}
{{- range $list -}}
{{- $service := dict "Listen" (printf "0.0.0.0:%v" .port) "Service" .service -}}
{{- if .allowedNetworks -}}
{{- $_ := set $service "AllowedNetworks" .allowedNetworks -}}
{{- end -}}
{{- if .maxConnections -}}
{{- $_ := set $service "MaxConnections" .maxConnections -}}
{{- end -}}
{{- if .idleTimeout -}}
{{- $_ := set $service "IdleTimeout" .idleTimeout -}}
{{- end -}}
{{- if .proxyProtocol -}}
{{- $_ := set $service "ProxyProtocol" true -}}
{{- end -}}
{{- $services = append $services $service -}}
{{- end -}}
{{- if $services -}}
{{- $_ := set $gateway $kind $services -}}
{{- end -}}
{{- end -}}
{{- if $g.tlsPassthrough.enabled -}}
{{- $_ := set $gateway "TlsPassthrough" (printf "0.0.0.0:%v" $g.tlsPassthrough.port) -}}
{{- end -}}
{{- $_ := set $gateway "Routes" $routes -}}
{{- $_ := set $gateway "Agents" $agents -}}
{{- $settings := dict "Cluster" $cluster "Gateway" $gateway -}}
{{- mergeOverwrite $settings (deepCopy $g.config) | toPrettyJson -}}
{{- end -}}

{{/*
orleans-tunnel.l4Ports: the gateways' TCP and UDP service ports and the TLS passthrough port, as a JSON list of
{name, port, servicePort, protocol}; names are "tcp-N", "udp-N" and "tls-passthrough" (container port names).
*/}}
{{- define "orleans-tunnel.l4Ports" -}}
{{- $g := .Values.gateway -}}
{{- $ports := list -}}
{{- range $i, $s := $g.tcpServices -}}
{{- $ports = append $ports (dict "name" (printf "tcp-%d" $i) "port" $s.port "servicePort" ($s.servicePort | default $s.port) "protocol" "TCP") -}}
{{- end -}}
{{- range $i, $s := $g.udpServices -}}
{{- $ports = append $ports (dict "name" (printf "udp-%d" $i) "port" $s.port "servicePort" ($s.servicePort | default $s.port) "protocol" "UDP") -}}
{{- end -}}
{{- if $g.tlsPassthrough.enabled -}}
{{- $ports = append $ports (dict "name" "tls-passthrough" "port" $g.tlsPassthrough.port "servicePort" $g.tlsPassthrough.servicePort "protocol" "TCP") -}}
{{- end -}}
{{- dict "ports" $ports | toJson -}}
{{- end -}}

{{/*
orleans-tunnel.agentAppsettings: the agent's appsettings.json (section Agent without the token,
which comes from a Secret), with agent.config merged over it.
*/}}
{{- define "orleans-tunnel.agentAppsettings" -}}
{{- $a := .Values.agent -}}
{{- $gateways := $a.gateways | default (list (include "orleans-tunnel.tunnelUrl" .)) -}}
{{- $services := list -}}
{{- range $a.services -}}
{{- $services = append $services (dict "Name" .name "Url" .url) -}}
{{- end -}}
{{- $agent := dict "AgentId" $a.agentId "Gateways" $gateways "Connections" $a.connections "Services" $services -}}
{{- if include "orleans-tunnel.agentGatewayCaSecret" . -}}
{{- $_ := set $agent "GatewayCaFile" (printf "/etc/otun/ca/gateways/%s" $a.gatewayCa.key) -}}
{{- end -}}
{{- /* An agent refuses http:// to anything but loopback unless allowed: in the cluster, without tunnel TLS,
the chart's NetworkPolicies are what keeps the tunnel private (turn gateway.tls.tunnel on in production). */ -}}
{{- range $gateways -}}
{{- if hasPrefix "http://" . -}}
{{- $_ := set $agent "AllowCleartext" true -}}
{{- end -}}
{{- end -}}
{{- $settings := dict "Agent" $agent -}}
{{- mergeOverwrite $settings (deepCopy $a.config) | toPrettyJson -}}
{{- end -}}

{{/*
orleans-tunnel.agentSecretName: the Secret holding Agent:Token (agent.existingSecret, or the one
the chart writes from agent.token).
*/}}
{{- define "orleans-tunnel.agentSecretName" -}}
{{- if .Values.agent.existingSecret -}}
{{- .Values.agent.existingSecret -}}
{{- else -}}
{{- include "orleans-tunnel.componentName" (dict "context" . "component" "agent-token") -}}
{{- end -}}
{{- end -}}

{{/*
orleans-tunnel.tmpVolume: the writable emptyDir every pod mounts at /tmp (the root file system is
read-only; .NET puts its diagnostics socket there).
*/}}
{{- define "orleans-tunnel.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{/*
orleans-tunnel.httpProbe: one HTTP probe on the named port "admin". Call with
(dict "path" "/healthz" "probe" .Values.silo.livenessProbe).
*/}}
{{- define "orleans-tunnel.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: admin
{{- toYaml .probe | nindent 0 }}
{{- end -}}

{{/*
orleans-tunnel.validateValues: checks what values.schema.json cannot and fails the render with
every problem at once, each naming the key and the --set that fixes it.
*/}}
{{- define "orleans-tunnel.validateValues" -}}
{{- $v := .Values -}}
{{- $errors := list -}}
{{- if and (not $v.redis.enabled) (not $v.redis.existingSecret) -}}
{{- $errors = append $errors "redis: set redis.enabled=true (in-chart Redis, for trying it out) or redis.existingSecret=NAME (a Secret with the connection string under redis.existingSecretKey) (--set redis.enabled=true)" -}}
{{- end -}}
{{- if and $v.redis.enabled $v.redis.existingSecret -}}
{{- $errors = append $errors (printf "redis: redis.enabled=true and redis.existingSecret=%s both choose a Redis; keep one (--set redis.enabled=false to use the external one)" $v.redis.existingSecret) -}}
{{- end -}}
{{- range $i, $r := $v.gateway.routes -}}
{{- if or (not $r.host) (not $r.service) -}}
{{- $errors = append $errors (printf "gateway.routes[%d]: a route needs host and service (--set gateway.routes[%d].host=app.example.com,gateway.routes[%d].service=app)" $i $i $i) -}}
{{- end -}}
{{- end -}}
{{- range $i, $a := $v.gateway.agents -}}
{{- if not $a.id -}}
{{- $errors = append $errors (printf "gateway.agents[%d].id: an agent credential needs an id (--set gateway.agents[%d].id=app-agent)" $i $i) -}}
{{- end -}}
{{- if not (regexMatch "^[0-9a-f]{64}$" ($a.tokenSha256 | default "")) -}}
{{- $errors = append $errors (printf "gateway.agents[%d].tokenSha256: must be the lower-case hex SHA-256 of the token, 64 digits, as `otun hash-token TOKEN` prints it (--set gateway.agents[%d].tokenSha256=$(otun hash-token \"$TOKEN\"))" $i $i) -}}
{{- end -}}
{{- if not $a.services -}}
{{- $errors = append $errors (printf "gateway.agents[%d].services: list the services the agent may serve, or \"*\" (--set 'gateway.agents[%d].services={app}')" $i $i) -}}
{{- end -}}
{{- end -}}
{{- if $v.gateway.autoscaling.enabled -}}
{{- $min := $v.gateway.autoscaling.minReplicas | default $v.gateway.replicas -}}
{{- if gt (int $min) (int $v.gateway.autoscaling.maxReplicas) -}}
{{- $errors = append $errors (printf "gateway.autoscaling.maxReplicas: %v is below the minimum %v (--set gateway.autoscaling.maxReplicas=%v)" $v.gateway.autoscaling.maxReplicas $min $min) -}}
{{- end -}}
{{- if and (kindIs "invalid" $v.gateway.autoscaling.targetCPUUtilizationPercentage) (kindIs "invalid" $v.gateway.autoscaling.targetMemoryUtilizationPercentage) -}}
{{- $errors = append $errors "gateway.autoscaling: the HPA needs a metric (--set gateway.autoscaling.targetCPUUtilizationPercentage=70)" -}}
{{- end -}}
{{- end -}}
{{- if and $v.gateway.ingress.enabled (not $v.gateway.ingress.hosts) -}}
{{- $errors = append $errors "gateway.ingress.hosts: an Ingress needs at least one host (--set 'gateway.ingress.hosts={app.example.com}')" -}}
{{- end -}}
{{- if and $v.gateway.tls.ingress.enabled (not $v.gateway.tls.ingress.secretName) -}}
{{- $errors = append $errors "gateway.tls.ingress.secretName: HTTPS ingress needs a kubernetes.io/tls Secret (--set gateway.tls.ingress.secretName=NAME)" -}}
{{- end -}}
{{- if $v.agent.enabled -}}
{{- if not $v.agent.agentId -}}
{{- $errors = append $errors "agent.agentId: the agent needs its id, one of gateway.agents[].id (--set agent.agentId=app-agent)" -}}
{{- end -}}
{{- if and (not $v.agent.token) (not $v.agent.existingSecret) -}}
{{- $errors = append $errors "agent.existingSecret: the agent needs its token from a Secret (--set agent.existingSecret=NAME, or --set agent.token=TOKEN to try it out)" -}}
{{- end -}}
{{- if and $v.agent.token $v.agent.existingSecret -}}
{{- $errors = append $errors "agent.token: agent.token and agent.existingSecret both give the token; keep one (--set agent.token=)" -}}
{{- end -}}
{{- if not $v.agent.services -}}
{{- $errors = append $errors "agent.services: the agent needs at least one service (--set agent.services[0].name=app,agent.services[0].url=http://app:8080)" -}}
{{- end -}}
{{- range $i, $s := $v.agent.services -}}
{{- if or (not $s.name) (not $s.url) -}}
{{- $errors = append $errors (printf "agent.services[%d]: a service needs name and url (--set agent.services[%d].name=app,agent.services[%d].url=http://app:8080)" $i $i $i) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $gw := $v.gateway -}}
{{- $grace := include "orleans-tunnel.secondsOf" $gw.shutdownGracePeriod | int -}}
{{- $drain := include "orleans-tunnel.secondsOf" $gw.drainDelay | int -}}
{{- $needed := add $gw.preStopSeconds $drain $grace $gw.shutdownMarginSeconds -}}
{{- if lt (int $gw.terminationGracePeriodSeconds) (int $needed) -}}
{{- $errors = append $errors (printf "gateway.terminationGracePeriodSeconds: %v is below preStopSeconds (%v) + drainDelay (%v s) + shutdownGracePeriod (%v s) + shutdownMarginSeconds (%v) = %v; Kubernetes would kill gateways mid-drain (--set gateway.terminationGracePeriodSeconds=%v)" $gw.terminationGracePeriodSeconds $gw.preStopSeconds $drain $grace $gw.shutdownMarginSeconds $needed $needed) -}}
{{- end -}}
{{- if and $v.silo.dashboard.enabled (ne $v.silo.dashboard.service.type "ClusterIP") (not $v.silo.dashboard.service.exposeWithoutLogin) -}}
{{- $errors = append $errors (printf "silo.dashboard.service.type: %s would expose the Orleans dashboard, which has no login, outside the cluster; keep ClusterIP and use kubectl port-forward, or acknowledge it (--set silo.dashboard.service.exposeWithoutLogin=true)" $v.silo.dashboard.service.type) -}}
{{- end -}}
{{- if and $gw.agentEndpoints.perPodService.enabled (not $gw.agentEndpoints.urlTemplate) -}}
{{- $errors = append $errors "gateway.agentEndpoints.urlTemplate: per-pod Services need the external URL agents dial for each gateway (--set gateway.agentEndpoints.urlTemplate=https://gw-{ordinal}.tunnel.example.com:443)" -}}
{{- end -}}
{{- if and $gw.tls.tunnel.clientCa.secretName (not $gw.tls.tunnel.enabled) -}}
{{- $errors = append $errors "gateway.tls.tunnel.clientCa.secretName: agent client certificates need TLS on the tunnel (--set gateway.tls.tunnel.enabled=true,gateway.tls.tunnel.secretName=NAME)" -}}
{{- end -}}
{{- $tcpPorts := dict (toString $gw.ports.ingress) "gateway.ports.ingress" (toString $gw.ports.tunnel) "gateway.ports.tunnel" (toString $gw.ports.admin) "gateway.ports.admin" -}}
{{- if $gw.tls.ingress.enabled -}}
{{- $_ := set $tcpPorts (toString $gw.tls.ingress.port) "gateway.tls.ingress.port" -}}
{{- end -}}
{{- $udpPorts := dict -}}
{{- $servicePorts := dict -}}
{{- $l4 := list -}}
{{- range $i, $s := $gw.tcpServices -}}
{{- $l4 = append $l4 (dict "key" (printf "gateway.tcpServices[%d]" $i) "ports" $tcpPorts "proto" "TCP" "port" $s.port "servicePort" ($s.servicePort | default $s.port)) -}}
{{- end -}}
{{- if $gw.tlsPassthrough.enabled -}}
{{- $l4 = append $l4 (dict "key" "gateway.tlsPassthrough" "ports" $tcpPorts "proto" "TCP" "port" $gw.tlsPassthrough.port "servicePort" $gw.tlsPassthrough.servicePort) -}}
{{- end -}}
{{- range $i, $s := $gw.udpServices -}}
{{- $l4 = append $l4 (dict "key" (printf "gateway.udpServices[%d]" $i) "ports" $udpPorts "proto" "UDP" "port" $s.port "servicePort" ($s.servicePort | default $s.port)) -}}
{{- end -}}
{{- range $l4 -}}
{{- $port := toString .port -}}
{{- if hasKey .ports $port -}}
{{- $errors = append $errors (printf "%s.port: %s port %s is already %s's; give each listener its own port (--set %s.port=N)" .key .proto $port (get .ports $port) .key) -}}
{{- else -}}
{{- $_ := set .ports $port .key -}}
{{- end -}}
{{- $sp := printf "%s/%v" .proto .servicePort -}}
{{- if hasKey $servicePorts $sp -}}
{{- $errors = append $errors (printf "%s.servicePort: %s is already %s's on the l4Service; give it another (--set %s.servicePort=N)" .key $sp (get $servicePorts $sp) .key) -}}
{{- else -}}
{{- $_ := set $servicePorts $sp .key -}}
{{- end -}}
{{- end -}}
{{- if $errors -}}
{{- fail (printf "\n\nVALUES VALIDATION:\n%s" (join "\n" $errors)) -}}
{{- end -}}
{{- end -}}

{{/*
orleans-tunnel.clusterTlsSecret: the Secret (tls.crt, tls.key, ca.crt) of mutual TLS between silos and
gateways: cluster.tls.secretName, or the one the chart makes.
*/}}
{{- define "orleans-tunnel.clusterTlsSecret" -}}
{{- .Values.cluster.tls.secretName | default (include "orleans-tunnel.componentName" (dict "context" . "component" "cluster-tls")) -}}
{{- end -}}

{{/*
orleans-tunnel.tunnelTlsSecret: the Secret of the tunnel endpoint's certificate: gateway.tls.tunnel.secretName,
or the one the chart makes (a private CA whose ca.crt agents and peers trust).
*/}}
{{- define "orleans-tunnel.tunnelTlsSecret" -}}
{{- .Values.gateway.tls.tunnel.secretName | default (include "orleans-tunnel.componentName" (dict "context" . "component" "tunnel-tls")) -}}
{{- end -}}

{{/*
orleans-tunnel.tunnelTlsGenerated: "true" when the chart makes the tunnel certificate.
*/}}
{{- define "orleans-tunnel.tunnelTlsGenerated" -}}
{{- if and .Values.gateway.tls.tunnel.enabled (not .Values.gateway.tls.tunnel.secretName) -}}true{{- end -}}
{{- end -}}

{{/*
orleans-tunnel.peerCaSecret: the Secret holding the CA other gateways' tunnel certificates chain to:
gateway.tls.peerCa.secretName, else the chart-made tunnel Secret, else none (system trust store).
*/}}
{{- define "orleans-tunnel.peerCaSecret" -}}
{{- if .Values.gateway.tls.peerCa.secretName -}}
{{- .Values.gateway.tls.peerCa.secretName -}}
{{- else if include "orleans-tunnel.tunnelTlsGenerated" . -}}
{{- include "orleans-tunnel.tunnelTlsSecret" . -}}
{{- end -}}
{{- end -}}

{{/*
orleans-tunnel.agentGatewayCaSecret: the Secret holding the CA the in-chart agent trusts for its gateways:
agent.gatewayCa.secretName, else the chart-made tunnel Secret when the agent dials this release, else none.
*/}}
{{- define "orleans-tunnel.agentGatewayCaSecret" -}}
{{- if .Values.agent.gatewayCa.secretName -}}
{{- .Values.agent.gatewayCa.secretName -}}
{{- else if and (include "orleans-tunnel.tunnelTlsGenerated" .) (not .Values.agent.gateways) -}}
{{- include "orleans-tunnel.tunnelTlsSecret" . -}}
{{- end -}}
{{- end -}}

{{/*
orleans-tunnel.tunnelTlsNames: the DNS names a chart-made tunnel certificate covers: the tunnel Service
(short, namespaced and cluster.local forms), every gateway under the headless Service (peers dial those),
the hosts of agentEndpoints.urlTemplate for every possible ordinal, and gateway.tls.tunnel.extraNames.
*/}}
{{- define "orleans-tunnel.tunnelTlsNames" -}}
{{- $ns := .Release.Namespace -}}
{{- $svc := include "orleans-tunnel.componentName" (dict "context" . "component" "gateway-tunnel") -}}
{{- $headless := include "orleans-tunnel.headlessName" . -}}
{{- $names := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) (printf "*.%s.%s.svc" $headless $ns) (printf "*.%s.%s.svc.cluster.local" $headless $ns) -}}
{{- $template := .Values.gateway.agentEndpoints.urlTemplate -}}
{{- if $template -}}
{{- $sts := include "orleans-tunnel.componentName" (dict "context" . "component" "gateway") -}}
{{- $count := ternary (int .Values.gateway.autoscaling.maxReplicas) (int .Values.gateway.replicas) .Values.gateway.autoscaling.enabled -}}
{{- range $i := until $count -}}
{{- $url := $template | replace "{ordinal}" (toString $i) | replace "{name}" (printf "%s-%d" $sts $i) -}}
{{- $names = append $names ((urlParse $url).host | splitList ":" | first) -}}
{{- end -}}
{{- end -}}
{{- range .Values.gateway.tls.tunnel.extraNames -}}
{{- $names = append $names . -}}
{{- end -}}
{{- $names | uniq | toJson -}}
{{- end -}}

{{/*
orleans-tunnel.clusterTlsSettings: Cluster:Tls of silos and gateways (the Secret mounted at /etc/otun/tls/cluster).
*/}}
{{- define "orleans-tunnel.clusterTlsSettings" -}}
{{- dict "CertificatePath" "/etc/otun/tls/cluster/tls.crt" "KeyPath" "/etc/otun/tls/cluster/tls.key" "CaPath" "/etc/otun/tls/cluster/ca.crt" | toJson -}}
{{- end -}}

{{/*
orleans-tunnel.clusterTlsVolume: the volume of the cluster TLS Secret (never its CA key), when cluster.tls is on.
*/}}
{{- define "orleans-tunnel.clusterTlsVolume" -}}
{{- if .Values.cluster.tls.enabled -}}
- name: tls-cluster
  secret:
    secretName: {{ include "orleans-tunnel.clusterTlsSecret" . }}
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
      - key: ca.crt
        path: ca.crt
{{- end -}}
{{- end -}}
