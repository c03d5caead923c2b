using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OrleansTunnel.Cli;
using OrleansTunnel.Gateway.Auth;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Resilience;

/// <summary>
/// A real Kestrel backend for the resilience tests: /health answers 200 or 503 as the test sets it;
/// anything else answers 200 with "ok METHOD PATH SHA256(body)" after an optional ?delay=MS; POSTs are counted.
/// </summary>
public sealed class ResilienceBackend : IAsyncDisposable
{
    private readonly WebApplication _app;
    private long _posts;
    private long _healthProbes;

    public volatile bool Healthy = true;

    public int Port { get; }

    public string Url => $"http://127.0.0.1:{Port}";

    public long Posts => Interlocked.Read(ref _posts);

    public long HealthProbes => Interlocked.Read(ref _healthProbes);

    private ResilienceBackend(int port)
    {
        Port = port;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls(Url);
        _app = builder.Build();
        _app.Run(async context =>
        {
            if (context.Request.Path == "/health")
            {
                Interlocked.Increment(ref _healthProbes);
                context.Response.StatusCode = Healthy ? 200 : 503;
                await context.Response.WriteAsync(Healthy ? "healthy" : "unhealthy");
                return;
            }
            if (HttpMethods.IsPost(context.Request.Method))
            {
                Interlocked.Increment(ref _posts);
            }
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            if (int.TryParse(context.Request.Query["delay"], out int delay))
            {
                await Task.Delay(delay);
            }
            // A length-delimited answer, as most small answers are: the agent sends its head and body in one
            // message, so an agent killed mid-request leaves the gateway all of the answer or none of it. (A
            // chunked answer whose end is lost after its head reached the visitor cannot be retried by any proxy.)
            var answer = System.Text.Encoding.UTF8.GetBytes(Expected(context.Request.Method, context.Request.Path, body.ToArray()));
            context.Response.ContentLength = answer.Length;
            await context.Response.Body.WriteAsync(answer);
        });
    }

    public static string Expected(string method, string path, byte[] body) => $"ok {method} {path} {Hashing.Sha256(body)}";

    /// <param name="port">A port to listen on (e.g. one that refused connections so far); 0: a free one.</param>
    public static async Task<ResilienceBackend> StartAsync(int port = 0)
    {
        var backend = new ResilienceBackend(port == 0 ? Ports.Free() : port);
        await backend._app.StartAsync();
        return backend;
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}

/// <summary>
/// One gateway (with its silo) and two in-process agents: res-a serves half, post and dead from a port
/// that refuses connections; res-b serves half and post from a working backend, and flap from a backend
/// whose /health the tests switch (probed every 300 ms, 2 failures / 2 successes). Circuits open after
/// 3 failures in a row and cool down for 3 s. nort and low are served like half (res-a refusing, res-b
/// working) for the per-route Resilience tests: nort.test's route has Retry false. For the cluster-wide
/// circuit tests: cwide is served by res-a from <see cref="SwitchPort"/> (refusing until a test starts a
/// backend there) and by res-b from the working backend (cool-down 10 s on its route); cboth by both from
/// the refusing port (cool-down 5 min, so it stays open while a test looks).
/// </summary>
public sealed class ResilienceHarness : IAsyncLifetime
{
    public const string TokenA = "res-a-token-0123456789", TokenB = "res-b-token-0123456789", TokenKillA = "kill-a-token-0123456789", TokenKillB = "kill-b-token-0123456789";

    public TunnelHarness Harness { get; private set; } = null!;

    public ResilienceBackend Backend { get; private set; } = null!;

    public ResilienceBackend Flapping { get; private set; } = null!;

    public IHost AgentA { get; private set; } = null!;

    public IHost AgentB { get; private set; } = null!;

    public int RefusedPort { get; } = Ports.Closed();

    /// <summary>res-a's backend for cwide: nothing listens until a test starts one here.</summary>
    public int SwitchPort { get; } = Ports.Closed();

