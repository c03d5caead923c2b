using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OrleansTunnel.Agent.Telemetry;

namespace OrleansTunnel.Agent;

/// <summary>Hosting of the agent role (it never listens on a port).</summary>
public static class AgentHosting
{
    public static IHostApplicationBuilder AddTunnelAgent(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<AgentOptions>().Bind(builder.Configuration.GetSection(AgentOptions.Section)).ValidateOnStart();
        // A list default would be appended to by configuration binding, so it is applied afterwards.
        builder.Services.PostConfigure<AgentOptions>(o =>
        {
            if (o.Gateways.Count == 0)
            {
                o.Gateways.Add(AgentOptions.DefaultGateway);
            }
        });
        builder.Services.AddSingleton<IValidateOptions<AgentOptions>, AgentOptionsValidator>();
        builder.Services.AddSingleton<AgentStatus>();
        builder.AddAgentTelemetry();
        builder.Services.AddSingleton<L4.L4Forwarder>();
        builder.Services.AddSingleton<BackendForwarder>();
        builder.Services.AddSingleton<OrleansTunnel.Agent.Health.HealthProber>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<OrleansTunnel.Agent.Health.HealthProber>());
        builder.Services.AddHostedService<AgentWorker>();
        // Stopping waits for in-flight requests (Agent:ShutdownGracePeriod) plus a margin to close the tunnels.
        var grace = builder.Configuration.GetSection(AgentOptions.Section).Get<AgentOptions>()?.ShutdownGracePeriod ?? new AgentOptions().ShutdownGracePeriod;
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = grace + TimeSpan.FromSeconds(5));
        return builder;
    }
}

/// <summary>Checks agent settings at start and lists every problem with its fix (never echoing the token).</summary>
public sealed class AgentOptionsValidator : IValidateOptions<AgentOptions>
{
    public ValidateOptionsResult Validate(string? name, AgentOptions o)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(o.AgentId))
        {
            failures.Add("Agent:AgentId is empty; set --agent-id or OTUN_Agent__AgentId");
        }
        if (string.IsNullOrEmpty(o.Token))
        {
            failures.Add("Agent:Token is empty; set --token or OTUN_Agent__Token (the gateway holds its SHA-256)");
        }
        if (o.Gateways.Count == 0)
        {
            failures.Add("Agent:Gateways is empty; give at least one tunnel endpoint like http://gateway:7070");
        }
        foreach (var g in o.Gateways)
        {
            if (!Uri.TryCreate(g, UriKind.Absolute, out var u) || (u.Scheme != "http" && u.Scheme != "https"))
            {
                failures.Add($"Agent:Gateways entry '{g}' is not an http:// or https:// URL");
            }
            else if (u.Scheme == "http" && !u.IsLoopback && !o.AllowCleartext)
            {
                failures.Add($"Agent:Gateways entry '{g}' is cleartext to a host other than loopback: the token and all traffic would cross the network unencrypted. Use https:// (the gateway's Gateway:TunnelCertificatePath) or set Agent:AllowCleartext=true");
            }
        }
        if (o.Services.Count == 0)
        {
            failures.Add("Agent:Services is empty; expose at least one (--expose URL --service NAME)");
        }
        foreach (var s in o.Services)
        {
            if (string.IsNullOrWhiteSpace(s.Name))
            {
                failures.Add($"Agent:Services entry for '{s.Url}' has no Name");
            }
            if (!string.IsNullOrEmpty(s.CaFile) && !File.Exists(s.CaFile))
            {
                failures.Add($"Agent:Services '{s.Name}': CaFile '{s.CaFile}' does not exist");
            }
            if (!string.IsNullOrEmpty(s.HealthPath) && !s.HealthPath.StartsWith('/'))
            {
                failures.Add($"Agent:Services '{s.Name}': HealthPath '{s.HealthPath}' must start with '/' (e.g. /healthz)");
            }
            if (!string.IsNullOrEmpty(s.HealthPath) && (s.HealthInterval <= TimeSpan.Zero || s.HealthTimeout <= TimeSpan.Zero || s.HealthTimeout > s.HealthInterval))
            {
                failures.Add($"Agent:Services '{s.Name}': HealthInterval and HealthTimeout must be positive and HealthTimeout at most HealthInterval (e.g. 00:00:05 and 00:00:02)");
            }
            if (!string.IsNullOrEmpty(s.HealthPath) && (s.HealthyThreshold is < 1 or > 100 || s.UnhealthyThreshold is < 1 or > 100))
            {
                failures.Add($"Agent:Services '{s.Name}': HealthyThreshold and UnhealthyThreshold must be between 1 and 100");
            }
            try
            {
                BackendForwarder.ParseBackendUrl(s.Url);
            }
            catch (ArgumentException ex)
            {
                failures.Add($"Agent:Services '{s.Name}': {ex.Message}");
            }
        }
        if (o.ReceiveWindow is < 1024 or > 64 * 1024 * 1024)
        {
            failures.Add($"Agent:ReceiveWindow {o.ReceiveWindow} must be between 1024 and 67108864 bytes");
        }
        if (o.MaxStreamQueuedBytes is < 0 or > 64 * 1024 * 1024)
        {
            failures.Add($"Agent:MaxStreamQueuedBytes {o.MaxStreamQueuedBytes} must be between 0 (one frame at a time) and 67108864 bytes");
        }
        if (o.MaxDataFrame is < 1024 or > 65536)
        {
            failures.Add($"Agent:MaxDataFrame {o.MaxDataFrame} must be between 1024 and 65536 bytes");
        }
        if (o.ResponseBufferSize < 1024)
        {
            failures.Add("Agent:ResponseBufferSize must be at least 1024 bytes");
        }
        if (o.ResponseInitialBufferSize < 256 || o.ResponseInitialBufferSize > o.ResponseBufferSize)
        {
            failures.Add($"Agent:ResponseInitialBufferSize {o.ResponseInitialBufferSize} must be between 256 bytes and Agent:ResponseBufferSize ({o.ResponseBufferSize})");
        }
        if (o.ReconnectMinDelay <= TimeSpan.Zero || o.ReconnectMaxDelay < o.ReconnectMinDelay)
        {
            failures.Add("Agent:ReconnectMinDelay must be positive and at most Agent:ReconnectMaxDelay");
        }
        if (o.ShutdownGracePeriod < TimeSpan.Zero)
        {
            failures.Add($"Agent:ShutdownGracePeriod must not be negative, not {o.ShutdownGracePeriod} (e.g. 00:00:30)");
        }
        if (o.GoAwayQuietPeriod < TimeSpan.Zero || o.GoAwayQuietPeriod > TimeSpan.FromMinutes(1))
        {
            failures.Add($"Agent:GoAwayQuietPeriod must be from 00:00:00 to 00:01:00, not {o.GoAwayQuietPeriod} (e.g. 00:00:01)");
        }
        if (o.Connections is < 1 or > 16)
        {
            failures.Add($"Agent:Connections {o.Connections} must be between 1 and 16");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
