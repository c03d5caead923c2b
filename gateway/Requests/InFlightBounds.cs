using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace OrleansTunnel.Gateway.Requests;

/// <summary>
/// The gateway's own in-flight counts, shared by HTTP requests (IngressForwarder) and TCP connections and
/// UDP flows (L4Gate), so that Gateway:MaxInFlight, MaxInFlightPerAgent, MaxInFlightPerService and
/// MaxTunnelBufferBytes bound them together: a long-lived TCP connection holds one slot like a request.
/// </summary>
public sealed class InFlightBounds
{
    /// <summary>Everything in flight on this gateway (incremented and decremented with Interlocked).</summary>
    internal long Total;

    // Per agent and per service on this gateway; entries stay (bounded by the credentials and services served here).
    internal readonly ConcurrentDictionary<string, StrongBox<long>> ByAgent = new(StringComparer.Ordinal);
    internal readonly ConcurrentDictionary<string, StrongBox<long>> ByService = new(StringComparer.Ordinal);

    /// <summary>Requests, TCP connections and UDP flows in flight on this gateway now.</summary>
    public long InFlight => Interlocked.Read(ref Total);

    /// <summary>
    /// Takes a slot for one TCP connection or UDP flow of <paramref name="service"/> on agent <paramref name="agentId"/>;
    /// the slot is held (release it with <see cref="Exit"/>) even when a bound is exceeded: then Limit and Refusal say which.
    /// </summary>
    public (Slot Slot, string? Limit, string? Refusal) Enter(string agentId, string service, GatewayOptions o, string unit)
    {
        var slot = new Slot(ByAgent.GetOrAdd(agentId, static _ => new StrongBox<long>()), ByService.GetOrAdd(service, static _ => new StrongBox<long>()));
        long total = Interlocked.Increment(ref Total);
        long agent = Interlocked.Increment(ref slot.Agent.Value);
        long perService = Interlocked.Increment(ref slot.Service.Value);
        if (total > o.MaxInFlight)
        {
            return (slot, Telemetry.GatewayTelemetry.Limits.GatewayInFlight, $"the gateway is at its limit of {o.MaxInFlight} in-flight requests and {unit} (Gateway:MaxInFlight)");
        }
        if (agent > o.EffectiveMaxInFlightPerAgent)
        {
            return (slot, Telemetry.GatewayTelemetry.Limits.AgentOnGateway, $"agent '{agentId}' is at this gateway's limit of {o.EffectiveMaxInFlightPerAgent} in-flight requests and {unit} per agent (Gateway:MaxInFlightPerAgent)");
        }
        if (perService > o.EffectiveMaxInFlightPerService)
        {
            return (slot, Telemetry.GatewayTelemetry.Limits.ServiceOnGateway, $"service '{service}' is at this gateway's limit of {o.EffectiveMaxInFlightPerService} in-flight requests and {unit} per service (Gateway:MaxInFlightPerService)");
        }
        if (total * o.ReceiveWindow > o.MaxTunnelBufferBytes)
        {
            return (slot, Telemetry.GatewayTelemetry.Limits.GatewayBuffer, $"the gateway is at its tunnel buffer limit of {o.MaxTunnelBufferBytes} bytes (Gateway:MaxTunnelBufferBytes)");
        }
        return (slot, null, null);
    }

    /// <summary>Gives back a slot taken by <see cref="Enter"/> (once).</summary>
    public void Exit(Slot slot)
    {
        Interlocked.Decrement(ref slot.Agent.Value);
        Interlocked.Decrement(ref slot.Service.Value);
        Interlocked.Decrement(ref Total);
    }

    /// <summary>The per-agent and per-service counters one slot holds.</summary>
    public readonly record struct Slot(StrongBox<long> Agent, StrongBox<long> Service);
}
