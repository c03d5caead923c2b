using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OrleansTunnel.Agent;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Security;

/// <summary>
/// Per-tenant bounds on a gateway (issue 12, section 4): one agent at Gateway:MaxInFlightPerAgent, or one
/// service at Gateway:MaxInFlightPerService, gets 503 for its next request while another agent's (and
/// service's) visitors are served.
/// </summary>
public sealed class TenantLimitTests
{
    [Theory]
    [InlineData("Gateway:MaxInFlightPerAgent", "otun: agent 'test-agent' is at this gateway's limit of 2 in-flight requests per agent\n")]
    [InlineData("Gateway:MaxInFlightPerService", "otun: service 'backend' is at this gateway's limit of 2 in-flight requests per service\n")]
    public async Task OneTenantAtItsLimit_IsRefused_WhileAnotherIsServed(string option, string refusal)
    {
        await using var h = await TunnelHarness.StartAsync(o => o.Gateway[option] = "2");
        var other = await h.StartExtraAgentAsync(TunnelHarness.OtherAgentId, h.OtherAgentToken, "other");
        await other.Services.GetRequiredService<AgentStatus>().AnyUp.WaitAsync(TimeSpan.FromSeconds(30));
        using var cancel = new CancellationTokenSource();
        try
        {
            // Two requests of test-agent's service hang at the backend: its two slots on this gateway are taken.
            var hanging = new[] { "tenant-a", "tenant-b" }.Select(id =>
                h.Client.GetAsync(h.Url($"/hang?id={id}"), HttpCompletionOption.ResponseHeadersRead, cancel.Token)).ToArray();
            await h.Backend.StartedSignal("tenant-a").Task.WaitAsync(TimeSpan.FromSeconds(30));
            await h.Backend.StartedSignal("tenant-b").Task.WaitAsync(TimeSpan.FromSeconds(30));

            using (var refused = await h.Client.GetAsync(h.Url("/hello")))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
                Assert.Equal(refusal, await refused.Content.ReadAsStringAsync());
                Assert.NotNull(refused.Headers.RetryAfter);
            }
            // The other tenant is not starved.
            var request = new HttpRequestMessage(HttpMethod.Get, h.Url("/hello"));
            request.Headers.Host = "other.test";
            using (var served = await h.Client.SendAsync(request))
            {
                Assert.Equal(HttpStatusCode.OK, served.StatusCode);
                Assert.Equal("hello", await served.Content.ReadAsStringAsync());
            }
            cancel.Cancel();
            await Task.WhenAll(hanging.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
            // Once those ended, the agent is served again.
            await Eventually.TrueAsync(() => h.Forwarder().InFlight == 0, TimeSpan.FromSeconds(30), "the hanging requests ended at the gateway");
            using var again = await h.Client.GetAsync(h.Url("/hello"));
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        }
        finally
        {
            await other.StopAsync(TimeSpan.FromSeconds(10).ToCancellationToken());
            other.Dispose();
        }
    }
}
