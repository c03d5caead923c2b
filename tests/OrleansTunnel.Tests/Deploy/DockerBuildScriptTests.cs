using Xunit;

namespace OrleansTunnel.Tests.Deploy;

/// <summary>docker/build.sh and the build context: dev state never reaches an image.</summary>
public sealed class DockerBuildScriptTests
{
    [Fact]
    public void TheBuildContext_LeavesDevStateOut()
    {
        string work = Path.Combine(Path.GetTempPath(), "otun-dockerignore-" + Guid.NewGuid().ToString("N")[..8]);
        string source = Path.Combine(work, "src");
        string context = Path.Combine(work, "context");
        try
        {
            Directory.CreateDirectory(Path.Combine(source, ".data"));
            Directory.CreateDirectory(Path.Combine(source, "cli", ".data"));
            File.Copy(Path.Combine(RepoRoot.Path, ".dockerignore"), Path.Combine(source, ".dockerignore"));
            File.WriteAllText(Path.Combine(source, ".data", "admin-token"), "secret");
            File.WriteAllText(Path.Combine(source, "cli", ".data", "dev-key.pem"), "secret");
            File.WriteAllText(Path.Combine(source, "cli", "Program.cs"), "// kept");

            DockerContext.CopyTo(source, context);

            Assert.True(File.Exists(Path.Combine(context, "cli", "Program.cs")), "the context lost cli/Program.cs");
            Assert.False(Directory.Exists(Path.Combine(context, ".data")), ".data/ (dev keys and tokens) is in the build context");
            Assert.False(Directory.Exists(Path.Combine(context, "cli", ".data")), "cli/.data/ is in the build context");
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("ghcr.io/acme")]
    [InlineData("|0.2.0")]
    public async Task BuildScript_WithoutRegistryAndTag_PrintsUsage(string joined)
    {
        string[] args = joined.Length == 0 ? [] : joined.Split('|');
        var result = await ProcessRunner.RunAsync("bash", [Path.Combine(RepoRoot.Path, "docker", "build.sh"), .. args],
            RepoRoot.Path, TimeSpan.FromSeconds(30), environment: new Dictionary<string, string?> { ["DOCKER"] = "/nonexistent/docker" });

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("usage: docker/build.sh REGISTRY TAG", result.StandardError);
    }
}
