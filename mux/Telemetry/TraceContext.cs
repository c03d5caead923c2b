using System.Diagnostics;
using Google.Protobuf.Collections;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Mux.Telemetry;

/// <summary>
/// W3C Trace Context (traceparent, tracestate) carried in a tunnel frame's headers. The gateway writes
/// its span's context into the request head; the agent reads it as the parent of its span and writes
/// its own span's context towards the backend. Each hop replaces the fields, never appends.
/// </summary>
public static class TraceContext
{
    public const string TraceParent = "traceparent";
    public const string TraceState = "tracestate";

    /// <summary>The remote parent named by the headers' traceparent (and tracestate), if valid.</summary>
    public static bool TryExtract(RepeatedField<Header> headers, out ActivityContext context)
    {
        string? parent = null;
        string? state = null;
        foreach (var h in headers)
        {
            if (parent is null && h.Name.Equals(TraceParent, StringComparison.OrdinalIgnoreCase))
            {
                parent = h.Value;
            }
            else if (state is null && h.Name.Equals(TraceState, StringComparison.OrdinalIgnoreCase))
            {
                state = h.Value;
            }
        }
        context = default;
        return parent is not null && ActivityContext.TryParse(parent, state, isRemote: true, out context);
    }

    /// <summary>Replaces traceparent and tracestate in <paramref name="headers"/> with <paramref name="activity"/>'s context.</summary>
    public static void Inject(RepeatedField<Header> headers, Activity activity)
    {
        for (int i = headers.Count - 1; i >= 0; i--)
        {
            var name = headers[i].Name;
            if (name.Equals(TraceParent, StringComparison.OrdinalIgnoreCase) || name.Equals(TraceState, StringComparison.OrdinalIgnoreCase))
            {
                headers.RemoveAt(i);
            }
        }
        headers.Add(TraceParent, Format(activity));
        if (!string.IsNullOrEmpty(activity.TraceStateString))
        {
            headers.Add(TraceState, activity.TraceStateString);
        }
    }

    /// <summary>The W3C traceparent value of <paramref name="activity"/> (version 00).</summary>
    public static string Format(Activity activity) =>
        $"00-{activity.TraceId.ToHexString()}-{activity.SpanId.ToHexString()}-{((activity.ActivityTraceFlags & ActivityTraceFlags.Recorded) != 0 ? "01" : "00")}";
}

/// <summary>Settings of configuration section "Telemetry" (gateway and agent).</summary>
public sealed class TelemetryOptions
{
    public const string Section = "Telemetry";

    /// <summary>OTLP collector endpoint (e.g. http://otel-collector:4317); empty: no OTLP export.</summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary>OTLP transport: "grpc" (default, port 4317) or "http/protobuf" (port 4318).</summary>
    public string OtlpProtocol { get; set; } = "grpc";

    /// <summary>
    /// Gateway: also export Orleans' own meter ("Microsoft.Orleans": messaging, grain calls, activations).
    /// Off by default on gateways, where listening to it aggregates every Orleans message a request makes;
    /// silos always export it.
    /// </summary>
    public bool OrleansMetrics { get; set; }
}
