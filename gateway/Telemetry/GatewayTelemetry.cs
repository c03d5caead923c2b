using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Gateway.Tunnel;

namespace OrleansTunnel.Gateway.Telemetry;

/// <summary>
/// The gateway's metrics (meter <see cref="MeterName"/>) and request spans (activity source
/// <see cref="ActivitySourceName"/>). Instruments cost next to nothing while nobody listens, and a
/// span is only made when a listener wants it.
/// </summary>
public sealed class GatewayTelemetry
{
    public const string MeterName = "OrleansTunnel.Gateway";
    public const string ActivitySourceName = "OrleansTunnel.Gateway";

    /// <summary>Rejection reasons (tag "limit" of otun.gateway.rejections).</summary>
    public static class Limits
    {
        public const string Agent = "agent";
        public const string Service = "service";
        public const string GatewayInFlight = "gateway_inflight";
        public const string GatewayBuffer = "gateway_buffer";
        public const string AgentOnGateway = "agent_on_gateway";
        public const string ServiceOnGateway = "service_on_gateway";
        public const string NoAgent = "no_agent";
    }

    /// <summary>Bucket bounds (seconds) of the request duration: fine below 100 ms for P50, wide enough for P99 of slow calls.</summary>
    public static readonly double[] DurationBuckets =
        [0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 120];

    public static readonly ActivitySource Source = new(ActivitySourceName, typeof(GatewayTelemetry).Assembly.GetName().Version?.ToString());

