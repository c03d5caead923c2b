using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using OrleansTunnel.Tests.Deploy;
using OrleansTunnel.Tests.Infrastructure;
using OrleansTunnel.Tests.Requests;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Inspector;

/// <summary>
/// The inspector page in a real browser (Debian's chromium driven by playwright-core): log in, see a
/// request through each of two gateways appear, open one, replay it, edit and replay it, pause.
/// Screenshots go to .build/test-results/screenshots.
/// </summary>
public sealed class InspectorPageTests(RequestLookupFixture fixture, ITestOutputHelper output) : IClassFixture<RequestLookupFixture>
{
    private TunnelHarness H => fixture.Harness;
    private PeerGateway B => fixture.B;

    [Fact]
    public async Task APersonLogsIn_SeesRequestsOfBothGateways_OpensOne_AndReplaysIt()
    {
        var install = await ProcessRunner.RunAsync("bash", [Path.Combine(RepoRoot.Path, "scripts", "install-playwright.sh")], RepoRoot.Path, TimeSpan.FromMinutes(5));
        Assert.True(install.ExitCode == 0, "scripts/install-playwright.sh failed: " + install.Describe());
        string playwright = install.StandardOutput.Trim().Split('\n')[^1].Trim();
        string shots = Path.Combine(RepoRoot.Path, ".build", "test-results", "screenshots");
        Directory.CreateDirectory(shots);
        string body = "a body the replay must send again " + Guid.NewGuid().ToString("N");
        string bodySha = Hashing.Sha256(System.Text.Encoding.UTF8.GetBytes(body));

        var run = await ProcessRunner.RunAsync("node", [Path.Combine(RepoRoot.Path, "tests", "OrleansTunnel.Tests", "Inspector", "inspect-e2e.mjs")],
            RepoRoot.Path, TimeSpan.FromMinutes(2), environment: new Dictionary<string, string?>
            {
                ["ADMIN"] = H.Admin.ToString(),
                ["TOKEN"] = H.AdminToken,
                ["INGRESS_A"] = H.Ingress.ToString(),
                ["INGRESS_B"] = B.Ingress.ToString(),
                ["PATH_A"] = "/upload",
                ["BODY_A"] = body,
                ["PATH_B"] = "/hello?from=b",
                ["SHOTS"] = shots,
                ["PLAYWRIGHT"] = playwright,
            });
        output.WriteLine(run.StandardOutput);
        Assert.True(run.ExitCode == 0, "the browser script failed: " + run.Describe());
        var steps = run.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith('{'))
            .Select(l => JsonDocument.Parse(l).RootElement).ToDictionary(e => e.GetProperty("step").GetString()!);

        Assert.Contains("not this gateway's admin token", steps["wrong-token-refused"].GetProperty("text").GetString());
        Assert.True(steps["logged-in"].GetProperty("httpOnly").GetBoolean());
        Assert.Equal("Strict", steps["logged-in"].GetProperty("sameSite").GetString());

        var listed = steps["both-listed"];
        string a = listed.GetProperty("a").GetString()!, b = listed.GetProperty("b").GetString()!;
        Assert.StartsWith("gw-test.", a);
        Assert.StartsWith("gw-b.", b);
        output.WriteLine($"both requests listed {listed.GetProperty("ms").GetInt32()} ms after they were sent (refresh every 500 ms)");

        Assert.Contains("POST /upload", steps["detail"].GetProperty("title").GetString());
        Assert.Contains("response headers", steps["detail"].GetProperty("text").GetString());
        // The captured body is on the page.
        Assert.Contains(body, steps["detail"].GetProperty("text").GetString());

        // The replays reached the backend with the same body: its answer (captured) names the same hash.
        string replayed = steps["replayed"].GetProperty("id").GetString()!;
        string edited = steps["edited"].GetProperty("id").GetString()!;
        using var admin = new HttpClient { BaseAddress = H.Admin };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", H.AdminToken);
        var replayView = JsonDocument.Parse(await admin.GetStringAsync($"api/requests/{replayed}")).RootElement;
        Assert.Equal(a, replayView.GetProperty("replayOf").GetString());
        Assert.Contains(bodySha, System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(replayView.GetProperty("responseBody").GetProperty("base64").GetString()!)));
        var editedView = JsonDocument.Parse(await admin.GetStringAsync($"api/requests/{edited}")).RootElement;
        Assert.Equal(a, editedView.GetProperty("replayOf").GetString());
        Assert.Contains(bodySha, System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(editedView.GetProperty("responseBody").GetProperty("base64").GetString()!)));
        Assert.Contains(editedView.GetProperty("requestHeaders").EnumerateArray(), f => f.GetProperty("name").GetString() == "X-Edited" && f.GetProperty("value").GetString() == "yes");

        var paused = steps["paused"];
        Assert.Equal(paused.GetProperty("before").GetInt32(), paused.GetProperty("after").GetInt32());
        Assert.Equal(0, paused.GetProperty("listed").GetInt32());
        Assert.True(File.Exists(Path.Combine(shots, "inspector-list.png")));
        Assert.True(File.Exists(Path.Combine(shots, "inspector-detail.png")));
    }

    [Fact]
    public async Task OpenOnLoopback_LetsALoopbackVisitorInWithoutTheToken_ButChangesStillNeedTheInspectorHeader()
    {
        await using var h = await TunnelHarness.StartAsync(o => o.Gateway["Inspector:OpenOnLoopback"] = "true");
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = h.Admin };
        string page = await client.GetStringAsync("inspect/");
        Assert.Contains("otun <span>inspector</span>", page);
        using var list = await client.GetAsync("api/requests");
        Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        // A cross-site form could post here; without the X-Otun-Inspect header it is refused.
        using var cancel = await client.DeleteAsync("api/requests/gw-test.1.1");
        Assert.Equal(HttpStatusCode.Unauthorized, cancel.StatusCode);
        using var withHeader = new HttpRequestMessage(HttpMethod.Delete, "api/requests/gw-test.1.1");
        withHeader.Headers.Add("X-Otun-Inspect", "1");
        using var allowed = await client.SendAsync(withHeader);
        Assert.NotEqual(HttpStatusCode.Unauthorized, allowed.StatusCode);
    }

    [Fact]
    public async Task WithoutLogin_ThePageAsksForTheToken_AndTheEventsAndApiAre401()
    {
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false }) { BaseAddress = H.Admin };
        using var page = await client.GetAsync("inspect/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        string html = await page.Content.ReadAsStringAsync();
        Assert.Contains("name=\"token\"", html);
        Assert.Contains("script-src 'nonce-", page.Headers.GetValues("Content-Security-Policy").Single());
        using var events = await client.GetAsync("inspect/events");
        Assert.Equal(HttpStatusCode.Unauthorized, events.StatusCode);
        using var api = await client.GetAsync("api/requests");
        Assert.Equal(HttpStatusCode.Unauthorized, api.StatusCode);
        // A forged session cookie is no session.
        using var forged = new HttpRequestMessage(HttpMethod.Get, "api/requests");
        forged.Headers.Add("Cookie", "otun_inspect=" + new string('a', 64));
        using var refused = await client.SendAsync(forged);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
    }
}
