using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Telemetry;

/// <summary>The gateway's /metrics on the admin port (Prometheus text exposition of the OpenTelemetry meters).</summary>
public sealed partial class MetricsTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Metrics_CountRequestsByServiceProtocolStatus_OnTheAdminPortOnly()
    {
        await using var h = await TunnelHarness.StartAsync();

        for (int i = 0; i < 3; i++)
        {
            using var ok = await h.Client.GetAsync(h.Url("/hello"));
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.Equal("hello", await ok.Content.ReadAsStringAsync());
        }
        for (int i = 0; i < 2; i++)
        {
            using var failed = await h.Client.GetAsync(h.Url("/status/500"));
            Assert.Equal(HttpStatusCode.InternalServerError, failed.StatusCode);
        }
        using (var orphan = new HttpRequestMessage(HttpMethod.Get, h.Url("/hello")))
        {
            orphan.Headers.Host = "orphan.test";
            using var refused = await h.Client.SendAsync(orphan);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        }

        using var scrape = await h.Client.GetAsync(new Uri(h.Admin, "/metrics"));
        string text = await scrape.Content.ReadAsStringAsync();
        output.WriteLine(text);
        Assert.Equal(HttpStatusCode.OK, scrape.StatusCode);
        Assert.StartsWith("text/plain", scrape.Content.Headers.ContentType?.MediaType);
        var samples = Parse(text);

        Assert.Equal(3, Value(samples, "otun_gateway_requests_total", ("service", "backend"), ("protocol", "http"), ("status", "200")));
        Assert.Equal(2, Value(samples, "otun_gateway_requests_total", ("service", "backend"), ("protocol", "http"), ("status", "500")));
        Assert.Equal(1, Value(samples, "otun_gateway_requests_total", ("service", "orphan"), ("protocol", "http"), ("status", "503")));
        Assert.Equal(3, samples.Count(s => s.Name == "otun_gateway_requests_total"));

        // Latency histogram by service and protocol, in seconds, with explicit buckets.
        Assert.Equal(5, Value(samples, "otun_gateway_request_duration_seconds_count", ("service", "backend"), ("protocol", "http")));
        Assert.Equal(5, Value(samples, "otun_gateway_request_duration_seconds_bucket", ("service", "backend"), ("protocol", "http"), ("le", "+Inf")));
        Assert.Contains(samples, s => s.Name == "otun_gateway_request_duration_seconds_bucket" && s.Labels.GetValueOrDefault("le") == "0.005");
        Assert.InRange(Value(samples, "otun_gateway_request_duration_seconds_sum", ("service", "backend"), ("protocol", "http")), 0, 30);

        // Rejections by limit: no agent for "orphan".
        Assert.Equal(1, Value(samples, "otun_gateway_rejections_total", ("limit", "no_agent"), ("service", "orphan")));
        Assert.Equal(1, samples.Where(s => s.Name == "otun_gateway_rejections_total").Sum(s => s.Value));

        // Bytes out to visitors: "hello" three times and "status 500\n" twice.
        Assert.Equal(3 * 5 + 2 * 11, Value(samples, "otun_gateway_io_bytes_total", ("service", "backend"), ("protocol", "http"), ("direction", "out")));
        Assert.Equal(0, Value(samples, "otun_gateway_io_bytes_total", ("service", "backend"), ("protocol", "http"), ("direction", "in")));

        // Gauges: nothing in flight any more, one agent connection (accepted once), its ping round trip.
        Assert.Equal(0, Value(samples, "otun_gateway_requests_in_flight"));
        Assert.Equal(1, Value(samples, "otun_gateway_agent_connections"));
        Assert.Equal(1, Value(samples, "otun_gateway_agent_connects_total", ("agent", TunnelHarness.AgentId)));
        Assert.Equal(0, Value(samples, "otun_gateway_tunnel_active_streams", ("agent", TunnelHarness.AgentId), ("slot", "0")));
        Assert.True(Value(samples, "otun_gateway_tunnel_queued_control_frames", ("agent", TunnelHarness.AgentId), ("slot", "0")) >= 0);
        Assert.Equal(0, Value(samples, "otun_gateway_permits_in_use"));
        Assert.True(Value(samples, "otun_gateway_permits_leased_total", ("agent", TunnelHarness.AgentId)) >= 1);

        // The ping round trip appears once the first pong came back (heartbeat every 2 s in the harness).
        await Eventually.TrueAsync(() => Parse(h.Client.GetStringAsync(new Uri(h.Admin, "/metrics")).GetAwaiter().GetResult())
            .Any(s => s.Name == "otun_gateway_tunnel_rtt_seconds" && s.Labels.GetValueOrDefault("agent") == TunnelHarness.AgentId && s.Value > 0),
            TimeSpan.FromSeconds(15), "no otun_gateway_tunnel_rtt_seconds sample for the agent");

        // /metrics is not served on the public ingress (there it is just a path of the backend route).
        using var ingress = await h.Client.GetAsync(h.Url("/metrics"));
        Assert.DoesNotContain("otun_gateway_requests_total", await ingress.Content.ReadAsStringAsync());
    }

    /// <summary>
    /// Orleans' own meter aggregates every message a request makes: a gateway exports it only when asked
    /// (Telemetry:OrleansMetrics), silos always do (RoleMetricsTests).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task OrleansMeter_IsExportedByAGateway_OnlyWhenAsked(bool enabled)
    {
        await using var h = await TunnelHarness.StartAsync(o =>
        {
            if (enabled)
            {
                o.Gateway["Telemetry:OrleansMetrics"] = "true";
            }
        });
        using var ok = await h.Client.GetAsync(h.Url("/hello"));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);

        string text = await h.Client.GetStringAsync(new Uri(h.Admin, "/metrics"));
        Assert.Contains("otun_gateway_requests_total", text);
        Assert.Equal(enabled, Parse(text).Any(s => s.Name.StartsWith("orleans_", StringComparison.Ordinal)));
    }

    private sealed record Sample(string Name, Dictionary<string, string> Labels, double Value);

    private static double Value(List<Sample> samples, string name, params (string Key, string Value)[] labels)
    {
        var match = samples.Where(s => s.Name == name && labels.All(l => s.Labels.GetValueOrDefault(l.Key) == l.Value)).ToList();
        Assert.True(match.Count == 1, $"expected one sample {name}{{{string.Join(",", labels.Select(l => $"{l.Key}=\"{l.Value}\""))}}}, found {match.Count}");
        return match[0].Value;
    }

    /// <summary>Parses the Prometheus text format's sample lines (comments skipped).</summary>
    private static List<Sample> Parse(string text)
    {
        var samples = new List<Sample>();
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }
            var m = SampleLine().Match(line);
            Assert.True(m.Success, $"not a sample line: {line}");
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (Match l in LabelPair().Matches(m.Groups["labels"].Value))
            {
                labels[l.Groups["k"].Value] = l.Groups["v"].Value.Replace("\\\"", "\"").Replace("\\\\", "\\");
            }
            string value = m.Groups["value"].Value;
            samples.Add(new Sample(m.Groups["name"].Value, labels, value switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                "NaN" => double.NaN,
                _ => double.Parse(value, CultureInfo.InvariantCulture),
            }));
        }
        return samples;
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})?\s+(?<value>\S+)(\s+\d+)?$")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"(?<k>[a-zA-Z_][a-zA-Z0-9_]*)=""(?<v>(?:[^""\\]|\\.)*)""")]
    private static partial Regex LabelPair();
}
