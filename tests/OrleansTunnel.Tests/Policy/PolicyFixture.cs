using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Grains;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Policy;

/// <summary>
/// Two gateways of one cluster (the agent on "gw-test", visitors also entering through "gw-b"), shared by
/// the rewrite and rate-limit tests. Routes are set through the admin API, as an operator would.
/// </summary>
public sealed class PolicyFixture : IAsyncLifetime
{
    public TunnelHarness Harness { get; private set; } = null!;
    public PeerGateway B { get; private set; } = null!;
    public HttpClient Admin { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Harness = await TunnelHarness.StartAsync();
        B = await Harness.StartPeerGatewayAsync("gw-b");
        await Eventually.TrueAsync(() => B.Service<RoutingCache>().Current.Snapshot.Endpoints.ContainsKey("backend"),
            TimeSpan.FromSeconds(30), "gw-b never learned where 'backend' is served");
        Admin = new HttpClient { BaseAddress = Harness.Admin, Timeout = TimeSpan.FromSeconds(60) };
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Harness.AdminToken);
    }

    /// <summary>PUT /api/routes; the answer's status and body.</summary>
    public async Task<(int Status, string Body)> PutRouteAsync(object route)
    {
        using var response = await Admin.PutAsJsonAsync("api/routes", route, new JsonSerializerOptions(JsonSerializerDefaults.Web));
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>Sets a route through the admin API and waits until both gateways route with it.</summary>
    public async Task SetRouteAsync(object route, string host, Func<Route, bool> applied)
    {
        var (status, body) = await PutRouteAsync(route);
        Assert.True(status == 200, $"admin API answered {status}: {body}");
        foreach (var routing in new[] { Harness.Gateway.Services.GetService(typeof(RoutingCache)) as RoutingCache, B.Service<RoutingCache>() })
        {
            await Eventually.TrueAsync(() => routing!.Current.Snapshot.Routes.Any(r => r.Host == host && applied(r)),
                TimeSpan.FromSeconds(30), $"a gateway never received the route of {host}");
        }
    }

    public async Task DisposeAsync()
    {
        Admin?.Dispose();
        await B.DisposeAsync();
        await Harness.DisposeAsync();
    }
}

[CollectionDefinition("policy")]
public sealed class PolicyCollection : ICollectionFixture<PolicyFixture>;
