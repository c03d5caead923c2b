using Xunit;

namespace OrleansTunnel.Tests.Deploy;

/// <summary>
/// Every scenario's rendered objects are valid against the Kubernetes OpenAPI schemas (the npm
/// package kubernetes-models, checked with ajv; PodMonitor against the Prometheus Operator's).
/// There is no API server here, and kubectl validates only against one.
/// </summary>
[Collection(HelmCollection.Name)]
public sealed class ChartSchemaTests(HelmFixture helm)
{
    private static readonly Lazy<string> Validator = new(() =>
    {
        var install = ProcessRunner.RunAsync("bash", [Path.Combine(RepoRoot.Path, "scripts", "install-k8s-schemas.sh")],
            RepoRoot.Path, TimeSpan.FromMinutes(5)).GetAwaiter().GetResult();
        if (install.ExitCode != 0)
        {
            throw new InvalidOperationException("scripts/install-k8s-schemas.sh failed: " + install.Describe());
        }
        return install.StandardOutput.Trim().Split('\n')[^1].Trim();
    });

    public static TheoryData<string> ScenariosAndMore()
    {
        var data = HelmFixture.Scenarios();
        // Everything optional switched on at once, on top of the TLS scenario.
        data.Add("ci/tls-dashboard-values.yaml+all");
        return data;
    }

    private static string[] Args(string scenario) => scenario.EndsWith("+all", StringComparison.Ordinal)
        ?
        [
            .. HelmFixture.ScenarioArgs(scenario[..^4]),
            "--set", "redis.persistence.enabled=true", "--set", "agent.enabled=true", "--set", "agent.agentId=a", "--set", "agent.token=t",
            "--set", "agent.services[0].name=app", "--set", "agent.services[0].url=http://app:80", "--set", "agent.gatewayCa.secretName=otun-tunnel-tls",
            "--set", "gateway.agentEndpoints.urlTemplate=https://gw-{ordinal}.tunnel.example.com:443", "--set", "gateway.agentEndpoints.perPodService.enabled=true",
            "--set", "gateway.autoscaling.enabled=true", "--set", "silo.priorityClassName=high", "--set", "silo.dashboard.service.type=LoadBalancer",
            "--set", "silo.dashboard.service.exposeWithoutLogin=true", "--set", "networkPolicy.dashboardFrom[0].ipBlock.cidr=10.0.0.0/8",
            "--set", "silo.image.digest=sha256:" + new string('a', 64),
            "--set", "gateway.tcpServices[0].service=db", "--set", "gateway.tcpServices[0].port=5432", "--set", "gateway.udpServices[0].service=dns",
            "--set", "gateway.udpServices[0].port=5353", "--set", "gateway.udpServices[0].servicePort=53", "--set", "gateway.tlsPassthrough.enabled=true",
        ]
        : HelmFixture.ScenarioArgs(scenario);

    [Theory]
    [MemberData(nameof(ScenariosAndMore))]
    public async Task RenderedObjects_AreValidKubernetesObjects(string scenario)
    {
        var rendered = await helm.TemplateAsync(Args(scenario));
        Assert.True(rendered.ExitCode == 0, rendered.Describe());
        var json = await helm.ToJsonAsync(rendered.StandardOutput);

        var result = await ProcessRunner.RunAsync("node", ["validate.mjs"], Validator.Value, TimeSpan.FromMinutes(2), standardInput: json.GetRawText());

        Assert.True(result.ExitCode == 0, result.Describe());
        Assert.Equal(json.GetArrayLength(), result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Count(l => l.StartsWith("ok ", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task TheValidator_RejectsAnInvalidObject()
    {
        // Proves the check above can fail: a rendered StatefulSet with a port given as a name where a number belongs.
        var rendered = await helm.RenderAsync();
        string broken = System.Text.Json.JsonSerializer.Serialize(rendered.All.Single(d => Manifests.Str(d, "kind") == "StatefulSet"))
            .Replace("\"containerPort\":7070", "\"containerPort\":\"tunnel\"", StringComparison.Ordinal);
        Assert.Contains("\"containerPort\":\"tunnel\"", broken);

        var result = await ProcessRunner.RunAsync("node", ["validate.mjs"], Validator.Value, TimeSpan.FromMinutes(2), standardInput: "[" + broken + "]");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("containerPort must be integer", result.StandardOutput);
    }
}
