using System.Text.Json;
using Xunit;
using static OrleansTunnel.Tests.Deploy.Manifests;

namespace OrleansTunnel.Tests.Deploy;

/// <summary>Renders the chart for the default values and each ci/ scenario and checks what it wires.</summary>
[Collection(HelmCollection.Name)]
public sealed class ChartRenderTests(HelmFixture helm)
{
    /// <summary>A value of the scenario: the scenario file's, else values.yaml's; null when neither has it.</summary>
    private async Task<JsonElement?> ValueAsync(string scenario, params string[] path)
    {
        if (scenario != "default")
        {
            var own = await helm.ToJsonAsync(await File.ReadAllTextAsync(Path.Combine(HelmFixture.Chart, scenario)));
            if (At(own[0], path) is { } v)
            {
                return v;
            }
        }
        var defaults = await helm.ToJsonAsync(await File.ReadAllTextAsync(Path.Combine(HelmFixture.Chart, "values.yaml")));
        return At(defaults[0], path);
    }

    [Theory]
    [MemberData(nameof(HelmFixture.Scenarios), MemberType = typeof(HelmFixture))]
    public async Task GatewayReplicas_ReachStatefulSetOrHpa(string scenario)
    {
        var m = await helm.RenderAsync(HelmFixture.ScenarioArgs(scenario));
        int replicas = (await ValueAsync(scenario, "gateway", "replicas"))!.Value.GetInt32();
        bool autoscaling = (await ValueAsync(scenario, "gateway", "autoscaling", "enabled"))!.Value.GetBoolean();
        var gateway = m.One("StatefulSet", "gateway");

        if (autoscaling)
        {
            var hpa = m.One("HorizontalPodAutoscaler", "gateway");
            Assert.Null(At(gateway, "spec", "replicas"));
            Assert.Equal(replicas, At(hpa, "spec", "minReplicas")!.Value.GetInt32());
            Assert.Equal("StatefulSet", At(hpa, "spec", "scaleTargetRef", "kind")!.Value.GetString());
            Assert.Equal(Name(gateway), At(hpa, "spec", "scaleTargetRef", "name")!.Value.GetString());
        }
        else
        {
            Assert.Empty(m.OfKind("HorizontalPodAutoscaler"));
            Assert.Equal(replicas, At(gateway, "spec", "replicas")!.Value.GetInt32());
        }
    }

    [Fact]
    public async Task ReplicasFromSet_ReachStatefulSet_ThenHpa()
    {
        var fixedCount = await helm.RenderAsync("--set", "gateway.replicas=4");
        var autoscaled = await helm.RenderAsync("--set", "gateway.replicas=6", "--set", "gateway.autoscaling.enabled=true");

        Assert.Equal(4, At(fixedCount.One("StatefulSet", "gateway"), "spec", "replicas")!.Value.GetInt32());
        var hpa = autoscaled.One("HorizontalPodAutoscaler", "gateway");
        Assert.Equal(6, At(hpa, "spec", "minReplicas")!.Value.GetInt32());
        Assert.Equal(Name(autoscaled.One("StatefulSet", "gateway")), At(hpa, "spec", "scaleTargetRef", "name")!.Value.GetString());
    }

