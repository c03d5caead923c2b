using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using Grpc.Net.Client;
using OrleansTunnel.Gateway.Requests;
using OrleansTunnel.Tests.Grpc;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Requests;

/// <summary>
/// Two gateways of one cluster: gw-test holds the agent, gw-b has none (its requests cross to gw-test).
/// Requests are looked up and cancelled by id through the admin API of the gateway that does NOT own
/// them; the request's grain asks the owner.
/// </summary>
public sealed class RequestLookupFixture : IAsyncLifetime
{
    public TunnelHarness Harness { get; private set; } = null!;
    public PeerGateway B { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Harness = await TunnelHarness.StartAsync(o =>
        {
            o.Gateway["Gateway:RequestGrainAfter"] = "00:00:00.2";
            // A route whose bodies the inspector keeps (the first 4 KiB of each).
            o.Gateway["Gateway:Routes:10:Host"] = "capture.test";
            o.Gateway["Gateway:Routes:10:Service"] = "backend";
            o.Gateway["Gateway:Routes:10:Capture:Bodies"] = "true";
            o.Gateway["Gateway:Routes:10:Capture:MaxBytes"] = "4096";
            // Uploads to 127.0.0.1 are captured too (the inspector's browser test replays one).
            o.Gateway["Gateway:Routes:11:Host"] = "127.0.0.1";
            o.Gateway["Gateway:Routes:11:PathPrefix"] = "/upload";
            o.Gateway["Gateway:Routes:11:Service"] = "backend";
            o.Gateway["Gateway:Routes:11:Capture:Bodies"] = "true";
        });
        B = await Harness.StartPeerGatewayAsync("gw-b", new()
        {
            ["Gateway:RequestGrainAfter"] = "00:00:00.2",
            ["Gateway:RequestRetention"] = "00:00:03",
            ["Inspector:RedactHeaders:0"] = "X-Api-Key",
            ["Inspector:RedactJsonFields:0"] = "password",
        });
        await Eventually.TrueAsync(() => B.Service<Gateway.Routing.RoutingCache>().Current.Snapshot.Endpoints.ContainsKey("backend"),
            TimeSpan.FromSeconds(30), "gw-b never learned where 'backend' is served");
    }

    public async Task DisposeAsync()
    {
        await B.DisposeAsync();
        await Harness.DisposeAsync();
    }
}

