using System.Text.Json;
using Microsoft.AspNetCore.Http;
using OrleansTunnel.Gateway.Auth;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Gateway.Requests;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Admin;

/// <summary>
/// The admin API (bearer token, admin port only): agents, services, routes, in-flight requests and
/// agent tokens. Changes go to the cluster's routing grain, which persists them and pushes them to
/// every gateway.
/// </summary>
public sealed class AdminApi(IGrainFactory grains, RoutingCache routing, RequestListing listing, RequestReplayer replayer, OrleansTunnel.Gateway.Auth.AgentCredentialStore credentials,
    OrleansTunnel.Gateway.Health.CircuitBreakers circuits) : IAdminEndpoint
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter(JsonNamingPolicy.CamelCase) } };

    public string Path => "/api/";

    public bool RequiresToken => true;

    private IRoutingGrain Routing => grains.GetGrain<IRoutingGrain>(RoutingGrain.DefaultKey);

    public async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        string path = request.Path.Value!["/api".Length..].TrimEnd('/');
        IResult result;
        try
        {
            result = (request.Method, path) switch
            {
                ("GET", "/agents") => await AgentsAsync(),
                ("GET", "/services") => Services(),
                ("GET", "/circuits") => Results.Json(circuits.AdminView(), Json),
                ("GET", "/routes") => Results.Json(routing.Current.Snapshot.Routes.Select(Redact), Json),
                ("PUT" or "POST", "/routes") => await UpsertRouteAsync(request),
                ("DELETE", "/routes") => await RemoveRouteAsync(request),
                ("GET", "/requests") => await ListRequestsAsync(request),
                ("POST", var p) when p.StartsWith("/requests/", StringComparison.Ordinal) && p.EndsWith("/replay", StringComparison.Ordinal)
                    => await ReplayAsync(p["/requests/".Length..^"/replay".Length], request),
                ("GET", var p) when p.StartsWith("/requests/", StringComparison.Ordinal) => await RequestAsync(p["/requests/".Length..]),
                ("DELETE", var p) when p.StartsWith("/requests/", StringComparison.Ordinal) => await CancelAsync(p["/requests/".Length..], request),
                ("GET", "/tokens") => Results.Json(routing.Current.Snapshot.Credentials.Select(c => new { c.AgentId, c.Services }), Json),
                ("PUT" or "POST", "/tokens") => await UpsertTokenAsync(request),
                ("DELETE", var p) when p.StartsWith("/tokens/", StringComparison.Ordinal) => await RemoveTokenAsync(p["/tokens/".Length..]),
                _ => Results.Text($"otun admin: no {request.Method} {request.Path}; see README (admin API)\n", statusCode: 404),
            };
        }
        catch (JsonException ex)
        {
            result = Results.Text($"otun admin: the body is not valid JSON: {ex.Message}\n", statusCode: 400);
        }
        catch (OrleansTunnel.Grains.DurableStateUnavailableException ex)
        {
            // Redis is unavailable: requests keep flowing, changes wait until it is back.
            result = Results.Text($"otun admin: {ex.Message}\n", statusCode: 503);
        }
        catch (Exception ex) when (ex is TimeoutException || ex.GetType().Namespace?.StartsWith("Orleans", StringComparison.Ordinal) == true)
        {
            // The cluster could not answer (a silo died, failure detection is still running): say so, do not 500.
            result = Results.Text($"otun admin: the cluster could not answer ({ex.GetType().Name}: {ex.Message}); retry, and check the silos\n", statusCode: 503);
        }
        await result.ExecuteAsync(context);
    }

    /// <summary>Requests of every gateway (or, with scope=local, this one), filtered, newest first, a page at a time.</summary>
    private async Task<IResult> ListRequestsAsync(HttpRequest request)
    {
        var (query, problem) = RequestListing.Parse(request.Query);
        if (query is null)
        {
            return Results.Text($"otun admin: {problem}\n", statusCode: 400);
        }
        var page = await listing.ListAsync(query, clusterWide: request.Query["scope"].FirstOrDefault() != "local");
        return Results.Json(page, Json);
    }

    /// <summary>A request's state from its grain, which asks the gateway that owns it (any gateway answers for any request).</summary>
    private async Task<IResult> RequestAsync(string id)
    {
        id = Uri.UnescapeDataString(id);
        if (!RequestIds.TryParse(id, out _, out _, out _, out string? problem))
        {
            return Results.Text($"otun admin: '{id}' is not a request id: {problem}\n", statusCode: 400);
        }
        var snapshot = await grains.GetGrain<IRequestGrain>(id).GetSnapshot();
        if (snapshot.State == RequestState.None)
        {
            return Results.Text($"otun admin: request '{id}' is not known: {snapshot.Note}\n", statusCode: 404);
        }
        return Results.Json(RequestView.From(snapshot), Json);
    }

    /// <summary>Replays a request (optionally edited: method, path, headers, body) through this gateway's ingress; answers the new request's id.</summary>
    private async Task<IResult> ReplayAsync(string id, HttpRequest request)
    {
        id = Uri.UnescapeDataString(id);
        if (!RequestIds.TryParse(id, out _, out _, out _, out string? problem))
        {
            return Results.Text($"otun admin: '{id}' is not a request id: {problem}\n", statusCode: 400);
        }
        var edit = request.ContentLength is > 0 || request.Headers.TransferEncoding.Count > 0
            ? await request.ReadFromJsonAsync<RequestReplayer.Edit>(Json) : null;
        return await replayer.ReplayAsync(id, edit, request.HttpContext.RequestAborted);
    }

    /// <summary>Cancels a request wherever it runs: the visitor gets a status naming the cancel, the backend call is cancelled.</summary>
    private async Task<IResult> CancelAsync(string id, HttpRequest request)
    {
        id = Uri.UnescapeDataString(id);
        if (!RequestIds.TryParse(id, out _, out _, out _, out string? problem))
        {
            return Results.Text($"otun admin: '{id}' is not a request id: {problem}\n", statusCode: 400);
        }
        string reason = request.Query["reason"].FirstOrDefault() is { Length: > 0 and <= 200 } given ? given : "DELETE /api/requests/" + id;
        var result = await grains.GetGrain<IRequestGrain>(id).Cancel(reason);
        return result.Status switch
        {
            CancelStatus.Cancelled => Results.Json(new { requestId = id, status = "cancelled", message = result.Message }, Json, statusCode: 202),
            CancelStatus.AlreadyEnded => Results.Text($"otun admin: {result.Message}\n", statusCode: 409),
            CancelStatus.Unknown => Results.Text($"otun admin: {result.Message}\n", statusCode: 404),
            _ => Results.Text($"otun admin: cannot cancel request '{id}': {result.Message}\n", statusCode: 503),
        };
    }

    private async Task<IResult> AgentsAsync()
    {
        var ids = routing.Current.Snapshot.Endpoints.Values.SelectMany(e => e).Select(e => e.AgentId).Distinct(StringComparer.Ordinal).Order();
        var agents = new List<object>();
        foreach (var id in ids)
        {
            var agent = await grains.GetGrain<IAgentGrain>(id).GetSnapshot();
            var budget = await grains.GetGrain<IBackpressureGrain>(id).GetSnapshot();
            agents.Add(new
            {
                agentId = id,
                services = agent.Services,
                connections = agent.Sessions.Select(s => new { s.SessionId, s.GatewayId, s.Slot, s.Epoch, s.ConnectedAt, s.RemoteAddress }),
                lastHeartbeat = agent.LastHeartbeat,
                inFlight = budget.Leased,
                limit = budget.AgentLimit,
            });
        }
        return Results.Json(agents, Json);
    }

    private IResult Services()
    {
        var snapshot = routing.Current.Snapshot;
        var names = snapshot.Routes.Select(r => r.Service).Concat(snapshot.Endpoints.Keys).Distinct(StringComparer.Ordinal).Order();
        return Results.Json(names.Select(name => new
        {
            service = name,
            routes = snapshot.Routes.Where(r => r.Service == name).Select(r => r.Host + (r.PathPrefix ?? "")),
            agents = snapshot.Endpoints.GetValueOrDefault(name, []).Select(e => e.AgentId).Distinct(StringComparer.Ordinal),
            connections = snapshot.Endpoints.GetValueOrDefault(name, []).Length,
            // Sessions whose agent reports the service unhealthy (cluster-wide), and this gateway's open circuits.
            unhealthy = (snapshot.UnhealthyEndpoints?.GetValueOrDefault(name) ?? []).Select(e => new { e.AgentId, e.SessionId, e.GatewayId }),
            openCircuits = circuits.OpenFor(name),
        }), Json);
    }

    private sealed record RouteBody(string? Host, string? PathPrefix, string? Service, long? MaxRequestBodySize = null,
        string? Access = null, string? Credential = null, string? CredentialSha256 = null, string[]? AllowedNetworks = null,
        RouteCaptureOptions? Capture = null, string? PathMode = null,
        OrleansTunnel.Gateway.Policy.RouteRewriteOptions? Rewrite = null, OrleansTunnel.Gateway.Policy.RouteRateLimitOptions? RateLimit = null,
        RouteIdentity? Identity = null, OrleansTunnel.Gateway.Health.RouteResilienceOptions? Resilience = null);

    /// <summary>A route as the admin API shows it: never the credential's hash nor a client secret.</summary>
    private static Route Redact(Route r) =>
        r.CredentialSha256 is null && r.Identity?.ClientSecret is null ? r : r with { CredentialSha256 = r.CredentialSha256 is null ? null : "(set)", Identity = r.Identity?.Redacted() };

    private async Task<IResult> UpsertRouteAsync(HttpRequest request)
    {
        var body = await request.ReadFromJsonAsync<RouteBody>(Json);
        if (string.IsNullOrWhiteSpace(body?.Host) || string.IsNullOrWhiteSpace(body.Service))
        {
            return Results.Text("otun admin: a route needs \"host\" and \"service\" (and may have \"pathPrefix\")\n", statusCode: 400);
        }
        if (body.Host.Contains('*') && !(body.Host.StartsWith("*.", StringComparison.Ordinal) && body.Host.LastIndexOf('*') == 0))
        {
            return Results.Text($"otun admin: host '{body.Host}': a wildcard is only allowed as the first label (*.example.com)\n", statusCode: 400);
        }
        // "credential" ("user:password" or a token) is hashed here and never stored; or give "credentialSha256".
        string? hash = !string.IsNullOrEmpty(body.Credential) ? VisitorAccess.Hash(body.Credential) : body.CredentialSha256?.ToLowerInvariant();
        if (body.Capture is { Bodies: true, MaxBytes: < 1 or > 1024 * 1024 })
        {
            return Results.Text("otun admin: capture.maxBytes must be between 1 and 1048576\n", statusCode: 400);
        }
        if (GatewayOptionsValidator.RouteProblem(body.MaxRequestBodySize, body.Access, hash, body.AllowedNetworks, body.PathMode, body.Identity) is { } problem)
        {
            return Results.Text($"otun admin: {problem}\n", statusCode: 400);
        }
        if ((OrleansTunnel.Gateway.Policy.PolicyConfig.RewriteProblem(body.Rewrite, body.PathPrefix)
            ?? OrleansTunnel.Gateway.Policy.PolicyConfig.RateLimitProblem(body.RateLimit)
            ?? OrleansTunnel.Gateway.Health.RouteResilienceConfig.Problem(body.Resilience)) is { } policyProblem)
        {
            return Results.Text($"otun admin: {policyProblem}\n", statusCode: 400);
        }
        var route = new Route(body.Host, body.PathPrefix, body.Service, body.MaxRequestBodySize, body.Access, hash,
            body.AllowedNetworks is { Length: > 0 } ? body.AllowedNetworks : null, body.Capture?.Bytes ?? 0, body.PathMode,
            OrleansTunnel.Gateway.Policy.PolicyConfig.ToRewrite(body.Rewrite), OrleansTunnel.Gateway.Policy.PolicyConfig.ToRateLimit(body.RateLimit))
        {
            Identity = body.Identity,
            Resilience = OrleansTunnel.Gateway.Health.RouteResilienceConfig.ToRecord(body.Resilience),
        };
        await Routing.UpsertRoute(route);
        // The answer never echoes the credential's hash.
        return Results.Json(RoutingGrain.Normalize(route) with { CredentialSha256 = null, Identity = route.Identity?.Redacted() }, Json);
    }

    private async Task<IResult> RemoveRouteAsync(HttpRequest request)
    {
        string host = request.Query["host"].ToString();
        if (host.Length == 0)
        {
            return Results.Text("otun admin: give the route as ?host=HOST[&pathPrefix=/PATH]\n", statusCode: 400);
        }
        bool removed = await Routing.RemoveRoute(host, request.Query["pathPrefix"].FirstOrDefault());
        return removed ? Results.NoContent() : Results.Text($"otun admin: no route for host '{host}' with that path prefix\n", statusCode: 404);
    }

    private sealed record TokenBody(string? AgentId, string? Token, string? TokenSha256, string[]? Services);

    private async Task<IResult> UpsertTokenAsync(HttpRequest request)
    {
        var body = await request.ReadFromJsonAsync<TokenBody>(Json);
        if (string.IsNullOrWhiteSpace(body?.AgentId) || body.Services is not { Length: > 0 })
        {
            return Results.Text("otun admin: a token needs \"agentId\", \"services\" and either \"token\" or \"tokenSha256\"\n", statusCode: 400);
        }
        string? hash = !string.IsNullOrEmpty(body.Token) ? AgentCredentialStore.Hash(body.Token) : body.TokenSha256?.ToLowerInvariant();
        if (hash is not { Length: 64 } || !hash.All(Uri.IsHexDigit))
        {
            return Results.Text("otun admin: give \"token\" (it is hashed here and never stored) or \"tokenSha256\" (64 hex digits)\n", statusCode: 400);
        }
        await Routing.UpsertCredential(new AgentCredential(body.AgentId, hash, body.Services));
        return Results.Json(new { body.AgentId, body.Services }, Json);
    }

    private async Task<IResult> RemoveTokenAsync(string agentId)
    {
        agentId = Uri.UnescapeDataString(agentId);
        bool removed = await Routing.RemoveCredential(agentId);
        if (removed)
        {
            return Results.NoContent();
        }
        // A credential from the gateways' configuration cannot be deleted from their files: its hashes are
        // revoked cluster-wide instead (live sessions are closed), until the operator configures a new token.
        if (credentials.ConfiguredHashes(agentId) is { Length: > 0 } hashes)
        {
            await Routing.RevokeTokens(hashes);
            return Results.Text($"otun admin: the configured token of agent '{agentId}' is revoked on every gateway and its sessions are closed; configure a new Gateway:Agents TokenSha256 for it\n");
        }
        return Results.Text($"otun admin: no token for agent '{agentId}'\n", statusCode: 404);
    }
}