    [Theory]
    [MemberData(nameof(HelmFixture.Scenarios), MemberType = typeof(HelmFixture))]
    public async Task RedisConnection_ReachesSilosAndGateways_FromSecrets(string scenario)
    {
        var m = await helm.RenderAsync(HelmFixture.ScenarioArgs(scenario));
        string existing = (await ValueAsync(scenario, "redis", "existingSecret"))?.GetString() ?? "";
        var workloads = new[] { m.One("Deployment", "silo"), m.One("StatefulSet", "gateway") };
        if (existing.Length > 0)
        {
            string key = (await ValueAsync(scenario, "redis", "existingSecretKey"))!.Value.GetString()!;
            Assert.DoesNotContain(m.OfKind("Deployment"), d => Component(d) == "redis");
            foreach (var workload in workloads)
            {
                var env = Containers(workload).Single().GetProperty("env").EnumerateArray().ToList();
                var secretRef = At(env.Single(e => Str(e, "name") == "OTUN_Cluster__Redis"), "valueFrom", "secretKeyRef")!.Value;
                Assert.Equal((existing, key), (Str(secretRef, "name")!, Str(secretRef, "key")!));
            }
            return;
        }

        // The in-chart Redis: its password comes from a Secret into Redis and into each connection string.
        var redis = m.One("Deployment", "redis");
        var service = m.One("Service", "redis");
        var auth = m.One("Secret", "redis");
        Assert.Matches("^[A-Za-z0-9]{32}$", At(auth, "stringData", "password")!.Value.GetString());
        var redisContainer = Containers(redis).Single();
        var redisArgs = redisContainer.GetProperty("args").EnumerateArray().Select(a => a.GetString()).ToList();
        Assert.Equal("$(REDIS_PASSWORD)", redisArgs[redisArgs.IndexOf("--requirepass") + 1]);
        foreach (var workload in workloads.Append(redis))
        {
            var env = Containers(workload).Single().GetProperty("env").EnumerateArray().ToList();
            var password = env.Single(e => Str(e, "name") == "REDIS_PASSWORD");
            Assert.Equal(Name(auth), At(password, "valueFrom", "secretKeyRef", "name")?.GetString());
            Assert.Equal("password", At(password, "valueFrom", "secretKeyRef", "key")?.GetString());
            if (workload.Equals(redis))
            {
                continue;
            }
            Assert.True(env.FindIndex(e => Str(e, "name") == "REDIS_PASSWORD") < env.FindIndex(e => Str(e, "name") == "OTUN_Cluster__Redis"),
                $"{Name(workload)}: REDIS_PASSWORD must come before the connection string that refers to it");
            int port = At(service, "spec", "ports")!.Value[0].GetProperty("port").GetInt32();
            Assert.Equal($"{Name(service)}:{port},password=$(REDIS_PASSWORD),abortConnect=false",
                Str(env.Single(e => Str(e, "name") == "OTUN_Cluster__Redis"), "value"));
        }
        var siloEnv = Containers(m.One("Deployment", "silo")).Single().GetProperty("env").EnumerateArray();
        var advertised = siloEnv.Single(e => Str(e, "name") == "OTUN_Cluster__AdvertisedAddress");
        Assert.Equal("status.podIP", At(advertised, "valueFrom", "fieldRef", "fieldPath")!.Value.GetString());
    }

