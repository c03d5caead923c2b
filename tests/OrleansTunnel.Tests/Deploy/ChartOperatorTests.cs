using System.Text.Json;
using Xunit;
using static OrleansTunnel.Tests.Deploy.Manifests;

namespace OrleansTunnel.Tests.Deploy;

/// <summary>NetworkPolicies, ServiceAccounts, the dashboard guard, monitoring, helm test, Redis, images, NOTES.</summary>
[Collection(HelmCollection.Name)]
public sealed class ChartOperatorTests(HelmFixture helm)
{
    private static readonly string[] Agent = ["--set", "agent.enabled=true", "--set", "agent.agentId=a", "--set", "agent.token=t",
        "--set", "agent.services[0].name=app", "--set", "agent.services[0].url=http://app:80"];

    private static IEnumerable<(JsonElement From, List<string> Ports)> Rules(JsonElement policy) =>
        At(policy, "spec", "ingress")!.Value.EnumerateArray().Select(r =>
            (r.TryGetProperty("from", out var f) ? f : default, r.GetProperty("ports").EnumerateArray().Select(p => p.GetProperty("port").ToString()).ToList()));

    private static string? FromComponent(JsonElement peer) => At(peer, "podSelector", "matchLabels", "app.kubernetes.io/component")?.GetString();

    [Fact]
    public async Task NetworkPolicies_AreOnByDefault_AndOpenOnlyWhatEachRoleServes()
    {
        var m = await helm.RenderAsync([.. Agent, "--set", "silo.dashboard.enabled=true"]);
        Assert.Equal(["agent", "gateway", "redis", "silo"], m.OfKind("NetworkPolicy").Select(p => Component(p)!).Order());

        foreach (var policy in m.OfKind("NetworkPolicy"))
        {
            string role = Component(policy)!;
            Assert.Equal(role, At(policy, "spec", "podSelector", "matchLabels", "app.kubernetes.io/component")?.GetString());
            Assert.Equal(["Ingress"], At(policy, "spec", "policyTypes")!.Value.EnumerateArray().Select(x => x.GetString()));
            foreach (var (from, ports) in Rules(policy))
            {
                if (ports.Contains("admin"))
                {
                    Assert.Equal(["admin"], ports);
                    Assert.Equal("monitoring", At(from[0], "namespaceSelector", "matchLabels", "kubernetes.io/metadata.name")?.GetString());
                }
                else if (ports.Contains("silo") || ports.Contains("redis"))
                {
                    Assert.Equal(["gateway", "silo"], from.EnumerateArray().Select(p => FromComponent(p)!).Order());
                }
                else
                {
                    // Only the gateways' visitor and tunnel ports are open to anyone.
                    Assert.Equal("gateway", role);
                    Assert.Equal(JsonValueKind.Undefined, from.ValueKind);
                    Assert.Equal(["ingress", "tunnel"], ports);
                }
            }
        }
        // The dashboard is reachable from nobody until networkPolicy.dashboardFrom names someone.
        Assert.DoesNotContain(Rules(m.One("NetworkPolicy", "silo")), r => r.Ports.Contains("dashboard"));
        var opened = await helm.RenderAsync("--set", "silo.dashboard.enabled=true", "--set", "networkPolicy.dashboardFrom[0].ipBlock.cidr=10.1.0.0/16");
        var dashboard = Rules(opened.One("NetworkPolicy", "silo")).Single(r => r.Ports.Contains("dashboard"));
        Assert.Equal("10.1.0.0/16", At(dashboard.From[0], "ipBlock", "cidr")?.GetString());

        Assert.Empty((await helm.RenderAsync("--set", "networkPolicy.enabled=false")).OfKind("NetworkPolicy"));
    }

