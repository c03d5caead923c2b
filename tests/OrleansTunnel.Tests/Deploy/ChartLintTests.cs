using Xunit;

namespace OrleansTunnel.Tests.Deploy;

[Collection(HelmCollection.Name)]
public sealed class ChartLintTests(HelmFixture helm)
{
    [Theory]
    [MemberData(nameof(HelmFixture.Scenarios), MemberType = typeof(HelmFixture))]
    public async Task Lint_Passes(string scenario)
    {
        var result = await helm.HelmAsync(["lint", HelmFixture.Chart, "--strict", .. HelmFixture.ScenarioArgs(scenario)]);

        Assert.True(result.ExitCode == 0, result.Describe());
    }
}
