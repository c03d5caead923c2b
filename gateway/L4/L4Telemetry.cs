using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using OrleansTunnel.Gateway.Telemetry;

namespace OrleansTunnel.Gateway.L4;

/// <summary>Counters of one TCP or UDP service on this gateway (also read by tests and the admin API).</summary>
public sealed class L4ServiceStats
{
    public long Connections;
    public long Refused;
    public long BytesIn;
    public long BytesOut;
    public long DatagramsIn;
    public long DatagramsOut;
    public long DatagramsDropped;
    public long Active;
}

/// <summary>
/// Metrics of TCP and UDP services, on the gateway's meter (<see cref="GatewayTelemetry.MeterName"/>):
/// connections (and flows) by outcome, bytes each way, datagrams sent and dropped, durations.
/// </summary>
public sealed class L4Telemetry
{
    private readonly Counter<long> _connections;
    private readonly Counter<long> _bytes;
    private readonly Counter<long> _datagrams;
    private readonly Histogram<double> _duration;
    private readonly ConcurrentDictionary<(string Protocol, string Service), L4ServiceStats> _stats = new();

    public L4Telemetry(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(new MeterOptions(GatewayTelemetry.MeterName) { Version = typeof(GatewayTelemetry).Assembly.GetName().Version?.ToString() });
        _connections = meter.CreateCounter<long>("otun.gateway.l4.connections", description: "TCP connections and UDP flows of TCP/UDP services, by service, protocol and outcome (ok, refused, failed, idle).");
        _bytes = meter.CreateCounter<long>("otun.gateway.l4.io", unit: "By", description: "Bytes relayed by TCP/UDP services: direction=in from visitors, direction=out to visitors.");
        _datagrams = meter.CreateCounter<long>("otun.gateway.l4.datagrams", description: "UDP datagrams by service, direction (in, out) and result (sent, dropped).");
        _duration = meter.CreateHistogram<double>("otun.gateway.l4.duration", unit: "s", description: "Duration of TCP connections and UDP flows, by service and protocol.");
        meter.CreateObservableUpDownCounter("otun.gateway.l4.active", () => _stats.Select(kv => new Measurement<long>(Volatile.Read(ref kv.Value.Active),
            new KeyValuePair<string, object?>("service", kv.Key.Service), new KeyValuePair<string, object?>("protocol", kv.Key.Protocol))),
            description: "TCP connections and UDP flows open now, by service and protocol.");
    }

    /// <summary>The counters of one service (created on first use).</summary>
    public L4ServiceStats Stats(string protocol, string service) => _stats.GetOrAdd((protocol, service), _ => new L4ServiceStats());

    /// <summary>Every service's counters.</summary>
    public IReadOnlyDictionary<(string Protocol, string Service), L4ServiceStats> All => _stats;

    public void Opened(string protocol, string service)
    {
        var s = Stats(protocol, service);
        Interlocked.Increment(ref s.Connections);
        Interlocked.Increment(ref s.Active);
    }

    public void Refused(string protocol, string service)
    {
        Interlocked.Increment(ref Stats(protocol, service).Refused);
        _connections.Add(1, Tag("service", service), Tag("protocol", protocol), Tag("outcome", "refused"));
    }

    public void Closed(string protocol, string service, string outcome, long startedTicks, long bytesIn, long bytesOut)
    {
        var s = Stats(protocol, service);
        Interlocked.Decrement(ref s.Active);
        Interlocked.Add(ref s.BytesIn, bytesIn);
        Interlocked.Add(ref s.BytesOut, bytesOut);
        _connections.Add(1, Tag("service", service), Tag("protocol", protocol), Tag("outcome", outcome));
        _bytes.Add(bytesIn, Tag("service", service), Tag("protocol", protocol), Tag("direction", "in"));
        _bytes.Add(bytesOut, Tag("service", service), Tag("protocol", protocol), Tag("direction", "out"));
        _duration.Record(Stopwatch.GetElapsedTime(startedTicks).TotalSeconds, Tag("service", service), Tag("protocol", protocol));
    }

    public void Datagram(string service, bool inbound, bool dropped)
    {
        var s = Stats("udp", service);
        Interlocked.Increment(ref dropped ? ref s.DatagramsDropped : ref inbound ? ref s.DatagramsIn : ref s.DatagramsOut);
        _datagrams.Add(1, Tag("service", service), Tag("direction", inbound ? "in" : "out"), Tag("result", dropped ? "dropped" : "sent"));
    }

    private static KeyValuePair<string, object?> Tag(string key, object? value) => new(key, value);
}
