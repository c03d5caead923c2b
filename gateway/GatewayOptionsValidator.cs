using Microsoft.Extensions.Options;

namespace OrleansTunnel.Gateway;

/// <summary>Checks gateway settings at start and lists every problem with its fix.</summary>
public sealed class GatewayOptionsValidator : IValidateOptions<GatewayOptions>
{
    public ValidateOptionsResult Validate(string? name, GatewayOptions o)
    {
        var failures = new List<string>();
        foreach (var (key, url) in new[] { ("Ingress", o.Ingress), ("Tunnel", o.Tunnel), ("Admin", o.Admin) })
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out _))
            {
                failures.Add($"Gateway:{key} '{url}' is not an absolute URL; set it like http://127.0.0.1:8080");
            }
        }
        if (o.ResponseTimeout <= TimeSpan.Zero)
        {
            failures.Add("Gateway:ResponseTimeout must be positive (e.g. 00:01:40)");
        }
        if (o.HeartbeatInterval < TimeSpan.FromMilliseconds(100))
        {
            failures.Add("Gateway:HeartbeatInterval must be at least 100 ms (e.g. 00:00:10)");
        }
        if (o.ReceiveWindow is < 1024 or > 64 * 1024 * 1024)
        {
            failures.Add($"Gateway:ReceiveWindow {o.ReceiveWindow} must be between 1024 and 67108864 bytes");
        }
        if (o.MaxDataFrame is < 1024 or > 65536)
        {
            failures.Add($"Gateway:MaxDataFrame {o.MaxDataFrame} must be between 1024 and 65536 bytes");
        }
        if (o.MaxBatchBytes < o.MaxDataFrame)
        {
            failures.Add("Gateway:MaxBatchBytes must be at least Gateway:MaxDataFrame");
        }
        if (o.MaxTunnelMessageSize < o.MaxBatchBytes + 65536)
        {
            failures.Add("Gateway:MaxTunnelMessageSize must exceed Gateway:MaxBatchBytes by at least 65536");
        }
        if (o.PermitBatchSize < 1)
        {
            failures.Add("Gateway:PermitBatchSize must be at least 1");
        }
        if (o.PermitRenewInterval <= TimeSpan.Zero || o.PermitIdleReturn < TimeSpan.Zero)
        {
            failures.Add("Gateway:PermitRenewInterval must be positive and Gateway:PermitIdleReturn not negative");
        }
        if (o.QueueTimeout < TimeSpan.Zero || o.MaxQueuedPerAgent < 0)
        {
            failures.Add("Gateway:QueueTimeout and Gateway:MaxQueuedPerAgent may not be negative");
        }
        if (o.MaxInFlight < 1 || o.MaxTunnelBufferBytes < o.ReceiveWindow)
        {
            failures.Add("Gateway:MaxInFlight must be at least 1 and Gateway:MaxTunnelBufferBytes at least Gateway:ReceiveWindow");
        }
        for (int i = 0; i < o.Agents.Count; i++)
        {
            var a = o.Agents[i];
            if (string.IsNullOrWhiteSpace(a.Id))
            {
                failures.Add($"Gateway:Agents:{i}:Id is empty; give the agent id the token belongs to");
            }
            if (a.TokenSha256.Length != 64 || !a.TokenSha256.All(Uri.IsHexDigit))
            {
                failures.Add($"Gateway:Agents:{i}:TokenSha256 must be 64 hex digits (the SHA-256 of the token; 'otun hash-token' prints it)");
            }
            if (a.Services.Count == 0)
            {
                failures.Add($"Gateway:Agents:{i}:Services is empty; list the services agent '{a.Id}' may serve (or \"*\")");
            }
        }
        for (int i = 0; i < o.Routes.Count; i++)
        {
            var r = o.Routes[i];
            if (string.IsNullOrWhiteSpace(r.Host) || string.IsNullOrWhiteSpace(r.Service))
            {
                failures.Add($"Gateway:Routes:{i} needs both Host and Service");
            }
            else if (r.Host.Contains('*') && !(r.Host.StartsWith("*.", StringComparison.Ordinal) && r.Host.LastIndexOf('*') == 0))
            {
                failures.Add($"Gateway:Routes:{i}:Host '{r.Host}': a wildcard is only allowed as the first label (*.example.com)");
            }
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
