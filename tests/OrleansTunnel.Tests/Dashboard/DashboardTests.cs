using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Dashboard;

/// <summary>
/// The Orleans dashboard of `otun dev`, on its own listener (Cluster:Dashboard), loaded in headless
/// Chromium while traffic goes through the tunnel: the tunnel's grain types must be listed.
/// </summary>
public sealed class DashboardTests(ITestOutputHelper output) : IAsyncLifetime
{
    /// <summary>The dashboard page that lists grain types with their activation counts.</summary>
    private const string GrainsRoute = "/dashboard/#/grains";

    private static readonly string[] TunnelGrains = ["AgentGrain", "RequestGrain", "BackpressureGrain"];

    private readonly int _dashboard = Ports.Free();
    private readonly CancellationTokenSource _inFlight = new();
    private readonly List<Task> _sleepers = [];
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };
    private DevProcess? _dev;

    private string Dashboard => $"http://127.0.0.1:{_dashboard}";

    public async Task InitializeAsync()
    {
        _dev = await DevProcess.StartAsync("--set", $"Cluster:Dashboard={Dashboard}");
        output.WriteLine(string.Join("\n", _dev.Lines));
    }

    public async Task DisposeAsync()
    {
        await _inFlight.CancelAsync();
        await Task.WhenAny(Task.WhenAll(_sleepers), Task.Delay(TimeSpan.FromSeconds(5)));
        if (_dev is not null)
        {
            await _dev.DisposeAsync();
        }
        _http.Dispose();
        _inFlight.Dispose();
    }

    [Fact]
    public async Task Dashboard_InHeadlessChromium_ListsTheTunnelGrains_WhileTrafficFlows()
    {
        // The dev process prints the dashboard URL, and only its last line says "ready".
        string[] lines = _dev!.Lines;
        Assert.Contains($"  dashboard {Dashboard}/dashboard", lines);
        Assert.All(lines[..^1], l => Assert.DoesNotContain("ready", l, StringComparison.Ordinal));

        // The dashboard is served only on its own listener, never on the ingress or the admin listener.
        using (var r = await _http.GetAsync($"{Dashboard}/dashboard/"))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Contains("<html", await r.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);
        }
        using (var r = await _http.GetAsync($"http://127.0.0.1:{_dev!.Admin}/dashboard/DashboardCounters"))
        {
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        }
        using (var r = await _http.GetAsync($"http://127.0.0.1:{_dev!.Ingress}/dashboard/DashboardCounters"))
        {
            Assert.False(r.IsSuccessStatusCode, "the ingress must not serve the dashboard (it forwards to the backend)");
        }
        using (var r = await _http.GetAsync($"{Dashboard}/healthz"))
        {
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        }

        // Traffic through the tunnel: completed requests, plus a few that stay in flight so that their
        // RequestGrain activations are alive while the browser looks (AgentGrain lives with the agent's
        // session, BackpressureGrain with the gateway's permit leases).
        for (int i = 0; i < 50; i++)
        {
            using var r = await _http.GetAsync($"http://127.0.0.1:{_dev!.Ingress}/hello");
            Assert.Equal("hello", await r.Content.ReadAsStringAsync());
        }
        for (int i = 0; i < 4; i++)
        {
            _sleepers.Add(SleepAsync());
        }

        // The dashboard's own JSON API (what the page polls) counts activations of all three.
        var activations = new Dictionary<string, int>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!TunnelGrains.All(g => activations.GetValueOrDefault(g) > 0))
        {
            Assert.True(DateTime.UtcNow < deadline, "within 20 s the dashboard API did not report activations of all of "
                + string.Join(", ", TunnelGrains) + "; it reported " + string.Join(", ", activations.Select(kv => $"{kv.Key}={kv.Value}")));
            await Task.Delay(250);
            activations = await GrainActivationsAsync();
        }
        output.WriteLine("DashboardCounters: " + string.Join(", ", activations.Select(kv => $"{kv.Key}={kv.Value}")));
        Assert.True(activations["RequestGrain"] >= 1);

        // The real page, rendered by Chromium.
        string url = Dashboard + GrainsRoute;
        var dom = await RunChromiumAsync("--virtual-time-budget=15000", "--dump-dom", url);
        Assert.Equal(0, dom.ExitCode);
        Assert.Contains("Activations by Type", dom.Stdout, StringComparison.Ordinal);
        foreach (var grain in TunnelGrains)
        {
            Assert.Contains(grain, dom.Stdout, StringComparison.Ordinal);
        }

        string resultsDirectory = Path.Combine(AppContext.BaseDirectory, "TestResults");
        Directory.CreateDirectory(resultsDirectory);
        string screenshot = Path.Combine(resultsDirectory, "dashboard.png");
        File.Delete(screenshot);
        var shot = await RunChromiumAsync("--virtual-time-budget=15000", "--hide-scrollbars", "--window-size=1400,1000", $"--screenshot={screenshot}", url);
        Assert.Equal(0, shot.ExitCode);
        Assert.True(File.Exists(screenshot), "Chromium wrote no screenshot:\n" + shot.Stderr);
        byte[] png = await File.ReadAllBytesAsync(screenshot);
        Assert.True(png.Length > 10_000, $"the screenshot is suspiciously small ({png.Length} bytes)");
        Assert.Equal("\x89PNG\r\n\x1a\n", Encoding.Latin1.GetString(png, 0, 8));
        Assert.Equal(1400, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)));
        Assert.Equal(1000, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20)));
        output.WriteLine($"dashboard: {url}");
        output.WriteLine($"screenshot: {screenshot}");
    }

    /// <summary>A request that the demo backend holds for 30 s (cancelled at cleanup).</summary>
    private async Task SleepAsync()
    {
        try
        {
            using var r = await _http.GetAsync($"http://127.0.0.1:{_dev!.Ingress}/sleep?ms=30000", _inFlight.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException)
        {
        }
    }

    /// <summary>Activations per grain type (short name), from the dashboard's DashboardCounters API.</summary>
    private async Task<Dictionary<string, int>> GrainActivationsAsync()
    {
        using var r = await _http.GetAsync($"{Dashboard}/dashboard/DashboardCounters");
        r.EnsureSuccessStatusCode();
        using var json = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var stat in json.RootElement.GetProperty("simpleGrainStats").EnumerateArray())
        {
            string type = stat.GetProperty("grainType").GetString() ?? "";
            string name = type[(type.LastIndexOf('.') + 1)..];
            result[name] = result.GetValueOrDefault(name) + stat.GetProperty("activationCount").GetInt32();
        }
        return result;
    }

    private static string Chromium()
    {
        foreach (var candidate in new[] { Environment.GetEnvironmentVariable("OTUN_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser" })
        {
            if (!string.IsNullOrEmpty(candidate) && File.Exists(candidate))
            {
                return candidate;
            }
        }
        throw new InvalidOperationException("headless Chromium is needed: apt-get install -y chromium (or set OTUN_CHROMIUM)");
    }

    /// <summary>Runs headless Chromium once, in a fresh profile, for at most 90 s; kills it on timeout.</summary>
    private async Task<(int ExitCode, string Stdout, string Stderr)> RunChromiumAsync(params string[] args)
    {
        string profile = Path.Combine(Path.GetTempPath(), "otun-chromium-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(profile);
        var start = new ProcessStartInfo(Chromium())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
        {
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
            "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
            $"--user-data-dir={profile}",
        }.Concat(args))
        {
            start.ArgumentList.Add(arg);
        }
        using var chromium = Process.Start(start)!;
        try
        {
            var stdout = chromium.StandardOutput.ReadToEndAsync();
            var stderr = chromium.StandardError.ReadToEndAsync();
            try
            {
                await chromium.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(90));
            }
            catch (TimeoutException)
            {
                throw new TimeoutException($"Chromium did not finish within 90 s: {string.Join(' ', args)}");
            }
            var result = (chromium.ExitCode, await stdout.WaitAsync(TimeSpan.FromSeconds(10)), await stderr.WaitAsync(TimeSpan.FromSeconds(10)));
            output.WriteLine($"chromium {string.Join(' ', args)}: exit {result.ExitCode}, {result.Item2.Length} characters of output");
            return result;
        }
        finally
        {
            if (!chromium.HasExited)
            {
                chromium.Kill(entireProcessTree: true);
                await chromium.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }
            try
            {
                Directory.Delete(profile, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