    [Fact]
    public async Task EachRoleHasItsOwnServiceAccount_AndOnlySilosGetThePodRbac()
    {
        var m = await helm.RenderAsync(Agent);
        var accounts = m.OfKind("ServiceAccount").ToDictionary(a => Component(a)!);
        Assert.Equal(["agent", "gateway", "silo"], accounts.Keys.Order());
        foreach (var (kind, role) in new[] { ("Deployment", "silo"), ("StatefulSet", "gateway"), ("Deployment", "agent") })
        {
            var pod = PodSpec(m.One(kind, role));
            Assert.Equal(Name(accounts[role]), Str(pod, "serviceAccountName"));
            Assert.Equal(role == "silo", At(pod, "automountServiceAccountToken")!.Value.GetBoolean());
            Assert.Equal(role == "silo", At(accounts[role], "automountServiceAccountToken")!.Value.GetBoolean());
        }
        var subjects = At(m.One("RoleBinding", "silo"), "subjects")!.Value.EnumerateArray().ToList();
        Assert.Equal([Name(accounts["silo"])], subjects.Select(s => Str(s, "name")));
    }

    [Theory]
    [InlineData("NodePort")]
    [InlineData("LoadBalancer")]
    public async Task AnExposedDashboard_IsRefused_UnlessAcknowledged(string type)
    {
        var refused = await helm.TemplateAsync("--set", "silo.dashboard.enabled=true", "--set", "silo.dashboard.service.type=" + type);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("exposeWithoutLogin", refused.StandardError);

        var acknowledged = await helm.RenderAsync("--set", "silo.dashboard.enabled=true", "--set", "silo.dashboard.service.type=" + type,
            "--set", "silo.dashboard.service.exposeWithoutLogin=true");
        Assert.Equal(type, At(acknowledged.One("Service", "dashboard"), "spec", "type")?.GetString());
    }

    [Fact]
    public async Task PodMonitors_ScrapeEveryRolesAdminPort_AndHelmTestRequestsTheVisitorService()
    {
        var m = await helm.RenderAsync("--set", "metrics.podMonitor.enabled=true", "--set", "metrics.podMonitor.labels.release=prom",
            "--set", "tests.host=app.example.com", "--set", "tests.expectStatus=200");
        // Silos and gateways (the in-chart agent is off by default).
        var monitors = m.OfKind("PodMonitor").ToList();
        Assert.Equal(["gateway", "silo"], monitors.Select(x => At(x, "spec", "selector", "matchLabels", "app.kubernetes.io/component")?.GetString() ?? "").Order().ToArray());
        foreach (var monitor in monitors)
        {
            Assert.Equal("prom", At(monitor, "metadata", "labels", "release")?.GetString());
            var endpoint = At(monitor, "spec", "podMetricsEndpoints")!.Value[0];
            Assert.Equal(("admin", "/metrics"), (Str(endpoint, "port"), Str(endpoint, "path")));
        }
        Assert.Empty((await helm.RenderAsync()).OfKind("PodMonitor"));

        var test = m.OfKind("Pod").Single();
        Assert.Equal("test", At(test, "metadata", "annotations", "helm.sh/hook")?.GetString());
        var env = At(test, "spec", "containers")!.Value[0].GetProperty("env").EnumerateArray().ToDictionary(e => Str(e, "name")!, e => Str(e, "value"));
        Assert.Equal(Name(m.One("Service", "gateway")), env["TEST_SERVICE"]);
        Assert.Equal("80", env["TEST_PORT"]);
        Assert.Equal(("app.example.com", "200"), (env["TEST_HOST"], env["TEST_EXPECT"]));
    }

