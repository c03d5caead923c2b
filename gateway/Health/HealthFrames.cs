using Microsoft.Extensions.Logging;
using OrleansTunnel.Gateway.Tunnel;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.Health;

/// <summary>Applies an agent's health frame to its connection and tells the directory when something changed.</summary>
public static partial class HealthFrames
{
    public static void Apply(AgentConnection connection, HealthReport report, ConnectionRegistry registry, ILoggerFactory loggers)
    {
        var changed = connection.Health.Apply(report, connection.Serves);
        if (changed.Count == 0)
        {
            return;
        }
        var logger = loggers.CreateLogger(typeof(HealthFrames).FullName!);
        foreach (var name in changed)
        {
            if (connection.Health.IsHealthy(name))
            {
                LogHealthy(logger, connection.AgentId, name, connection.Session.SessionId);
            }
            else
            {
                LogUnhealthy(logger, connection.AgentId, name, connection.Session.SessionId, connection.Health.States.GetValueOrDefault(name)?.Detail ?? "");
            }
        }
        // The cluster presence reports the session's unhealthy services at once: every gateway's routing follows.
        registry.NotifyChanged();
    }

    [LoggerMessage(EventId = 640, EventName = "AgentServiceUnhealthy", Level = LogLevel.Warning,
        Message = "Agent '{AgentId}' reports service '{Service}' unhealthy on session {SessionId} ({Detail}); no new request goes there until it reports it healthy. Check the backend behind that agent.")]
    private static partial void LogUnhealthy(ILogger logger, string agentId, string service, string sessionId, string detail);

    [LoggerMessage(EventId = 641, EventName = "AgentServiceHealthy", Level = LogLevel.Information,
        Message = "Agent '{AgentId}' reports service '{Service}' healthy on session {SessionId}.")]
    private static partial void LogHealthy(ILogger logger, string agentId, string service, string sessionId);
}
