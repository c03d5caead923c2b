using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Gateway.Cluster;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Grains;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Cluster;

/// <summary>
/// Two gateways of one cluster (an in-process silo): the agent is connected to gateway "gw-test" only,
/// visitors enter through gateway "gw-b", so every request crosses from gw-b to gw-test over the
/// gateways' peer link and on through gw-test's tunnel to the agent and the backend.
/// </summary>
public sealed class CrossGatewayFixture : IAsyncLifetime
{
    public TunnelHarness Harness { get; private set; } = null!;
    public PeerGateway B { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Harness = await TunnelHarness.StartAsync();
        B = await Harness.StartPeerGatewayAsync("gw-b");
        // Ready when gw-b routes "backend" to gw-test's session (pushed by the directory).
        await Eventually.TrueAsync(() => B.Service<Gateway.Routing.RoutingCache>().Current.Snapshot.Endpoints.ContainsKey("backend"),
            TimeSpan.FromSeconds(30), "gw-b never learned where 'backend' is served");
    }

    public async Task DisposeAsync()
    {
        await B.DisposeAsync();
        await Harness.DisposeAsync();
    }
}

public sealed class CrossGatewayTests(CrossGatewayFixture fixture, ITestOutputHelper output) : IClassFixture<CrossGatewayFixture>
{
    private TunnelHarness H => fixture.Harness;
    private PeerGateway B => fixture.B;