    [Fact]
    public async Task InChartRedis_HasPersistenceWhenAsked_AndEveryImageTakesTheRegistryAndDigest()
    {
        string digest = "sha256:" + new string('b', 64);
        var m = await helm.RenderAsync("--set", "redis.persistence.enabled=true", "--set", "redis.persistence.size=5Gi",
            "--set", "image.registry=registry.example.com/otun/", "--set", "gateway.image.digest=" + digest);
        var redis = m.One("Deployment", "redis");
        var claim = m.One("PersistentVolumeClaim", "redis");
        Assert.Equal("5Gi", At(claim, "spec", "resources", "requests", "storage")?.GetString());
        Assert.Contains(PodSpec(redis).GetProperty("volumes").EnumerateArray(), v => At(v, "persistentVolumeClaim", "claimName")?.GetString() == Name(claim));
        var args = Containers(redis).Single().GetProperty("args").EnumerateArray().Select(a => a.GetString()).ToList();
        Assert.Equal("yes", args[args.IndexOf("--appendonly") + 1]);

        Assert.Equal("registry.example.com/otun/redis:7-alpine", Str(Containers(redis).Single(), "image"));
        Assert.Equal($"registry.example.com/otun/orleans-tunnel-gateway:0.1.0@{digest}", Str(Containers(m.One("StatefulSet", "gateway")).Single(), "image"));
        Assert.Equal("registry.example.com/otun/orleans-tunnel-silo:0.1.0", Str(Containers(m.One("Deployment", "silo")).Single(), "image"));
        Assert.StartsWith("registry.example.com/otun/curlimages/curl:", Str(At(m.OfKind("Pod").Single(), "spec", "containers")!.Value[0], "image"));
    }

    [Fact]
    public async Task ProductionScenario_FailsUntilItsPlaceholderTokenHashIsReplaced()
    {
        var placeholder = await helm.TemplateAsync("-f", Path.Combine(HelmFixture.Chart, "ci", "external-redis-values.yaml"));

        Assert.NotEqual(0, placeholder.ExitCode);
        Assert.Contains("tokenSha256", placeholder.StandardError);
        Assert.DoesNotContain("6be2410a051ef0be8f7df731356d2c77dcd84fe30a36f6e55f15388848576565",
            await File.ReadAllTextAsync(Path.Combine(HelmFixture.Chart, "ci", "external-redis-values.yaml")));
    }

    [Fact]
    public async Task TheChartReadme_IsGeneratedFromTheValuesDocComments()
    {
        var check = await ProcessRunner.RunAsync(helm.Python, [Path.Combine(RepoRoot.Path, "scripts", "chart-readme.py"), "--check"], RepoRoot.Path, TimeSpan.FromSeconds(60));

        Assert.True(check.ExitCode == 0, check.Describe());
        string readme = await File.ReadAllTextAsync(Path.Combine(HelmFixture.Chart, "README.md"));
        Assert.Contains("| `gateway.agentEndpoints.urlTemplate` | `\"\"` |", readme);
        Assert.Contains("| `gateway.preStopSeconds` | `10` |", readme);
        Assert.DoesNotContain("silo.dashboard.path", readme);
    }

    [Fact]
    public async Task TheRemovedDashboardPath_IsRefused()
    {
        var result = await helm.TemplateAsync("--set", "silo.dashboard.path=/other");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("path", result.StandardError);
    }

    [Fact]
    public async Task Notes_PrintHttpsWithTls_AndNeverSuggestOverwritingAListEntry()
    {
        var result = await helm.HelmAsync("install", "otun", HelmFixture.Chart, "--dry-run=client", "--namespace", "otun-test",
            "--set", "gateway.replicas=3", "--set", "gateway.tls.tunnel.enabled=true", "--set", "gateway.tls.tunnel.secretName=tls");
        Assert.True(result.ExitCode == 0, result.Describe());
        string notes = result.StandardOutput[result.StandardOutput.IndexOf("NOTES:", StringComparison.Ordinal)..];

        Assert.Contains("--gateway https://", notes);
        Assert.Contains("*.otun-orleans-tunnel-gateway-headless.otun-test.svc", notes);
        Assert.DoesNotContain("agents[0]", notes);
        Assert.DoesNotContain("only over the tunnels it holds", notes);
    }
}
