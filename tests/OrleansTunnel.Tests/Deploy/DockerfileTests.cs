using System.Text.RegularExpressions;
using Xunit;

namespace OrleansTunnel.Tests.Deploy;

/// <summary>
/// The role images: each Dockerfile's build stage publishes the otun project, and that publish
/// succeeds on the files the build context would hold (no docker daemon or registry needed).
/// </summary>
public sealed class DockerfileTests
{
    private static readonly string[] RoleNames = ["silo", "gateway", "agent"];

    public static TheoryData<string> Roles() => new(RoleNames);

    private static string[] Lines(string role) =>
        File.ReadAllLines(Path.Combine(RepoRoot.Path, "docker", role + ".Dockerfile"));

    /// <summary>The `dotnet publish` command of the build stage (the RUN line after the sdk FROM).</summary>
    private static string PublishCommand(string role)
    {
        var lines = Lines(role);
        int build = Array.FindIndex(lines, l => Regex.IsMatch(l, @"^FROM\s+mcr\.microsoft\.com/dotnet/sdk:10\.0\s+AS\s+build", RegexOptions.IgnoreCase));
        Assert.True(build >= 0, $"docker/{role}.Dockerfile has no 'FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build' stage");
        var publish = lines.Skip(build + 1).TakeWhile(l => !l.StartsWith("FROM ", StringComparison.OrdinalIgnoreCase))
            .Where(l => l.StartsWith("RUN dotnet publish ", StringComparison.Ordinal)).ToList();
        Assert.True(publish.Count == 1, $"docker/{role}.Dockerfile: expected one 'RUN dotnet publish' in the build stage, found {publish.Count}");
        return publish[0]["RUN ".Length..].Trim();
    }

    [Theory]
    [MemberData(nameof(Roles))]
    public void RuntimeStage_RunsTheRole_AsNonRoot(string role)
    {
        var lines = Lines(role);
        int runtime = Array.FindLastIndex(lines, l => l.StartsWith("FROM ", StringComparison.OrdinalIgnoreCase));
        var stage = lines[runtime..];

        Assert.Matches(@"^FROM\s+mcr\.microsoft\.com/dotnet/aspnet:10\.0(\s|$)", stage[0]);
        Assert.Contains("WORKDIR /app", stage);
        Assert.Contains(stage, l => Regex.IsMatch(l, @"^USER\s+10001(:10001)?$"));
        Assert.Contains(stage, l => l.StartsWith("COPY --from=build", StringComparison.Ordinal) && l.EndsWith(" /out /app", StringComparison.Ordinal));
        Assert.Equal($"ENTRYPOINT [\"/app/otun\", \"{role}\"]", stage.Single(l => l.StartsWith("ENTRYPOINT", StringComparison.Ordinal)));
    }

    [Theory]
    [MemberData(nameof(Roles))]
    public void RuntimeStage_SetsTheProcessDefaults(string role)
    {
        var lines = Lines(role);
        var stage = lines[Array.FindLastIndex(lines, l => l.StartsWith("FROM ", StringComparison.OrdinalIgnoreCase))..];

        foreach (var (name, value) in OrleansTunnel.Cli.RuntimeDefaults.Environment)
        {
            Assert.Contains($"ENV {name}={value}", stage);
        }
    }

    [Fact]
    public void TheOtunScript_ExportsTheProcessDefaults_LettingTheOperatorsValueWin()
    {
        var script = File.ReadAllLines(Path.Combine(RepoRoot.Path, "otun"));

        foreach (var (name, value) in OrleansTunnel.Cli.RuntimeDefaults.Environment)
        {
            Assert.Contains($"export {name}=\"${{{name}:-{value}}}\"", script);
        }
    }

    [Fact]
    public void AllRoles_PublishTheSameProject_TheSameWay()
    {
        var commands = RoleNames.Select(PublishCommand).Distinct().ToList();

        Assert.Single(commands);
        Assert.Equal("dotnet publish cli/OrleansTunnel.Cli.csproj -c Release -o /out", commands[0]);
    }

    [Fact]
    public async Task PublishCommand_Succeeds_OnTheBuildContext()
    {
        var args = PublishCommand("silo").Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
        Assert.Equal("dotnet", args[0]);
        string work = Path.Combine(Path.GetTempPath(), "otun-docker-" + Guid.NewGuid().ToString("N")[..8]);
        string context = Path.Combine(work, "src");
        string output = Path.Combine(work, "out");
        try
        {
            // A copy, as docker's COPY . . sees it: proves .dockerignore keeps what the build needs,
            // and the build writes its obj/ and bin/ there, not into the work tree.
            DockerContext.CopyTo(RepoRoot.Path, context);
            int o = args.IndexOf("-o");
            args[o + 1] = output;
            // No build servers left behind holding this process's pipes.
            args.AddRange(["-nodeReuse:false", "-p:UseSharedCompilation=false", "-nologo", "-clp:ErrorsOnly"]);
            var environment = new Dictionary<string, string?>
            {
                ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
                ["DOTNET_NOLOGO"] = "1",
                ["MSBUILDDISABLENODEREUSE"] = "1",
            };
            // The test host's own MSBuild settings would leak into the child build.
            foreach (var key in Environment.GetEnvironmentVariables().Keys.Cast<string>()
                .Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase) && k != "MSBUILDDISABLENODEREUSE"))
            {
                environment[key] = null;
            }

            var result = await ProcessRunner.RunAsync("dotnet", args.Skip(1), context, TimeSpan.FromMinutes(5), environment: environment);

            Assert.True(result.ExitCode == 0, result.Describe());
            Assert.True(File.Exists(Path.Combine(output, "otun")), $"no {output}/otun after the publish");
            Assert.True(File.Exists(Path.Combine(output, "otun.dll")), $"no {output}/otun.dll after the publish");
        }
        finally
        {
            try
            {
                Directory.Delete(work, recursive: true);
            }
            catch (IOException)
            {
                // Temp space; a leftover is harmless.
            }
        }
    }
}
