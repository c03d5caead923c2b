using System.Net;
using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Gateway.Health;
using OrleansTunnel.Protocol.V1;
using OrleansTunnel.Tests.Infrastructure;
using OrleansTunnel.Tests.Security;
using Xunit;

namespace OrleansTunnel.Tests.Resilience;

/// <summary>
/// Where a retry goes, and when an answer that broke off after its head may still be retried. Two hand-made
/// sessions of one agent ("other-agent", slots 0 and 1) stand for an agent with two connections; the first
/// request either of them gets is answered with a head and then lost, as when the agent is killed.
/// </summary>
public sealed class RetryChoiceTests
{
    private const string SecondAgentId = "other-b";

    [Fact]
    public async Task AnAnswerLostAfterItsHead_IsRetriedOnAnotherAgent_NotOnTheSameAgentsOtherConnection()
    {
        string token = "other-b-token-" + Guid.NewGuid().ToString("N");
        await using var h = await TunnelHarness.StartAsync(o =>
        {
            o.Gateway["Gateway:Agents:2:Id"] = SecondAgentId;
            o.Gateway["Gateway:Agents:2:TokenSha256"] = OrleansTunnel.Gateway.Auth.AgentCredentialStore.Hash(token);
            o.Gateway["Gateway:Agents:2:Services:0"] = "other";
        });
        await using var first = await FakeAgent.ConnectAsync(h, slot: 0);
        await using var second = await FakeAgent.ConnectAsync(h, slot: 1);
        var agent = await h.StartExtraAgentAsync(SecondAgentId, token, "other");
        try
        {
            await Eventually.TrueAsync(() => Sessions(h, "other") == 3, TimeSpan.FromSeconds(30), "the gateway never held the three sessions for 'other'");
            // Five losses: a retry choosing at random between the agent's other connection and the other agent
            // would pass by luck once in 32 runs.
            var lost = await LoseAnswersAsync(h, first, second, count: 5);

            // Each retry skipped the failed agent's other connection: the real agent's backend answered.
            foreach (var l in lost)
            {
                Assert.True(l.Response.StatusCode == HttpStatusCode.OK && l.Body == "hello",
                    $"{l.Path}, lost after its head on slot {l.LostOnSlot}, answered {(int)l.Response.StatusCode}: {l.Body}");
            }
            Assert.Equal(5, h.Gateway.Services.GetRequiredService<CircuitBreakers>().RetriesTotal);
        }
        finally
        {
            await agent.StopAsync(TimeSpan.FromSeconds(10).ToCancellationToken());
            agent.Dispose();
        }
    }

    [Fact]
    public async Task WithNoOtherAgent_TheRetryTakesTheSameAgentsOtherConnection()
    {
        await using var h = await TunnelHarness.StartAsync();
        await using var first = await FakeAgent.ConnectAsync(h, slot: 0);
        await using var second = await FakeAgent.ConnectAsync(h, slot: 1);
        await Eventually.TrueAsync(() => Sessions(h, "other") == 2, TimeSpan.FromSeconds(30), "the gateway never held both sessions for 'other'");
        var lost = (await LoseAnswersAsync(h, first, second, count: 1))[0];

        Assert.True(lost.Response.StatusCode == HttpStatusCode.OK, $"{lost.Path}, lost after its head, answered {(int)lost.Response.StatusCode}: {lost.Body}");
        Assert.Equal($"answered by slot {1 - lost.LostOnSlot}", lost.Body);
    }

    private static int Sessions(TunnelHarness h, string service) =>
        h.Gateway.Services.GetRequiredService<OrleansTunnel.Gateway.Tunnel.ConnectionRegistry>().All
            .Count(c => c.Session.Services.Contains(service) && !c.Mux.Closed.IsCancellationRequested);

    private sealed record Lost(string Path, HttpResponseMessage Response, string Body, int LostOnSlot);

    /// <summary>
    /// Sends GETs to 'other' until <paramref name="count"/> of them reached a fake session; each of those is
    /// answered with a head and then a reset in the same message (nothing of the answer is written to the
    /// visitor before the reset is read). Every other request a fake session gets is answered whole, naming its slot.
    /// </summary>
    private static async Task<Lost[]> LoseAnswersAsync(TunnelHarness h, FakeAgent first, FakeAgent second, int count)
    {
        int toLose = count;
        var lost = new System.Collections.Concurrent.ConcurrentQueue<(string Path, int Slot)>();
        using var stop = new CancellationTokenSource();
        async Task ServeAsync(FakeAgent fake, int slot)
        {
            var next = fake.NextAsync(f => f.KindCase == Frame.KindOneofCase.RequestHead);
            while (true)
            {
                Frame head;
                try
                {
                    head = await next.WaitAsync(stop.Token);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return;
                }
                next = fake.NextAsync(f => f.KindCase == Frame.KindOneofCase.RequestHead);
                if (Interlocked.Decrement(ref toLose) >= 0)
                {
                    lost.Enqueue((head.RequestHead.PathAndQuery, slot));
                    await fake.SendAsync(
                        new Frame { Stream = head.Stream, ResponseHead = new ResponseHead { Status = 200, Headers = { new Header { Name = "Content-Type", Value = "text/plain" } } } },
                        new Frame { Stream = head.Stream, Reset = new Reset { Code = ResetCode.Internal, Reason = "tunnel connection lost: the agent process died" } });
                    continue;
                }
                await fake.AnswerAsync(head.Stream, $"answered by slot {slot}");
            }
        }
        var servers = new[] { ServeAsync(first, 0), ServeAsync(second, 1) };
        try
        {
            var answers = new Dictionary<string, (HttpResponseMessage, string)>(StringComparer.Ordinal);
            for (int i = 0; i < 400 && lost.Count < count; i++)
            {
                string path = $"/hello?i={i}";
                var request = new HttpRequestMessage(HttpMethod.Get, h.Url(path));
                request.Headers.Host = "other.test";
                var response = await h.Client.SendAsync(request).WaitAsync(TimeSpan.FromSeconds(30));
                answers[path] = (response, await response.Content.ReadAsStringAsync());
            }
            Assert.True(lost.Count == count, $"only {lost.Count} of 400 requests reached a hand-made session (wanted {count})");
            return [.. lost.Select(l => new Lost(l.Path, answers[l.Path].Item1, answers[l.Path].Item2, l.Slot))];
        }
        finally
        {
            stop.Cancel();
            await Task.WhenAll(servers).WaitAsync(TimeSpan.FromSeconds(15));
        }
    }
}