    [Fact]
    public async Task ARequestEnteringAGatewayWithoutTheAgent_IsServedThroughTheGatewayThatHasIt()
    {
        long crossedBefore = B.Service<Dispatcher>().CrossGateway;
        var body = Hashing.Bytes(3 * 1024 * 1024 + 17, seed: 5);
        using var response = await H.Client.PostAsync(B.Url("/upload"), new ByteArrayContent(body));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"status {(int)response.StatusCode}: {text}");
        var json = JsonDocument.Parse(text).RootElement;
        Assert.Equal(Hashing.Sha256(body), json.GetProperty("sha256").GetString());
        Assert.Equal(body.Length, json.GetProperty("length").GetInt64());
        Assert.True(B.Service<Dispatcher>().CrossGateway > crossedBefore, "the request did not cross to the other gateway");
        Assert.True(H.Gateway.Services.GetRequiredService<PeerBridge>().Bridged > 0, "gw-test bridged nothing");
    }

    [Fact]
    public async Task ThePeerLink_ShowsInPeers_WithItsTraffic()
    {
        static async Task<JsonElement> LinkAsync(HttpClient client, Uri admin)
        {
            var peers = JsonDocument.Parse(await client.GetStringAsync(new Uri(admin, "/peers"))).RootElement;
            return peers.EnumerateArray().Single(p => p.GetProperty("gateway").GetString() == "gw-test");
        }

        var before = await LinkAsync(H.Client, B.Admin);
        Assert.True(before.GetProperty("up").GetBoolean(), $"gw-b's link to gw-test is not up: {before}");
        long framesOut = before.GetProperty("traffic").GetProperty("framesOut").GetInt64();
        long messagesIn = before.GetProperty("traffic").GetProperty("messagesIn").GetInt64();

        using (var response = await H.Client.GetAsync(B.Url("/hello")))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var after = (await LinkAsync(H.Client, B.Admin)).GetProperty("traffic");
        // At least the request's head went out and its answer came in, each in some message.
        Assert.True(after.GetProperty("framesOut").GetInt64() > framesOut, $"no frame written on the link: {after}");
        Assert.True(after.GetProperty("messagesIn").GetInt64() > messagesIn, $"no message read on the link: {after}");
        Assert.True(after.GetProperty("framesPerMessageOut").GetDouble() >= 1, $"frames per message below one: {after}");
        // The agent's tunnel on gw-test shows its own traffic in /tunnels.
        var tunnels = JsonDocument.Parse(await H.Client.GetStringAsync(new Uri(H.Admin, "/tunnels"))).RootElement;
        Assert.Contains(tunnels.EnumerateArray(), t => t.GetProperty("traffic").GetProperty("framesIn").GetInt64() > 0);
    }

    [Fact]
    public async Task ALargeDownload_CrossesWhole_AndEqualsTheBackendsOwnBytes()
    {
        const long size = 48L * 1024 * 1024 + 3;
        using var direct = await H.Client.GetAsync($"{H.Backend.Url}/download?size={size}", HttpCompletionOption.ResponseHeadersRead);
        var expected = await Hashing.Sha256Async(await direct.Content.ReadAsStreamAsync());
        using var crossed = await H.Client.GetAsync(B.Url($"/download?size={size}"), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, crossed.StatusCode);
        var actual = await Hashing.Sha256Async(await crossed.Content.ReadAsStreamAsync());
        Assert.Equal(expected, actual);
        Assert.Equal(size, actual.Length);
    }

    [Fact]
    public async Task TheRequestGrain_IsOpenedByTheVisitorsGateway_AndCompletedThroughIt()
    {
        using var response = await H.Client.GetAsync(B.Url("/hello"));
        Assert.Equal("hello", await response.Content.ReadAsStringAsync());
        string requestId = response.Headers.GetValues(IngressForwarder.RequestIdHeader).Single();
        var grains = H.Gateway.Services.GetRequiredService<IGrainFactory>();
        RequestSnapshot? snapshot = null;
        await Eventually.TrueAsync(() =>
        {
            snapshot = grains.GetGrain<IRequestGrain>(requestId).GetSnapshot().GetAwaiter().GetResult();
            return snapshot.State == RequestState.Completed && snapshot.Outcome?.ReportedBy == "gw-b";
        }, TimeSpan.FromSeconds(10), "the request grain was never completed by the visitor's gateway");
        Assert.Equal("gw-b", snapshot!.Open!.GatewayId);
        Assert.Equal("gw-test", snapshot.Open.ViaGatewayId);
        Assert.Equal(200, snapshot.Outcome!.Status);
        Assert.Equal(0, snapshot.FencedCompletions);
    }

    [Fact]
    public async Task ABackendError_CrossesWithItsStatusAndMessage()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, B.Url("/"));
        request.Headers.Host = "refused.test";
        using var response = await H.Client.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Contains("the backend refused or reset the connection", text);
    }

    [Fact]
    public async Task AVisitorWhoLeaves_CancelsTheBackendRequest_AcrossBothGateways()
    {
        string id = Guid.NewGuid().ToString("N");
        var started = H.Backend.StartedSignal(id);
        var aborted = H.Backend.AbortedSignal(id);
        using var cts = new CancellationTokenSource();
        var call = H.Client.GetAsync(B.Url($"/hang?id={id}"), cts.Token);
        await started.Task.Within(TimeSpan.FromSeconds(10));
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        await aborted.Task.Within(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task ASlowReader_ThrottlesTheBackend_ThroughBothHops()
    {
        string id = Guid.NewGuid().ToString("N");
        long read = 0;
        using var response = await H.Client.GetAsync(B.Url($"/counted-download?id={id}&size={1L << 30}"), HttpCompletionOption.ResponseHeadersRead);
        var stream = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[16 * 1024];
        // Read 4 MB, then stop reading until the backend has been stuck for a while.
        while (read < 4 << 20)
        {
            read += await stream.ReadAsync(buffer);
        }
        var counter = H.Backend.Counter(id);
        long last = -1;
        // Wait until the backend stops making progress (credit exhausted on both hops).
        for (int stable = 0; stable < 5;)
        {
            long now = Interlocked.Read(ref counter.Value);
            stable = now == last ? stable + 1 : 0;
            last = now;
            await Task.Delay(200);
        }
        long produced = Interlocked.Read(ref counter.Value);
        output.WriteLine($"read {read / 1e6:0.0} MB, backend produced {produced / 1e6:0.0} MB before it was held back");
        Assert.True(produced - read < 48L << 20, $"the backend ran {(produced - read) / 1e6:0.0} MB ahead of the reader");
    }

    [Fact]
    public async Task AWebSocket_CrossesGateways()
    {
        using var socket = new System.Net.WebSockets.ClientWebSocket();
        await socket.ConnectAsync(new Uri($"ws://127.0.0.1:{B.Ingress.Port}/ws"), CancellationToken.None).Within(TimeSpan.FromSeconds(10));
        var message = Hashing.Bytes(200_000, seed: 9);
        await socket.SendAsync(message, System.Net.WebSockets.WebSocketMessageType.Binary, true, CancellationToken.None);
        var received = new MemoryStream();
        var buffer = new byte[65536];
        System.Net.WebSockets.WebSocketReceiveResult result;
        do
        {
            result = await socket.ReceiveAsync(buffer, CancellationToken.None).Within(TimeSpan.FromSeconds(10));
            received.Write(buffer, 0, result.Count);
        }
        while (!result.EndOfMessage);
        Assert.Equal(Hashing.Sha256(message), Hashing.Sha256(received.ToArray()));
        await socket.CloseAsync(System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None).Within(TimeSpan.FromSeconds(10));
    }
}
