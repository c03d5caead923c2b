using Xunit;

namespace OrleansTunnel.Tests.Deploy;

/// <summary>Invalid values stop the render with a message that names the key and the fix.</summary>
[Collection(HelmCollection.Name)]
public sealed class ChartValidationTests(HelmFixture helm)
{
    public static TheoryData<string[], string, string> Invalid() => new()
    {
        { ["--set", "redis.enabled=false"], "redis.existingSecret", "--set redis.enabled=true" },
        { ["--set", "redis.existingSecret=otun-redis"], "redis.existingSecret=otun-redis", "--set redis.enabled=false" },
        { ["--set", "agent.enabled=true", "--set", "agent.agentId=a", "--set", "agent.services[0].name=app", "--set", "agent.services[0].url=http://app:80"],
            "agent.existingSecret", "--set agent.existingSecret=NAME" },
        { ["--set", "agent.enabled=true", "--set", "agent.token=t"], "agent.agentId", "--set agent.agentId=" },
        { ["--set", "gateway.autoscaling.enabled=true", "--set", "gateway.replicas=5", "--set", "gateway.autoscaling.maxReplicas=3"],
            "gateway.autoscaling.maxReplicas", "--set gateway.autoscaling.maxReplicas=5" },
        { ["--set", "gateway.ingress.enabled=true"], "gateway.ingress.hosts", "--set 'gateway.ingress.hosts=" },
        { ["--set", "gateway.tls.ingress.enabled=true"], "gateway.tls.ingress.secretName", "--set gateway.tls.ingress.secretName=NAME" },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public async Task InvalidValues_FailNamingKeyAndFix(string[] args, string key, string fix)
    {
        var result = await helm.TemplateAsync(args);

        Assert.True(result.ExitCode != 0, $"rendering with {string.Join(' ', args)} should fail\n{result.Describe()}");
        Assert.Contains(key, result.StandardError);
        Assert.Contains(fix, result.StandardError);
    }

    [Fact]
    public async Task MalformedTokenHash_IsRefusedBySchema()
    {
        var result = await helm.TemplateAsync("--set", "gateway.agents[0].id=a", "--set", "gateway.agents[0].tokenSha256=NOT-A-HASH",
            "--set", "gateway.agents[0].services[0]=app");

        Assert.True(result.ExitCode != 0, result.Describe());
        Assert.Contains("tokenSha256", result.StandardError);
    }
}