    [Theory]
    [MemberData(nameof(HelmFixture.Scenarios), MemberType = typeof(HelmFixture))]
    public async Task EveryWorkload_IsLockedDown_WithProbes(string scenario)
    {
        var m = await helm.RenderAsync(HelmFixture.ScenarioArgs(scenario));

        Assert.NotEmpty(m.Workloads);
        foreach (var workload in m.Workloads)
        {
            string what = $"{Str(workload, "kind")} {Name(workload)}";
            var pod = PodSpec(workload);
            Assert.True(At(pod, "securityContext", "runAsNonRoot")?.GetBoolean() == true, $"{what}: pod runAsNonRoot");
            Assert.Equal("RuntimeDefault", At(pod, "securityContext", "seccompProfile", "type")?.GetString());
            var tmpVolumes = pod.GetProperty("volumes").EnumerateArray()
                .Where(v => Str(v, "name") == "tmp" && v.TryGetProperty("emptyDir", out _)).ToList();
            Assert.True(tmpVolumes.Count == 1, $"{what}: an emptyDir volume 'tmp'");

            foreach (var c in Containers(workload))
            {
                string where = $"{what} container {Str(c, "name")}";
                var sc = c.GetProperty("securityContext");
                Assert.True(At(sc, "readOnlyRootFilesystem")?.GetBoolean() == true, $"{where}: readOnlyRootFilesystem");
                Assert.True(At(sc, "allowPrivilegeEscalation")?.GetBoolean() == false, $"{where}: allowPrivilegeEscalation false");
                Assert.True(At(sc, "runAsNonRoot")?.GetBoolean() == true, $"{where}: runAsNonRoot");
                Assert.Contains("ALL", At(sc, "capabilities", "drop")!.Value.EnumerateArray().Select(x => x.GetString()));
                Assert.Contains(c.GetProperty("volumeMounts").EnumerateArray(), vm => Str(vm, "mountPath") == "/tmp" && Str(vm, "name") == "tmp");

                switch (Component(workload))
                {
                    case "silo" or "gateway" or "agent":
                        Assert.Equal("/healthz", At(c, "livenessProbe", "httpGet", "path")?.GetString());
                        Assert.Equal("/readyz", At(c, "readinessProbe", "httpGet", "path")?.GetString());
                        Assert.Equal("admin", At(c, "livenessProbe", "httpGet", "port")?.GetString());
                        Assert.Contains(c.GetProperty("ports").EnumerateArray(), p => Str(p, "name") == "admin");
                        Assert.NotNull(At(c, "resources", "requests"));
                        break;
                    case "redis":
                        Assert.NotNull(At(c, "livenessProbe"));
                        Assert.NotNull(At(c, "readinessProbe"));
                        break;
                    default:
                        Assert.Fail($"{what}: unexpected component '{Component(workload)}'");
                        break;
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(HelmFixture.Scenarios), MemberType = typeof(HelmFixture))]
    public async Task Services_KeepVisitorsTunnelAdminAndDashboardApart(string scenario)
    {
        var m = await helm.RenderAsync(HelmFixture.ScenarioArgs(scenario));
        var visitor = m.One("Service", "gateway");
        var tunnel = m.One("Service", "gateway-tunnel");
        static List<string?> Targets(JsonElement svc) =>
            [.. At(svc, "spec", "ports")!.Value.EnumerateArray().Select(p => Str(p, "targetPort"))];

        Assert.NotEqual(Name(visitor), Name(tunnel));
        Assert.DoesNotContain("tunnel", Targets(visitor));
        Assert.DoesNotContain("dashboard", Targets(visitor));
        Assert.Equal(["tunnel"], Targets(tunnel));
        Assert.Equal(Name(m.One("StatefulSet", "gateway")), Name(visitor));
        Assert.All(m.OfKind("Service"), s => Assert.DoesNotContain("admin", Targets(s)));

        if (m.Find("Service", "dashboard") is { } dashboard)
        {
            Assert.NotEqual(Name(visitor), Name(dashboard));
            Assert.Equal(["dashboard"], Targets(dashboard));
            Assert.Equal("silo", At(dashboard, "spec", "selector", "app.kubernetes.io/component")?.GetString());
        }
        foreach (var ingress in m.OfKind("Ingress"))
        {
            var backends = At(ingress, "spec", "rules")!.Value.EnumerateArray()
                .SelectMany(r => At(r, "http", "paths")!.Value.EnumerateArray())
                .Select(p => At(p, "backend", "service", "name")!.Value.GetString());
            Assert.All(backends, b => Assert.Equal(Name(visitor), b));
        }
    }

    [Fact]
    public async Task DashboardEnabled_GetsItsOwnService()
    {
        var m = await helm.RenderAsync("--set", "silo.dashboard.enabled=true");

        var dashboard = m.One("Service", "dashboard");
        Assert.NotEqual(Name(m.One("Service", "gateway")), Name(dashboard));
        Assert.Contains(Containers(m.One("Deployment", "silo")).Single().GetProperty("ports").EnumerateArray(),
            p => Str(p, "name") == "dashboard" && p.GetProperty("containerPort").GetInt32() == 8090);
    }

    [Theory]
    [MemberData(nameof(HelmFixture.Scenarios), MemberType = typeof(HelmFixture))]
    public async Task PodTemplates_CarryChecksumAnnotations(string scenario)
    {
        var m = await helm.RenderAsync(HelmFixture.ScenarioArgs(scenario));

        foreach (var workload in m.Workloads.Where(w => Component(w) != "redis"))
        {
            var annotations = At(workload, "spec", "template", "metadata", "annotations");
            Assert.True(annotations is not null, $"{Name(workload)}: pod annotations");
            Assert.Matches("^[0-9a-f]{64}$", Str(annotations!.Value, "checksum/config"));
            string secretKey = Component(workload) == "agent" ? "checksum/secret" : "checksum/redis";
            Assert.Matches("^[0-9a-f]{64}$", Str(annotations.Value, secretKey));
        }
    }

    [Fact]
    public async Task ChangingARoute_ChangesTheGatewayChecksum_NotTheSilos()
    {
        var before = await helm.RenderAsync("--set", "gateway.routes[0].host=a.example.com", "--set", "gateway.routes[0].service=a");
        var after = await helm.RenderAsync("--set", "gateway.routes[0].host=b.example.com", "--set", "gateway.routes[0].service=a");
        static string? Checksum(Manifests m, string component) =>
            Str(At(m.One(component == "gateway" ? "StatefulSet" : "Deployment", component), "spec", "template", "metadata", "annotations")!.Value, "checksum/config");

        Assert.NotEqual(Checksum(before, "gateway"), Checksum(after, "gateway"));
        Assert.Equal(Checksum(before, "silo"), Checksum(after, "silo"));
    }

    [Fact]
    public async Task GatewayAppsettings_ListenOnAllAddresses_WithRoutesAndAgentHashes()
    {
        var m = await helm.RenderAsync(HelmFixture.ScenarioArgs("ci/with-agent-values.yaml"));

        var settings = JsonDocument.Parse(At(m.One("ConfigMap", "gateway"), "data", "appsettings.json")!.Value.GetString()!).RootElement;
        Assert.Equal("http://0.0.0.0:8080", At(settings, "Gateway", "Ingress")?.GetString());
        Assert.Equal("https://0.0.0.0:7070", At(settings, "Gateway", "Tunnel")?.GetString());
        Assert.Equal("http://0.0.0.0:9090", At(settings, "Gateway", "Admin")?.GetString());
        var route = At(settings, "Gateway", "Routes")!.Value[1];
        Assert.Equal(("demo.example.com", "/api", "demo-api"), (Str(route, "Host"), Str(route, "PathPrefix"), Str(route, "Service")));
        var agent = At(settings, "Gateway", "Agents")!.Value[0];
        Assert.Equal("demo-agent", Str(agent, "Id"));
        Assert.Equal(OrleansTunnel.Gateway.Auth.AgentCredentialStore.Hash("try-it-out-token-not-for-production"), Str(agent, "TokenSha256"));
        Assert.DoesNotContain("try-it-out-token-not-for-production", m.One("ConfigMap", "gateway").GetRawText());

        var silo = JsonDocument.Parse(At(m.One("ConfigMap", "silo"), "data", "appsettings.json")!.Value.GetString()!).RootElement;
        Assert.Equal("http://0.0.0.0:9091", At(silo, "Cluster", "Admin")?.GetString());

        var agentSettings = JsonDocument.Parse(At(m.One("ConfigMap", "agent"), "data", "appsettings.json")!.Value.GetString()!).RootElement;
        Assert.Equal($"https://{Name(m.One("Service", "gateway-tunnel"))}:7070", At(agentSettings, "Agent", "Gateways")!.Value[0].GetString());
        Assert.Null(At(agentSettings, "Agent", "AllowCleartext"));
        var tokenEnv = Containers(m.One("Deployment", "agent")).Single().GetProperty("env").EnumerateArray()
            .Single(e => Str(e, "name") == "OTUN_Agent__Token");
        Assert.Equal(Name(m.One("Secret", "agent")), At(tokenEnv, "valueFrom", "secretKeyRef", "name")?.GetString());
        Assert.Equal("/app", Str(Containers(m.One("Deployment", "agent")).Single(), "workingDir"));
    }

    [Fact]
    public async Task LongNames_AreCutTo63Characters_AndStayDistinct()
    {
        var m = await helm.RenderAsync("--set", "fullnameOverride=" + new string('x', 70), "--set", "silo.dashboard.enabled=true");

        var names = m.All.Where(d => Str(d, "kind") is not null).Select(d => (Str(d, "kind"), Name(d))).ToList();
        Assert.All(names, n => Assert.True(n.Item2.Length <= 63 && !n.Item2.EndsWith('-'), $"{n.Item1} {n.Item2}"));
        Assert.Equal(names.Count, names.Distinct().Count());
        Assert.EndsWith("-gateway-tunnel", Name(m.One("Service", "gateway-tunnel")));
    }
}