public sealed class RequestLookupTests(RequestLookupFixture fixture) : IClassFixture<RequestLookupFixture>
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    private TunnelHarness H => fixture.Harness;
    private PeerGateway B => fixture.B;

    private HttpClient Admin(Uri admin)
    {
        var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = admin, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", H.AdminToken);
        return client;
    }

    private async Task<JsonElement> LookupAsync(Uri admin, string requestId)
    {
        using var client = Admin(admin);
        using var response = await client.GetAsync($"api/requests/{requestId}");
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET /api/requests/{requestId}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private async Task<(HttpStatusCode Status, string Text)> CancelAsync(Uri admin, string requestId)
    {
        using var client = Admin(admin);
        using var response = await client.DeleteAsync($"api/requests/{requestId}?reason=test");
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static string State(JsonElement view) => view.GetProperty("state").GetString()!;

    /// <summary>The id of a live request of a gateway, found by path in its list (the visitor has no head yet).</summary>
    private async Task<string> LiveIdAsync(Uri admin, string path)
    {
        string? id = null;
        using var client = Admin(admin);
        await Eventually.TrueAsync(() =>
        {
            var list = JsonDocument.Parse(client.GetStringAsync("api/requests?scope=local&live=true").GetAwaiter().GetResult()).RootElement;
            id = list.GetProperty("items").EnumerateArray().Where(r => r.GetProperty("path").GetString()!.Split('?')[0] == path)
                .Select(r => r.GetProperty("requestId").GetString()).FirstOrDefault();
            return id is not null;
        }, Bound, $"no live request for {path}");
        return id!;
    }

    [Fact]
    public async Task AHangingRequest_IsSeenAndCancelledFromTheOtherGateway_TheVisitorGets503AndTheBackendIsCancelled()
    {
        string id = Guid.NewGuid().ToString("N");
        var started = H.Backend.StartedSignal(id);
        var aborted = H.Backend.AbortedSignal(id);
        var call = H.Client.GetAsync(B.Url($"/hang?id={id}"));
        await started.Task.Within(Bound);
        string requestId = await LiveIdAsync(B.Admin, "/hang");
        Assert.StartsWith("gw-b.", requestId);

        var view = await LookupAsync(H.Admin, requestId);
        Assert.Equal("open", State(view));
        Assert.Equal("gw-b", view.GetProperty("gateway").GetString());
        Assert.Equal("gw-test", view.GetProperty("viaGateway").GetString());
        Assert.Equal(TunnelHarness.AgentId, view.GetProperty("agent").GetString());
        Assert.Equal("backend", view.GetProperty("service").GetString());
        Assert.Equal("GET", view.GetProperty("method").GetString());
        Assert.Equal("/hang", view.GetProperty("path").GetString());
        Assert.Equal("gateway", view.GetProperty("source").GetString());
        Assert.True(view.GetProperty("queuedMs").GetDouble() >= 0);

        var (status, text) = await CancelAsync(H.Admin, requestId);
        Assert.True(status == HttpStatusCode.Accepted, $"{(int)status} {text}");
        using var response = await call.Within(Bound);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("cancelled by an operator", await response.Content.ReadAsStringAsync());
        await aborted.Task.Within(Bound);

        await Eventually.TrueAsync(() => State(LookupAsync(H.Admin, requestId).GetAwaiter().GetResult()) == "cancelled", Bound, "never shown cancelled");
        var again = await CancelAsync(B.Admin, requestId);
        Assert.Equal(HttpStatusCode.Conflict, again.Status);
        Assert.Contains("already ended", again.Text);
    }

    [Fact]
    public async Task AnSseStream_GetsItsGrain_IsSeenStreaming_AndACancelCutsTheVisitorOff()
    {
        string id = Guid.NewGuid().ToString("N");
        var request = new HttpRequestMessage(HttpMethod.Get, B.Url($"/sse-gated?id={id}&count=50"));
        using var response = await H.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        string requestId = response.Headers.GetValues(Gateway.Ingress.IngressForwarder.RequestIdHeader).Single();
        var body = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.Equal("data: event 0", await body.ReadLineAsync().Within(Bound));

        // Promoted after Gateway:RequestGrainAfter (200 ms here): the owner says it has its grain.
        await Eventually.TrueAsync(() => LookupAsync(H.Admin, requestId).GetAwaiter().GetResult().GetProperty("hasGrain").GetBoolean(), Bound, "the stream never got its grain");
        var view = await LookupAsync(H.Admin, requestId);
        Assert.Equal("streaming", State(view));
        Assert.Equal(200, view.GetProperty("status").GetInt32());
        Assert.True(view.GetProperty("bytesOut").GetInt64() > 0);
        Assert.NotEqual(JsonValueKind.Null, view.GetProperty("responseHeadAt").ValueKind);

        var (status, text) = await CancelAsync(H.Admin, requestId);
        Assert.True(status == HttpStatusCode.Accepted, $"{(int)status} {text}");
        // The visitor's connection is cut: the stream ends without the remaining events.
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            while (await body.ReadLineAsync().Within(Bound) is not null)
            {
            }
            throw new IOException("ended cleanly");
        });
        await Eventually.TrueAsync(() => State(LookupAsync(B.Admin, requestId).GetAwaiter().GetResult()) == "cancelled", Bound, "never shown cancelled");
    }

    [Fact]
    public async Task AWebSocket_IsSeenAndCancelledFromTheOtherGateway()
    {
        using var ws = new ClientWebSocket();
        ws.Options.CollectHttpResponseDetails = true;
        await ws.ConnectAsync(new Uri($"ws://127.0.0.1:{B.Ingress.Port}/ws?id={Guid.NewGuid():N}"), CancellationToken.None).Within(Bound);
        string requestId = ws.HttpResponseHeaders!["X-Tunnel-Request-Id"].Single();
        await ws.SendAsync(Encoding.UTF8.GetBytes("ping"), WebSocketMessageType.Text, true, CancellationToken.None);
        var buffer = new byte[1024];
        var echoed = await ws.ReceiveAsync(buffer, CancellationToken.None).Within(Bound);
        Assert.Equal("ping", Encoding.UTF8.GetString(buffer, 0, echoed.Count));

        var view = await LookupAsync(H.Admin, requestId);
        Assert.Equal("streaming", State(view));
        Assert.Equal("websocket", view.GetProperty("protocol").GetString());
        Assert.Equal(101, view.GetProperty("status").GetInt32());

        var (status, text) = await CancelAsync(H.Admin, requestId);
        Assert.True(status == HttpStatusCode.Accepted, $"{(int)status} {text}");
        await Assert.ThrowsAnyAsync<WebSocketException>(async () =>
        {
            while (true)
            {
                var r = await ws.ReceiveAsync(buffer, CancellationToken.None).Within(Bound);
                if (r.MessageType == WebSocketMessageType.Close)
                {
                    throw new WebSocketException("closed");
                }
            }
        });
        await Eventually.TrueAsync(() => State(LookupAsync(H.Admin, requestId).GetAwaiter().GetResult()) == "cancelled", Bound, "never shown cancelled");
    }

    [Fact]
    public async Task AGrpcStream_IsSeenAndCancelledFromTheOtherGateway_TheCallerGetsCancelled()
    {
        using var channel = GrpcChannel.ForAddress(H.HttpsIngress, new GrpcChannelOptions { HttpHandler = TunnelHarness.TrustingHandler() });
        using var call = new Echo.EchoClient(channel).Duplex();
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "one", Sequence = 1 });
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None).Within(Bound));
        var headers = await call.ResponseHeadersAsync;
        string requestId = headers.GetValue("x-tunnel-request-id")!;
        Assert.StartsWith("gw-test.", requestId);

        var view = await LookupAsync(B.Admin, requestId);
        Assert.Equal("streaming", State(view));
        Assert.Equal("grpc", view.GetProperty("protocol").GetString());

        var (status, text) = await CancelAsync(B.Admin, requestId);
        Assert.True(status == HttpStatusCode.Accepted, $"{(int)status} {text}");
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None).Within(Bound))
            {
            }
        });
        Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
        Assert.Contains("cancelled by an operator", ex.Status.Detail);
    }

    [Fact]
    public async Task AFinishedRequest_IsAnswerableWithinRetention_AndNotAfter()
    {
        using var response = await H.Client.GetAsync(B.Url("/hello"));
        Assert.Equal("hello", await response.Content.ReadAsStringAsync());
        string requestId = response.Headers.GetValues("X-Tunnel-Request-Id").Single();
        var view = await LookupAsync(H.Admin, requestId);
        Assert.Equal("completed", State(view));
        Assert.Equal(200, view.GetProperty("status").GetInt32());
        Assert.Equal(5, view.GetProperty("bytesOut").GetInt64());

        // Another request, not looked up until gw-b's journal let it go (Gateway:RequestRetention = 3 s there).
        using var later = await H.Client.GetAsync(B.Url("/hello"));
        string laterId = later.Headers.GetValues("X-Tunnel-Request-Id").Single();
        var journal = B.Service<RequestJournal>();
        Assert.NotNull(journal.Find(laterId));
        await Eventually.TrueAsync(() => journal.Find(laterId) is null, Bound, "the journal kept it past its retention");
        using var client = Admin(H.Admin);
        using var gone = await client.GetAsync($"api/requests/{laterId}");
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        Assert.Contains("retains", await gone.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task TheClusterList_HoldsEveryGatewaysRequests_Filtered_AndPagesThroughThemWithoutGapsOrRepeats()
    {
        string marker = "/hello?list=" + Guid.NewGuid().ToString("N");
        var sent = new List<string>();
        for (int i = 0; i < 600; i++)
        {
            using var r = await H.Client.GetAsync(i % 2 == 0 ? H.Url(marker) : B.Url(marker));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            sent.Add(r.Headers.GetValues("X-Tunnel-Request-Id").Single());
        }
        using var client = Admin(H.Admin);
        var seen = new List<string>();
        string url = "api/requests?service=backend&status=2xx&path=/hello&limit=50";
        DateTimeOffset? last = null;
        while (true)
        {
            var page = JsonDocument.Parse(await client.GetStringAsync(url)).RootElement;
            Assert.Equal(["gw-b", "gw-test"], page.GetProperty("gateways").EnumerateArray().Select(g => g.GetString()).Order());
            foreach (var item in page.GetProperty("items").EnumerateArray())
            {
                var opened = item.GetProperty("openedAt").GetDateTimeOffset();
                Assert.True(last is null || opened <= last, "not newest first");
                last = opened;
                Assert.Equal(200, item.GetProperty("status").GetInt32());
                seen.Add(item.GetProperty("requestId").GetString()!);
            }
            if (page.GetProperty("next").ValueKind == JsonValueKind.Null)
            {
                break;
            }
            var next = page.GetProperty("next");
            url = "api/requests?service=backend&status=2xx&path=/hello&limit=50"
                + $"&before={Uri.EscapeDataString(next.GetProperty("before").GetString()!)}&beforeId={Uri.EscapeDataString(next.GetProperty("beforeId").GetString()!)}";
        }
        Assert.Equal(seen.Count, seen.Distinct().Count());
        Assert.Empty(sent.Except(seen));

        // Filters that match none of them; a value that is not understood.
        var none = JsonDocument.Parse(await client.GetStringAsync("api/requests?status=5xx&path=" + Uri.EscapeDataString(marker))).RootElement;
        Assert.Empty(none.GetProperty("items").EnumerateArray());
        using var bad = await client.GetAsync("api/requests?status=abc");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("status 'abc'", await bad.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task HeadersAreKeptRedacted_SecretsNeverReachTheApi()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, B.Url("/headers-out"));
        request.Headers.Add("Authorization", "Bearer secret-bearer-123");
        request.Headers.Add("Cookie", "session=secret-cookie-456");
        request.Headers.Add("X-Api-Key", "secret-key-789");
        request.Headers.Add("X-Visible", "plain-value");
        using var response = await H.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        string requestId = response.Headers.GetValues("X-Tunnel-Request-Id").Single();

        using var client = Admin(H.Admin);
        string text = await client.GetStringAsync($"api/requests/{requestId}");
        foreach (var secret in new[] { "secret-bearer-123", "secret-cookie-456", "secret-key-789", "a=1; Path=/" })
        {
            Assert.DoesNotContain(secret, text);
        }
        var view = JsonDocument.Parse(text).RootElement;
        var sent = view.GetProperty("requestHeaders").EnumerateArray().ToDictionary(f => f.GetProperty("name").GetString()!, f => f.GetProperty("value").GetString(), StringComparer.OrdinalIgnoreCase);
        Assert.Equal("[redacted]", sent["Authorization"]);
        Assert.Equal("[redacted]", sent["Cookie"]);
        Assert.Equal("[redacted]", sent["X-Api-Key"]);
        Assert.Equal("plain-value", sent["X-Visible"]);
        var received = view.GetProperty("responseHeaders").EnumerateArray().Select(f => (Name: f.GetProperty("name").GetString()!, Value: f.GetProperty("value").GetString())).ToList();
        Assert.All(received.Where(f => f.Name.Equals("Set-Cookie", StringComparison.OrdinalIgnoreCase)), f => Assert.Equal("[redacted]", f.Value));
        Assert.Equal(["first", "second"], received.Where(f => f.Name == "X-Multi").Select(f => f.Value));
    }

    [Fact]
    public async Task AReplay_SendsTheRequestAgainThroughTheCluster_LinkedToTheOriginal_AndCanBeEdited()
    {
        string id = Guid.NewGuid().ToString("N");
        using var original = new HttpRequestMessage(HttpMethod.Get, B.Url($"/counted-download?id={id}&size=5"));
        original.Headers.Add("X-Visible", "one");
        // A visitor cannot forge a replay link (no key), and the marker is never forwarded.
        original.Headers.Add("X-Otun-Replay-Of", "gw-test.1.1");
        using var first = await H.Client.SendAsync(original);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        string originalId = first.Headers.GetValues("X-Tunnel-Request-Id").Single();
        var originalView = await LookupAsync(H.Admin, originalId);
        Assert.True(originalView.GetProperty("requestHeaders").ValueKind == JsonValueKind.Array, originalView.ToString());
        Assert.Equal(JsonValueKind.Null, originalView.GetProperty("replayOf").ValueKind);
        Assert.DoesNotContain(originalView.GetProperty("requestHeaders").EnumerateArray(), f => f.GetProperty("name").GetString()!.StartsWith("X-Otun-", StringComparison.OrdinalIgnoreCase));
        Assert.Equal(5, H.Backend.Counter(id).Value);

        using var client = Admin(H.Admin);
        using var replayed = await client.PostAsync($"api/requests/{originalId}/replay", null);
        string text = await replayed.Content.ReadAsStringAsync();
        Assert.True(replayed.StatusCode == HttpStatusCode.OK, $"{(int)replayed.StatusCode} {text}");
        var answer = JsonDocument.Parse(text).RootElement;
        Assert.True(answer.GetProperty("status").GetInt32() == 200, text + "\n" + (await LookupAsync(H.Admin, answer.GetProperty("requestId").GetString()!)).ToString());
        string replayId = answer.GetProperty("requestId").GetString()!;
        Assert.Equal(10, H.Backend.Counter(id).Value);
        var replayView = await LookupAsync(B.Admin, replayId);
        Assert.Equal(originalId, replayView.GetProperty("replayOf").GetString());
        Assert.Equal($"/counted-download?id={id}&size=5", replayView.GetProperty("target").GetString());
        Assert.Contains(replayView.GetProperty("requestHeaders").EnumerateArray(), f => f.GetProperty("name").GetString() == "X-Visible" && f.GetProperty("value").GetString() == "one");

        using var edited = await client.PostAsJsonAsync($"api/requests/{originalId}/replay", new { headers = new Dictionary<string, string> { ["X-Visible"] = "two" } });
        Assert.Equal(HttpStatusCode.OK, edited.StatusCode);
        string editedId = JsonDocument.Parse(await edited.Content.ReadAsStringAsync()).RootElement.GetProperty("requestId").GetString()!;
        var editedView = await LookupAsync(H.Admin, editedId);
        Assert.Contains(editedView.GetProperty("requestHeaders").EnumerateArray(), f => f.GetProperty("name").GetString() == "X-Visible" && f.GetProperty("value").GetString() == "two");
        Assert.Equal(15, H.Backend.Counter(id).Value);

        // A request whose body was not captured (no Capture on its route) cannot be replayed without one.
        using var upload = await H.Client.PostAsync(B.Url("/hello"), new ByteArrayContent(new byte[100]));
        string uploadId = upload.Headers.GetValues("X-Tunnel-Request-Id").Single();
        using var refused = await client.PostAsync($"api/requests/{uploadId}/replay", null);
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Contains("not captured", await refused.Content.ReadAsStringAsync());
    }

    private static async Task<(string Id, string Sha)> UploadAsync(HttpClient client, Uri url, HttpContent content)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = content };
        request.Headers.Host = "capture.test";
        using var response = await client.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        return (response.Headers.GetValues("X-Tunnel-Request-Id").Single(), JsonDocument.Parse(text).RootElement.GetProperty("sha256").GetString()!);
    }

    private static byte[] Body(JsonElement view, string which) => Convert.FromBase64String(view.GetProperty(which).GetProperty("base64").GetString()!);

    [Fact]
    public async Task BodiesAreCapturedOnRoutesThatAskForIt_RedactedLimited_AndAReplayResendsTheSameBytes()
    {
        // A JSON body through gw-b, which redacts "password" in captured JSON.
        var json = new StringContent("{\"user\":\"bob\",\"password\":\"hunter2\",\"nested\":{\"password\":\"x\"}}", System.Text.Encoding.UTF8, "application/json");
        var (jsonId, _) = await UploadAsync(H.Client, B.Url("/upload"), json);
        string jsonView = await (await AdminGetAsync(H.Admin, $"api/requests/{jsonId}")).Content.ReadAsStringAsync();
        Assert.DoesNotContain("hunter2", jsonView);
        string sent = System.Text.Encoding.UTF8.GetString(Body(JsonDocument.Parse(jsonView).RootElement, "requestBody"));
        Assert.Contains("\"user\":\"bob\"", sent);
        Assert.Contains("\"password\":\"[redacted]\"", sent);
        Assert.DoesNotContain("hunter2", sent);

        // Binary bytes through gw-test, kept whole: a replay sends the same bytes (the backend's hash is equal).
        var bytes = Hashing.Bytes(3000, seed: 11);
        var (binId, sha) = await UploadAsync(H.Client, H.Url("/upload"), new ByteArrayContent(bytes));
        var view = await LookupAsync(B.Admin, binId);
        Assert.Equal(Hashing.Sha256(bytes), Hashing.Sha256(Body(view, "requestBody")));
        Assert.Contains(sha, System.Text.Encoding.UTF8.GetString(Body(view, "responseBody")));
        using var client = Admin(B.Admin);
        using var replayed = await client.PostAsync($"api/requests/{binId}/replay", null);
        string replay = await replayed.Content.ReadAsStringAsync();
        Assert.True(replayed.StatusCode == HttpStatusCode.OK, replay);
        string replayId = JsonDocument.Parse(replay).RootElement.GetProperty("requestId").GetString()!;
        var replayView = await LookupAsync(H.Admin, replayId);
        Assert.Equal(binId, replayView.GetProperty("replayOf").GetString());
        Assert.Contains(sha, System.Text.Encoding.UTF8.GetString(Body(replayView, "responseBody")));

        // Larger than the capture: the first 4 KiB are kept, and such a request is not replayed without a body.
        var large = Hashing.Bytes(10_000, seed: 12);
        var (largeId, _) = await UploadAsync(H.Client, H.Url("/upload"), new ByteArrayContent(large));
        var largeView = await LookupAsync(H.Admin, largeId);
        Assert.Equal(4096, largeView.GetProperty("requestBody").GetProperty("kept").GetInt32());
        Assert.Equal(10_000, largeView.GetProperty("requestBody").GetProperty("total").GetInt64());
        Assert.Equal(Hashing.Sha256(large.AsSpan(0, 4096)), Hashing.Sha256(Body(largeView, "requestBody")));
        using var refused = await client.PostAsync($"api/requests/{largeId}/replay", null);
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);

        // A route without capture keeps no body.
        using var plain = await H.Client.GetAsync(B.Url("/hello"));
        var plainView = await LookupAsync(H.Admin, plain.Headers.GetValues("X-Tunnel-Request-Id").Single());
        Assert.Equal(JsonValueKind.Null, plainView.GetProperty("requestBody").ValueKind);
        Assert.Equal(JsonValueKind.Null, plainView.GetProperty("responseBody").ValueKind);
    }

    private async Task<HttpResponseMessage> AdminGetAsync(Uri admin, string path)
    {
        using var client = Admin(admin);
        return await client.GetAsync(path);
    }

    [Fact]
    public async Task UnknownAndMalformedIds_AreRefusedWithAMessage()
    {
        using var client = Admin(H.Admin);
        using var unknown = await client.GetAsync("api/requests/gw-b.1.1");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("not known", await unknown.Content.ReadAsStringAsync());
        using var nobody = await client.GetAsync("api/requests/gw-nobody.1.1");
        Assert.Equal(HttpStatusCode.NotFound, nobody.StatusCode);
        Assert.Contains("not registered", await nobody.Content.ReadAsStringAsync());
        using var malformed = await client.GetAsync("api/requests/not-an-id");
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
        Assert.Contains("GATEWAY.INCARNATION.SEQUENCE", await malformed.Content.ReadAsStringAsync());
        using var cancelUnknown = await client.DeleteAsync("api/requests/gw-b.1.1");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, cancelUnknown.StatusCode);
    }
}
