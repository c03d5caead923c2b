using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Gateway.Tunnel;

namespace OrleansTunnel.Gateway.Auth;

/// <summary>
/// Re-checks every live agent session when credentials change (a runtime change pushed by the
/// cluster, or the gateway's configuration): a session whose token no longer authenticates it, or
/// no longer allows one of its services, is closed at once.
/// </summary>
public sealed partial class CredentialRevoker(
    RoutingCache routing,
    ConnectionRegistry registry,
    AgentCredentialStore credentials,
    IOptionsMonitor<GatewayOptions> options,
    ILogger<CredentialRevoker> logger) : IHostedService
{
    private IDisposable? _optionsChange;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        routing.Changed += _ => Recheck();
        _optionsChange = options.OnChange(_ => Recheck());
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _optionsChange?.Dispose();
        return Task.CompletedTask;
    }

    /// <summary>Closes the sessions whose credential was revoked or narrowed.</summary>
    public void Recheck()
    {
        foreach (var connection in registry.All)
        {
            var check = credentials.CheckHash(connection.AgentId, connection.TokenHash);
            string? reason = !check.Ok
                ? "its credential was revoked or replaced"
                : connection.Session.Services.FirstOrDefault(s => !check.AllowsService(s)) is { } lost
                    ? $"its credential no longer allows service '{lost}'"
                    : null;
            if (reason is not null)
            {
                LogRevoked(logger, connection.AgentId, connection.Session.SessionId, reason);
                _ = connection.Mux.CloseWithErrorAsync("unauthenticated", $"session closed: {reason}");
            }
        }
    }

    [LoggerMessage(EventId = 410, EventName = "SessionRevoked", Level = LogLevel.Warning,
        Message = "Closed agent '{AgentId}' session {SessionId}: {Reason}.")]
    private static partial void LogRevoked(ILogger logger, string agentId, string sessionId, string reason);
}
