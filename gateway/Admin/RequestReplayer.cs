using System.Text;
using Microsoft.AspNetCore.Http;
using OrleansTunnel.Gateway.Requests;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Admin;

/// <summary>
/// POST /api/requests/{id}/replay: sends a request again, as it was or edited, through this gateway's
/// own ingress, so it takes the whole path again (routing, access, whichever gateway holds an agent
/// for the service now). The new request is linked to the old one (<see cref="ReplayMarker"/>).
/// </summary>
public sealed class RequestReplayer(IGrainFactory grains, GatewayEndpoints endpoints, ReplayMarker marker)
{
    /// <summary>What may be changed before a replay; null fields keep the original.</summary>
    public sealed record Edit(string? Method = null, string? Path = null, Dictionary<string, string>? Headers = null, string? Body = null);

    /// <summary>Header fields a replay never copies from the record: the gateway sets them again, or they describe the old body.</summary>
    private static readonly HashSet<string> NotCopied = new(StringComparer.OrdinalIgnoreCase)
    {
        "Host", "Content-Length", "Transfer-Encoding", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host",
        "traceparent", "tracestate", "Connection", "Upgrade", "Expect",
    };

    private static readonly HttpClient Client = new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, UseCookies = false })
    {
        Timeout = TimeSpan.FromSeconds(100),
    };

    public async Task<IResult> ReplayAsync(string id, Edit? edit, CancellationToken cancellationToken)
    {
        var snapshot = await grains.GetGrain<IRequestGrain>(id).GetSnapshot();
        if (snapshot.State == RequestState.None || snapshot.Open is not { } open)
        {
            return Results.Text($"otun admin: request '{id}' is not known, so it cannot be replayed: {snapshot.Note}\n", statusCode: 404);
        }
        if (open.Protocol is "websocket" or "grpc" or "tcp" or "udp")
        {
            return Results.Text($"otun admin: request '{id}' is a {open.Protocol} call; only HTTP requests can be replayed\n", statusCode: 409);
        }
        long bytesIn = Math.Max(snapshot.Progress?.BytesIn ?? 0, snapshot.Outcome?.BytesIn ?? 0);
        // The original body, when the route captured all of it.
        byte[]? captured = snapshot.RequestBody is { } rb && rb.Bytes.Length == rb.Total && rb.Note is null ? rb.Bytes : null;
        if (bytesIn > 0 && edit?.Body is null && captured is null)
        {
            return Results.Text($"otun admin: request '{id}' had a body of {bytesIn} bytes, which was not captured whole (route Capture:Bodies, Capture:MaxBytes); give \"body\" to replay it\n", statusCode: 409);
        }
        if (endpoints.IngressPort == 0)
        {
            return Results.Text("otun admin: this gateway has no plain HTTP ingress (Gateway:Ingress) to replay through\n", statusCode: 503);
        }
        string target = edit?.Path ?? snapshot.Target ?? open.Path;
        if (!target.StartsWith('/'))
        {
            return Results.Text($"otun admin: path '{target}' must start with '/'\n", statusCode: 400);
        }
        using var request = new HttpRequestMessage(new HttpMethod(edit?.Method ?? open.Method), $"http://127.0.0.1:{endpoints.IngressPort}{target}");
        request.Headers.Host = open.Authority;
        var fields = snapshot.RequestHeaders ?? [];
        var contentFields = new List<(string, string)>();
        for (int i = 0; i + 1 < fields.Length; i += 2)
        {
            string name = fields[i], value = fields[i + 1];
            if (NotCopied.Contains(name) || value == InspectorOptions.Redacted || (edit?.Headers?.ContainsKey(name) ?? false))
            {
                continue;
            }
            if (!request.Headers.TryAddWithoutValidation(name, value))
            {
                contentFields.Add((name, value));
            }
        }
        foreach (var (name, value) in edit?.Headers ?? [])
        {
            if (!NotCopied.Contains(name) && !request.Headers.TryAddWithoutValidation(name, value))
            {
                contentFields.Add((name, value));
            }
        }
        byte[]? content = edit?.Body is { } body ? Encoding.UTF8.GetBytes(body) : bytesIn > 0 ? captured : null;
        if (content is not null)
        {
            request.Content = new ByteArrayContent(content);
            foreach (var (name, value) in contentFields)
            {
                request.Content.Headers.TryAddWithoutValidation(name, value);
            }
        }
        request.Headers.TryAddWithoutValidation(ReplayMarker.OfHeader, id);
        request.Headers.TryAddWithoutValidation(ReplayMarker.KeyHeader, marker.Key);
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        string? newId = response.Headers.TryGetValues("X-Tunnel-Request-Id", out var ids) ? ids.FirstOrDefault() : null;
        if (newId is null)
        {
            // The gateway answered itself (no route, access, a limit): say what it said.
            string said = await response.Content.ReadAsStringAsync(cancellationToken);
            return Results.Text($"otun admin: the replay of '{id}' was answered {(int)response.StatusCode} by the gateway before reaching an agent: {said.Trim()}\n", statusCode: 502);
        }
        // The answer itself is the backend's business; the inspector shows it from the new request's record.
        await response.Content.CopyToAsync(Stream.Null, cancellationToken);
        return Results.Json(new { requestId = newId, replayOf = id, status = (int)response.StatusCode });
    }
}
