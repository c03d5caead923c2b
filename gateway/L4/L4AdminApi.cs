using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Admin;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.L4;

/// <summary>
/// Admin API for TCP/UDP listeners (<c>/api/l4/services</c>, bearer token, admin port): lists the
/// configured and run-time listeners with their counters, and adds, changes or removes run-time ones
/// in the routing grain, which persists them and pushes them to every gateway.
/// </summary>
public sealed class L4AdminApi(IGrainFactory grains, RoutingCache routing, L4RuntimeListeners runtime, L4Telemetry telemetry, L4Endpoints endpoints, IOptions<L4Options> options) : IAdminEndpoint
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>The body of PUT /api/l4/services.</summary>
    public sealed record Body(string? Protocol, string? Listen, string? Service, string[]? AllowedNetworks, int? MaxConnections, bool? ProxyProtocol, TimeSpan? IdleTimeout);

    public string Path => "/api/l4/";

    public bool RequiresToken => true;

    public async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        string path = request.Path.Value!.TrimEnd('/');
        IResult result;
        try
        {
            result = (request.Method, path) switch
            {
                ("GET", "/api/l4/services") => List(),
                ("PUT" or "POST", "/api/l4/services") => await UpsertAsync(request),
                ("DELETE", "/api/l4/services") => await RemoveAsync(request),
                _ => Results.Text($"otun admin: no {request.Method} {request.Path}; see README (TCP and UDP services)\n", statusCode: 404),
            };
        }
        catch (JsonException ex)
        {
            result = Results.Text($"otun admin: the body is not valid JSON: {ex.Message}\n", statusCode: 400);
        }
        catch (DurableStateUnavailableException ex)
        {
            result = Results.Text($"otun admin: {ex.Message}\n", statusCode: 503);
        }
        catch (Exception ex) when (ex is TimeoutException || ex.GetType().Namespace?.StartsWith("Orleans", StringComparison.Ordinal) == true)
        {
            result = Results.Text($"otun admin: the cluster could not answer ({ex.GetType().Name}: {ex.Message}); retry, and check the silos\n", statusCode: 503);
        }
        await result.ExecuteAsync(context);
    }

    private IResult List()
    {
        var o = options.Value;
        object Stats(string protocol, string service)
        {
            var s = telemetry.Stats(protocol, service);
            return new
            {
                connections = Interlocked.Read(ref s.Connections), active = Interlocked.Read(ref s.Active), refused = Interlocked.Read(ref s.Refused),
                bytesIn = Interlocked.Read(ref s.BytesIn), bytesOut = Interlocked.Read(ref s.BytesOut),
                datagramsIn = Interlocked.Read(ref s.DatagramsIn), datagramsOut = Interlocked.Read(ref s.DatagramsOut), datagramsDropped = Interlocked.Read(ref s.DatagramsDropped),
            };
        }
        var open = runtime.Open;
        return Results.Json(new
        {
            configured = o.TcpServices.Select(s => (Protocol: "tcp", S: s)).Concat(o.UdpServices.Select(s => (Protocol: "udp", S: s)))
                .Select(x => new { protocol = x.Protocol, listen = x.S.Listen, service = x.S.Service, allowedNetworks = x.S.AllowedNetworks, x.S.MaxConnections, x.S.ProxyProtocol, x.S.IdleTimeout, stats = Stats(x.Protocol, x.S.Service) }),
            runtime = (routing.Current.Snapshot.L4Services ?? []).Select(m => new
            {
                m.Protocol, m.Listen, m.Service, m.AllowedNetworks, m.MaxConnections, m.ProxyProtocol, m.IdleTimeout,
                openHere = open.Any(x => x.SameKey(m.Protocol, m.Listen)), stats = Stats(m.Protocol, m.Service),
            }),
            tlsPassthrough = endpoints.TlsPassthrough?.ToString(),
        }, Json);
    }

    private async Task<IResult> UpsertAsync(HttpRequest request)
    {
        var body = await request.ReadFromJsonAsync<Body>(Json);
        if (body is null)
        {
            return Results.Text("otun admin: the body is empty; send {\"protocol\":\"tcp\",\"listen\":\"0.0.0.0:5432\",\"service\":\"db\"}\n", statusCode: 400);
        }
        string protocol = (body.Protocol ?? "").ToLowerInvariant();
        if (protocol is not ("tcp" or "udp"))
        {
            return Results.Text($"otun admin: protocol '{body.Protocol}' must be tcp or udp\n", statusCode: 400);
        }
        var service = new L4ServiceOptions
        {
            Listen = body.Listen ?? "", Service = body.Service ?? "", AllowedNetworks = [.. body.AllowedNetworks ?? []],
            MaxConnections = body.MaxConnections ?? 1000, ProxyProtocol = body.ProxyProtocol ?? false, IdleTimeout = body.IdleTimeout,
        };
        var check = new L4Options();
        (protocol == "tcp" ? check.TcpServices : check.UdpServices).Add(service);
        var validation = new L4OptionsValidator().Validate(null, check);
        if (validation.Failed)
        {
            return Results.Text($"otun admin: {string.Join("; ", validation.Failures!).Replace($"Gateway:{(protocol == "tcp" ? "Tcp" : "Udp")}Services:0:", "", StringComparison.Ordinal)}\n", statusCode: 400);
        }
        var mapping = new L4Mapping(protocol, service.Listen, service.Service, service.AllowedNetworks.Count > 0 ? [.. service.AllowedNetworks] : null,
            service.MaxConnections, service.ProxyProtocol, service.IdleTimeout);
        await grains.GetGrain<IRoutingGrain>(RoutingGrain.DefaultKey).UpsertL4Service(mapping);
        return Results.Json(mapping, Json);
    }

    private async Task<IResult> RemoveAsync(HttpRequest request)
    {
        string protocol = (request.Query["protocol"].FirstOrDefault() ?? "").ToLowerInvariant();
        string listen = request.Query["listen"].FirstOrDefault() ?? "";
        if (protocol is not ("tcp" or "udp") || listen.Length == 0)
        {
            return Results.Text("otun admin: DELETE /api/l4/services needs ?protocol=tcp|udp&listen=ADDRESS:PORT\n", statusCode: 400);
        }
        bool removed = await grains.GetGrain<IRoutingGrain>(RoutingGrain.DefaultKey).RemoveL4Service(protocol, listen);
        return removed
            ? Results.Text($"otun admin: the {protocol} listener {listen} is removed on every gateway\n")
            : Results.Text($"otun admin: no run-time {protocol} listener {listen} (configured listeners change in the gateway's configuration)\n", statusCode: 404);
    }
}