    private static readonly string[] StatusNames = [.. Enumerable.Range(0, 600).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))];

    private readonly Counter<long> _requests;
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _io;
    private readonly Counter<long> _rejections;
    private readonly Counter<long> _permitsLeased;
    private readonly Counter<long> _connects;
    private readonly Counter<long> _refusals;

    public GatewayTelemetry(IMeterFactory meterFactory, IServiceProvider services)
    {
        var meter = meterFactory.Create(new MeterOptions(MeterName) { Version = typeof(GatewayTelemetry).Assembly.GetName().Version?.ToString() });
        _requests = meter.CreateCounter<long>("otun.gateway.requests", description: "Requests forwarded or refused after a route matched, by service, protocol and status (HTTP status; grpc-status for gRPC when the answer carried one).");
        _duration = meter.CreateHistogram("otun.gateway.request.duration", unit: "s",
            description: "Time from route match until the visitor had the whole answer.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        _io = meter.CreateCounter<long>("otun.gateway.io", unit: "By", description: "Body bytes relayed: direction=in from visitors, direction=out to visitors.");
        _rejections = meter.CreateCounter<long>("otun.gateway.rejections", description: "Requests refused with 503 by a limit or for lack of an agent, by limit.");
        _permitsLeased = meter.CreateCounter<long>("otun.gateway.permits.leased", description: "Permits granted to this gateway by agents' backpressure grains.");
        _connects = meter.CreateCounter<long>("otun.gateway.agent.connects", description: "Agent tunnel sessions accepted (first connects and reconnects).");
        _refusals = meter.CreateCounter<long>("otun.gateway.refusals", description: "Visitor requests refused with a 4xx before any agent saw them because they broke a rule, by rule.");

        // Observed values are read from the live components at collection time (resolved lazily: they depend on this class).
        var forwarder = new Lazy<IngressForwarder>(services.GetRequiredService<IngressForwarder>);
        var registry = new Lazy<ConnectionRegistry>(services.GetRequiredService<ConnectionRegistry>);
        var permits = new Lazy<PermitPool>(services.GetRequiredService<PermitPool>);
        meter.CreateObservableUpDownCounter("otun.gateway.requests.in_flight", () => forwarder.Value.InFlight,
            description: "Requests this gateway is forwarding now.");
        meter.CreateObservableUpDownCounter("otun.gateway.agent.connections", () => registry.Value.Count,
            description: "Agent tunnel connections held by this gateway now.");
        meter.CreateObservableUpDownCounter("otun.gateway.permits.in_use", () => permits.Value.InUse,
            description: "Agent permits held by requests on this gateway now.");
        meter.CreateObservableUpDownCounter("otun.gateway.permits.available", () => permits.Value.Available,
            description: "Agent permits leased by this gateway but idle now.");
        meter.CreateObservableGauge("otun.gateway.tunnel.rtt", () => PerConnection(registry.Value, c => c.Mux.RoundTripTime?.TotalSeconds), unit: "s",
            description: "Last measured ping round trip of each agent connection.");
        meter.CreateObservableGauge("otun.gateway.tunnel.queued_control_frames", () => PerConnection(registry.Value, c => (double?)c.Mux.QueuedControlFrames),
            description: "Control frames (heads, resets, credit, pings) queued for the writer of each agent connection.");
        meter.CreateObservableGauge("otun.gateway.tunnel.active_streams", () => PerConnection(registry.Value, c => (double?)c.Mux.ActiveStreams),
            description: "Open request streams of each agent connection.");
    }

    private static IEnumerable<Measurement<double>> PerConnection(ConnectionRegistry registry, Func<AgentConnection, double?> value)
    {
        foreach (var c in registry.All)
        {
            if (value(c) is { } v)
            {
                yield return new Measurement<double>(v,
                    new KeyValuePair<string, object?>("agent", c.AgentId),
                    new KeyValuePair<string, object?>("slot", c.Session.Slot));
            }
        }
    }

    /// <summary>
    /// Starts the request's server span when someone listens. The visitor's traceparent is its parent;
    /// without one the span is a root (the host's own unrecorded request activity is not a parent).
    /// </summary>
    public Activity? StartRequest(HttpContext context, string service)
    {
        if (!Source.HasListeners())
        {
            return null;
        }
        var request = context.Request;
        var headers = request.Headers;
        ActivityContext parent = default;
        if (headers.TryGetValue(Mux.Telemetry.TraceContext.TraceParent, out var traceParent) && traceParent.Count == 1)
        {
            string? state = headers.TryGetValue(Mux.Telemetry.TraceContext.TraceState, out var s) ? s.ToString() : null;
            ActivityContext.TryParse(traceParent[0], state, isRemote: true, out parent);
        }
        var previous = Activity.Current;
        if (parent == default && previous is { Recorded: false })
        {
            Activity.Current = null;
        }
        var activity = Source.StartActivity("otun.gateway " + request.Method, ActivityKind.Server, parent);
        if (activity is null)
        {
            Activity.Current = previous;
            return null;
        }
        if (activity.IsAllDataRequested)
        {
            activity.SetTag("otun.service", service);
            activity.SetTag("http.request.method", request.Method);
            activity.SetTag("url.path", request.Path.Value);
            activity.SetTag("server.address", request.Host.Host);
            activity.SetTag("network.protocol.version", request.Protocol);
        }
        return activity;
    }

    /// <summary>The gateway span of the current request, if one was started.</summary>
    public static Activity? CurrentRequestActivity => Activity.Current is { } a && ReferenceEquals(a.Source, Source) ? a : null;

    /// <summary>Records the end of a routed request: counter, duration, and the span's status.</summary>
    public void EndRequest(HttpContext context, string service, long startTimestamp, Activity? activity)
    {
        bool metrics = _requests.Enabled || _duration.Enabled;
        if (!metrics && activity is null)
        {
            return;
        }
        var kind = VisitorProtocol.Detect(context);
        string protocol = VisitorProtocol.Name(kind);
        int httpStatus = context.Response.StatusCode;
        if (context.RequestAborted.IsCancellationRequested && !context.Response.HasStarted)
        {
            // The visitor left before any answer (nginx's "client closed request").
            httpStatus = 499;
        }
        string status = kind == VisitorKind.Grpc && GrpcStatusOf(context) is { } grpc ? grpc : StatusName(httpStatus);
        if (metrics)
        {
            var tags = new TagList
            {
                { "service", service },
                { "protocol", protocol },
            };
            _duration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds, tags);
            tags.Add("status", status);
            _requests.Add(1, tags);
        }
        if (activity is not null)
        {
            activity.SetTag("http.response.status_code", httpStatus);
            activity.SetTag("otun.protocol", protocol);
            if (kind == VisitorKind.Grpc)
            {
                activity.SetTag("rpc.grpc.status_code", status);
            }
            if (httpStatus >= 500)
            {
                activity.SetStatus(ActivityStatusCode.Error);
            }
            activity.Dispose();
        }
    }

    /// <summary>Body bytes relayed by one request.</summary>
    public void RecordBytes(string service, VisitorKind kind, long bytesIn, long bytesOut)
    {
        if (!_io.Enabled)
        {
            return;
        }
        string protocol = VisitorProtocol.Name(kind);
        _io.Add(bytesIn, new KeyValuePair<string, object?>("service", service), new KeyValuePair<string, object?>("protocol", protocol), new KeyValuePair<string, object?>("direction", "in"));
        _io.Add(bytesOut, new KeyValuePair<string, object?>("service", service), new KeyValuePair<string, object?>("protocol", protocol), new KeyValuePair<string, object?>("direction", "out"));
    }

    /// <summary>A visitor request refused because it broke <paramref name="rule"/> (a fixed name, never visitor input).</summary>
    public void Refused(string rule)
    {
        if (_refusals.Enabled)
        {
            _refusals.Add(1, new KeyValuePair<string, object?>("rule", rule));
        }
    }

    /// <summary>A request refused with 503; <paramref name="limit"/> is one of <see cref="Limits"/>.</summary>
    public void Rejected(string limit, string service)
    {
        if (_rejections.Enabled)
        {
            _rejections.Add(1, new KeyValuePair<string, object?>("limit", limit), new KeyValuePair<string, object?>("service", service));
        }
        if (CurrentRequestActivity is { } activity)
        {
            activity.SetTag("otun.rejected", limit);
        }
    }

    /// <summary>The limit tag of a permit refusal (the agent's budget or one service's share of it).</summary>
    public static string PermitLimit(string? limitReached) =>
        limitReached is not null && limitReached.StartsWith("service ", StringComparison.Ordinal) ? Limits.Service : Limits.Agent;

    /// <summary>Permits granted by one lease call.</summary>
    public void PermitsLeased(string agent, int count)
    {
        if (count > 0 && _permitsLeased.Enabled)
        {
            _permitsLeased.Add(count, new KeyValuePair<string, object?>("agent", agent));
        }
    }

    /// <summary>An agent session was accepted.</summary>
    public void AgentConnected(string agent)
    {
        if (_connects.Enabled)
        {
            _connects.Add(1, new KeyValuePair<string, object?>("agent", agent));
        }
    }

    private static string StatusName(int status) => (uint)status < (uint)StatusNames.Length ? StatusNames[status] : status.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string? GrpcStatusOf(HttpContext context)
    {
        if (context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers is { } trailers && trailers.TryGetValue("grpc-status", out var t) && t.Count > 0)
        {
            return GrpcStatusLabel(t[0]);
        }
        // Trailers-only answers (gateway-made errors) carry grpc-status in the headers.
        return context.Response.Headers.TryGetValue("grpc-status", out var h) && h.Count > 0 ? GrpcStatusLabel(h[0]) : null;
    }

    /// <summary>A backend writes grpc-status: only the 17 defined codes become label values, anything else "invalid".</summary>
    private static string GrpcStatusLabel(string? value) =>
        int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int code) && code is >= 0 and <= 16 && value!.Length <= 2
            ? StatusNames[code]
            : "invalid";
}
