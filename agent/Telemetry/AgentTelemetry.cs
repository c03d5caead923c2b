using System.Diagnostics;
using System.Diagnostics.Metrics;
using OrleansTunnel.Mux.Telemetry;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Agent.Telemetry;

/// <summary>
/// The agent's metrics (meter <see cref="MeterName"/>) and request spans (activity source
/// <see cref="ActivitySourceName"/>). A span is made only when someone listens; its parent is the
/// gateway's span named by the request head's traceparent.
/// </summary>
public sealed class AgentTelemetry
{
    public const string MeterName = "OrleansTunnel.Agent";
    public const string ActivitySourceName = "OrleansTunnel.Agent";

    public static readonly ActivitySource Source = new(ActivitySourceName, typeof(AgentTelemetry).Assembly.GetName().Version?.ToString());

    /// <summary>Bucket bounds (seconds) of the backend call duration.</summary>
    public static readonly double[] DurationBuckets =
        [0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 120];

    private static readonly string[] StatusNames = [.. Enumerable.Range(0, 600).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))];

    private readonly Counter<long> _requests;
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _connects;

    public AgentTelemetry(IMeterFactory meterFactory, AgentStatus status)
    {
        var meter = meterFactory.Create(new MeterOptions(MeterName) { Version = typeof(AgentTelemetry).Assembly.GetName().Version?.ToString() });
        _requests = meter.CreateCounter<long>("otun.agent.requests",
            description: "Requests forwarded to backends, by service and status (HTTP status, or the reset sent instead: backend_unavailable, backend_timeout, unknown_service, cancelled, internal).");
        _duration = meter.CreateHistogram("otun.agent.request.duration", unit: "s",
            description: "Time from the request head until the agent finished the request.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        _connects = meter.CreateCounter<long>("otun.agent.tunnel.connects",
            description: "Tunnel connections established (first connects and reconnects), by gateway.");
        meter.CreateObservableUpDownCounter("otun.agent.tunnels", () => status.Tunnels.Count,
            description: "Tunnel connections up now.");
    }

    /// <summary>Starts the request's span (child of the gateway's span) when someone listens.</summary>
    public static Activity? StartRequest(RequestHead head)
    {
        if (!Source.HasListeners())
        {
            return null;
        }
        if (!TraceContext.TryExtract(head.Headers, out var parent))
        {
            // No caller context: a root span, never a child of whatever the tunnel's own loop runs under.
            Activity.Current = null;
        }
        var activity = Source.StartActivity("otun.agent " + head.Method, ActivityKind.Client, parent);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("otun.service", head.Service);
            activity.SetTag("otun.request_id", head.RequestId);
            activity.SetTag("http.request.method", head.Method);
        }
        return activity;
    }

    /// <summary>Replaces the traceparent the backend gets with the agent span's.</summary>
    public static void Inject(HttpRequestMessage request, Activity activity)
    {
        request.Headers.Remove(TraceContext.TraceParent);
        request.Headers.Remove(TraceContext.TraceState);
        request.Headers.TryAddWithoutValidation(TraceContext.TraceParent, TraceContext.Format(activity));
        if (!string.IsNullOrEmpty(activity.TraceStateString))
        {
            request.Headers.TryAddWithoutValidation(TraceContext.TraceState, activity.TraceStateString);
        }
    }

    /// <summary>Records one finished request: counter, duration and the span's outcome.</summary>
    public void EndRequest(string service, string status, long startTimestamp, Activity? activity)
    {
        if (_requests.Enabled || _duration.Enabled)
        {
            var service_ = new KeyValuePair<string, object?>("service", service);
            _duration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds, service_);
            _requests.Add(1, service_, new KeyValuePair<string, object?>("status", status));
        }
        if (activity is not null)
        {
            activity.SetTag("otun.status", status);
            if (int.TryParse(status, out int code))
            {
                activity.SetTag("http.response.status_code", code);
                if (code >= 500)
                {
                    activity.SetStatus(ActivityStatusCode.Error);
                }
            }
            else
            {
                activity.SetStatus(ActivityStatusCode.Error, status);
            }
            activity.Dispose();
        }
    }

    /// <summary>A tunnel connection came up.</summary>
    public void TunnelConnected(string gateway)
    {
        if (_connects.Enabled)
        {
            _connects.Add(1, new KeyValuePair<string, object?>("gateway", gateway));
        }
    }

    public static string StatusName(int status) => (uint)status < (uint)StatusNames.Length ? StatusNames[status] : status.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public static string ResetName(ResetCode code) => code switch
    {
        ResetCode.BackendUnavailable => "backend_unavailable",
        ResetCode.BackendTimeout => "backend_timeout",
        ResetCode.UnknownService => "unknown_service",
        ResetCode.Cancelled => "cancelled",
        ResetCode.Refused => "refused",
        ResetCode.ProtocolError => "protocol_error",
        ResetCode.BadRequest => "bad_request",
        _ => "internal",
    };
}