    public async Task InitializeAsync()
    {
        Backend = await ResilienceBackend.StartAsync();
        Flapping = await ResilienceBackend.StartAsync();
        Harness = await TunnelHarness.StartAsync(o =>
        {
            void Agent(int i, string id, string token, params string[] services)
            {
                o.Gateway[$"Gateway:Agents:{i}:Id"] = id;
                o.Gateway[$"Gateway:Agents:{i}:TokenSha256"] = AgentCredentialStore.Hash(token);
                for (int s = 0; s < services.Length; s++)
                {
                    o.Gateway[$"Gateway:Agents:{i}:Services:{s}"] = services[s];
                }
            }
            Agent(2, "res-a", TokenA, "half", "post", "dead", "nort", "low", "cwide", "cboth");
            Agent(3, "res-b", TokenB, "half", "post", "flap", "nort", "low", "cwide", "cboth");
            Agent(4, "kill-a", TokenKillA, "kill");
            Agent(5, "kill-b", TokenKillB, "kill");
            string[] services = ["half", "post", "dead", "flap", "kill", "nort", "cwide", "cboth"];
            for (int r = 0; r < services.Length; r++)
            {
                o.Gateway[$"Gateway:Routes:{10 + r}:Host"] = services[r] + ".test";
                o.Gateway[$"Gateway:Routes:{10 + r}:Service"] = services[r];
            }
            // "nort.test" turns retries off for its route (per-route Resilience); "low.test" is set by a test through the CLI.
            o.Gateway["Gateway:Routes:15:Resilience:Retry"] = "false";
            o.Gateway["Gateway:Routes:16:Resilience:CircuitCooldown"] = "00:00:10";
            o.Gateway["Gateway:Routes:17:Resilience:CircuitCooldown"] = "00:05:00";
            o.Gateway["Resilience:CircuitFailures"] = "3";
            o.Gateway["Resilience:CircuitCooldown"] = "00:00:03";
            o.Gateway["Gateway:ClusterHeartbeatInterval"] = "00:00:01";
        });
        AgentA = await StartAgentAsync("res-a", TokenA, ("half", $"http://127.0.0.1:{RefusedPort}", null), ("post", $"http://127.0.0.1:{RefusedPort}", null), ("dead", $"http://127.0.0.1:{RefusedPort}", null),
            ("nort", $"http://127.0.0.1:{RefusedPort}", null), ("low", $"http://127.0.0.1:{RefusedPort}", null),
            ("cwide", $"http://127.0.0.1:{SwitchPort}", null), ("cboth", $"http://127.0.0.1:{RefusedPort}", null));
        AgentB = await StartAgentAsync("res-b", TokenB, ("half", Backend.Url, null), ("post", Backend.Url, null), ("flap", Flapping.Url, "/health"),
            ("nort", Backend.Url, null), ("low", Backend.Url, null),
            ("cwide", Backend.Url, null), ("cboth", $"http://127.0.0.1:{RefusedPort}", null));
        var registry = Harness.Gateway.Services.GetRequiredService<Gateway.Tunnel.ConnectionRegistry>();
        await Eventually.TrueAsync(() => registry.All.Count(c => c.Serves("half")) == 2, TimeSpan.FromSeconds(30), "the gateway never held both agents' sessions for 'half'");
    }

    private async Task<IHost> StartAgentAsync(string id, string token, params (string Name, string Url, string? Health)[] services)
    {
        var config = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["Agent:AgentId"] = id,
            ["Agent:Token"] = token,
            ["Agent:Gateways:0"] = Harness.TunnelUrl,
            ["Agent:ReconnectMinDelay"] = "00:00:00.100",
            ["Agent:ReconnectMaxDelay"] = "00:00:01",
            ["Agent:Connections"] = "1",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        for (int i = 0; i < services.Length; i++)
        {
            config[$"Agent:Services:{i}:Name"] = services[i].Name;
            config[$"Agent:Services:{i}:Url"] = services[i].Url;
            if (services[i].Health is { } path)
            {
                config[$"Agent:Services:{i}:HealthPath"] = path;
                config[$"Agent:Services:{i}:HealthInterval"] = "00:00:00.300";
                config[$"Agent:Services:{i}:HealthTimeout"] = "00:00:00.300";
            }
        }
        var agent = Roles.BuildAgent(config);
        await agent.StartAsync();
        return agent;
    }

    public async Task DisposeAsync()
    {
        foreach (var agent in new[] { AgentA, AgentB })
        {
            if (agent is not null)
            {
                await agent.StopAsync(TimeSpan.FromSeconds(5).ToCancellationToken());
                agent.Dispose();
            }
        }
        await Harness.DisposeAsync();
        await Backend.DisposeAsync();
        await Flapping.DisposeAsync();
    }
}

/// <summary>`otun agent` as a separate process (so a test can kill -9 it).</summary>
public sealed class AgentProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<string> _output = [];

    public AgentProcess(string agentId, string token, string gateway, string backendUrl, string service, int connections)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[]
        {
            Path.Combine(AppContext.BaseDirectory, "otun.dll"), "agent", "--agent-id", agentId, "--gateway", gateway,
            "--expose", backendUrl, "--service", service, "--connections", connections.ToString(),
            "--set", "Agent:ReconnectMinDelay=00:00:00.100", "--set", "Agent:ReconnectMaxDelay=00:00:01",
        })
        {
            start.ArgumentList.Add(arg);
        }
        // The token goes through the environment, as the README recommends.
        start.Environment["OTUN_Agent__Token"] = token;
        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                _ready.TrySetException(new InvalidOperationException("otun agent exited before it was ready:\n" + Output));
                return;
            }
            lock (_output)
            {
                _output.Add(e.Data);
            }
            if (e.Data.StartsWith("otun agent: ready", StringComparison.Ordinal))
            {
                _ready.TrySetResult();
            }
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_output)
                {
                    _output.Add(e.Data);
                }
            }
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return string.Join("\n", _output);
            }
        }
    }

    public Task Ready => _ready.Task;

    /// <summary>SIGKILL: no go-away, no drain; the kernel closes its sockets.</summary>
    public void Kill() => _process.Kill();

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
