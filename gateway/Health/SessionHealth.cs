using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.Health;

/// <summary>
/// The health of one agent session's services as the agent last reported it (health frames). A service
/// the agent never reported is healthy. Replaced whole on each report: reads are lock-free.
/// </summary>
public sealed class SessionHealth
{
    /// <summary>One service's reported state.</summary>
    public sealed record State(bool Healthy, string Detail, DateTimeOffset Since);

    private volatile Dictionary<string, State> _states = new(StringComparer.Ordinal);

    /// <summary>True unless the agent reported the service unhealthy.</summary>
    public bool IsHealthy(string service) => !_states.TryGetValue(service, out var s) || s.Healthy;

    /// <summary>Every reported service and its state.</summary>
    public IReadOnlyDictionary<string, State> States => _states;

    /// <summary>The services reported unhealthy, sorted (for the directory report).</summary>
    public string[] Unhealthy => [.. _states.Where(kv => !kv.Value.Healthy).Select(kv => kv.Key).Order(StringComparer.Ordinal)];

    /// <summary>Applies a report; returns the services whose healthy/unhealthy state changed (empty: none).</summary>
    public List<string> Apply(HealthReport report, Func<string, bool> serves)
    {
        var previous = _states;
        var next = new Dictionary<string, State>(StringComparer.Ordinal);
        var changed = new List<string>();
        var now = DateTimeOffset.UtcNow;
        foreach (var s in report.Services)
        {
            // Only services this session offered: an agent cannot describe what it does not serve.
            if (!serves(s.Name))
            {
                continue;
            }
            string detail = s.Detail.Length > 200 ? s.Detail[..200] : s.Detail;
            if (previous.TryGetValue(s.Name, out var was) && was.Healthy == s.Healthy)
            {
                next[s.Name] = was with { Detail = detail };
            }
            else
            {
                if (previous.ContainsKey(s.Name) || !s.Healthy)
                {
                    changed.Add(s.Name);
                }
                next[s.Name] = new State(s.Healthy, detail, now);
            }
        }
        foreach (var (name, was) in previous)
        {
            // A service no longer reported is healthy again.
            if (!next.ContainsKey(name) && !was.Healthy)
            {
                changed.Add(name);
            }
        }
        _states = next;
        return changed;
    }
}
