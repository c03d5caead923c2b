using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using OrleansTunnel.Agent.Telemetry;
using OrleansTunnel.Gateway.Telemetry;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Telemetry;

/// <summary>W3C trace context through the tunnel: visitor -> gateway span -> agent span -> backend.</summary>
public sealed class TracingTests
{
    [Fact]
    public async Task Traceparent_ChainsVisitorGatewayAgentAndBackend()
    {
        var traceId = ActivityTraceId.CreateRandom();
        var visitorSpanId = ActivitySpanId.CreateRandom();
        var stopped = new ConcurrentQueue<Activity>();
        // Only this test's trace is kept, so any other activity in the process cannot interfere.
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is GatewayTelemetry.ActivitySourceName or AgentTelemetry.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> options) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                if (activity.TraceId == traceId)
                {
                    stopped.Enqueue(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        await using var h = await TunnelHarness.StartAsync();

        using var request = new HttpRequestMessage(HttpMethod.Get, h.Url("/echo"));
        request.Headers.TryAddWithoutValidation("traceparent", $"00-{traceId.ToHexString()}-{visitorSpanId.ToHexString()}-01");
        request.Headers.TryAddWithoutValidation("tracestate", "vendor=visitor");
        using var response = await h.Client.SendAsync(request);
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        string requestId = response.Headers.GetValues("X-Tunnel-Request-Id").Single();

        await Eventually.TrueAsync(() => stopped.Count >= 2, TimeSpan.FromSeconds(10), "the gateway and agent spans did not both end");
        var gateway = Assert.Single(stopped, a => a.Source.Name == GatewayTelemetry.ActivitySourceName);
        var agent = Assert.Single(stopped, a => a.Source.Name == AgentTelemetry.ActivitySourceName);

        // Gateway: a server span whose parent is the visitor's span.
        Assert.Equal(ActivityKind.Server, gateway.Kind);
        Assert.Equal("otun.gateway GET", gateway.DisplayName);
        Assert.Equal(traceId, gateway.TraceId);
        Assert.Equal(visitorSpanId, gateway.ParentSpanId);
        Assert.Equal("vendor=visitor", gateway.TraceStateString);
        Assert.Equal("backend", gateway.GetTagItem("otun.service"));
        Assert.Equal(requestId, gateway.GetTagItem("otun.request_id"));
        Assert.Equal(200, gateway.GetTagItem("http.response.status_code"));

        // Agent: a child of the gateway's span.
        Assert.Equal(ActivityKind.Client, agent.Kind);
        Assert.Equal(traceId, agent.TraceId);
        Assert.Equal(gateway.SpanId, agent.ParentSpanId);
        Assert.Equal(requestId, agent.GetTagItem("otun.request_id"));
        Assert.Equal(200, agent.GetTagItem("http.response.status_code"));

        // Backend: exactly one traceparent, naming the agent's span as parent, in the same trace.
        var headers = JsonDocument.Parse(body).RootElement.GetProperty("headers").EnumerateArray()
            .Select(p => (Name: p[0].GetString()!, Value: p[1].GetString()!)).ToList();
        var traceParent = Assert.Single(headers, x => x.Name.Equals("traceparent", StringComparison.OrdinalIgnoreCase)).Value;
        Assert.Equal($"00-{traceId.ToHexString()}-{agent.SpanId.ToHexString()}-01", traceParent);
        Assert.Equal("vendor=visitor", Assert.Single(headers, x => x.Name.Equals("tracestate", StringComparison.OrdinalIgnoreCase)).Value);
    }

    [Fact]
    public async Task WithoutListeners_NoSpans_AndTheVisitorsTraceparentPassesUnchanged()
    {
        await using var h = await TunnelHarness.StartAsync();
        Assert.False(GatewayTelemetry.Source.HasListeners());
        Assert.False(AgentTelemetry.Source.HasListeners());

        string visitor = $"00-{ActivityTraceId.CreateRandom().ToHexString()}-{ActivitySpanId.CreateRandom().ToHexString()}-01";
        using var request = new HttpRequestMessage(HttpMethod.Get, h.Url("/echo"));
        request.Headers.TryAddWithoutValidation("traceparent", visitor);
        using var response = await h.Client.SendAsync(request);
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        var headers = JsonDocument.Parse(body).RootElement.GetProperty("headers").EnumerateArray()
            .Select(p => (Name: p[0].GetString()!, Value: p[1].GetString()!)).ToList();
        Assert.Equal(visitor, Assert.Single(headers, x => x.Name.Equals("traceparent", StringComparison.OrdinalIgnoreCase)).Value);
    }
}
