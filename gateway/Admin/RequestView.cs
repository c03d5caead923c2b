using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Admin;

/// <summary>A request as the admin API shows it (flat, with phase names people read).</summary>
public sealed record RequestView(
    string RequestId,
    string State,
    string Source,
    string? Note,
    string? Gateway,
    string? Agent,
    string? Session,
    string? ViaGateway,
    string? Service,
    string? Method,
    string? Host,
    string? Path,
    string? Protocol,
    DateTimeOffset? OpenedAt,
    double? QueuedMs,
    DateTimeOffset? HeadSentAt,
    DateTimeOffset? ResponseHeadAt,
    DateTimeOffset? EndedAt,
    double? DurationMs,
    int? Status,
    long BytesIn,
    long BytesOut,
    string? Error,
    bool HasGrain,
    RequestView.Field[]? RequestHeaders,
    RequestView.Field[]? ResponseHeaders,
    string? Target,
    string? ReplayOf,
    RequestView.Body? RequestBody,
    RequestView.Body? ResponseBody)
{
    public static RequestView From(RequestSnapshot s)
    {
        var open = s.Open;
        var progress = s.Progress;
        var outcome = s.Outcome;
        var ended = outcome?.EndedAt ?? progress?.LastByteAt;
        return new RequestView(
            s.RequestId, s.State.ToString().ToLowerInvariant(), s.Source, s.Note,
            open?.GatewayId, open?.AgentId, open?.SessionId, open?.ViaGatewayId, open?.Service, open?.Method, open?.Authority, open?.Path, open?.Protocol,
            open?.OpenedAt, progress?.QueuedMs, progress?.HeadSentAt, progress?.ResponseHeadAt ?? s.ResponseStartedAt, ended,
            open is null ? null : ((ended ?? DateTimeOffset.UtcNow) - open.OpenedAt).TotalMilliseconds,
            outcome?.Status is > 0 ? outcome.Status : progress?.Status is > 0 ? progress.Status : null,
            Math.Max(progress?.BytesIn ?? 0, outcome?.BytesIn ?? 0), Math.Max(progress?.BytesOut ?? 0, outcome?.BytesOut ?? 0),
            outcome?.Error, s.HasGrain, Fields(s.RequestHeaders), Fields(s.ResponseHeaders), s.Target, s.ReplayOf, Body.From(s.RequestBody), Body.From(s.ResponseBody));
    }

    /// <summary>A captured body: its bytes (base64), the whole body's size, and why less is shown.</summary>
    public sealed record Body(string Base64, int Kept, long Total, string? ContentType, string? Note)
    {
        public static Body? From(CapturedBody? c) =>
            c is null ? null : new Body(Convert.ToBase64String(c.Bytes), c.Bytes.Length, c.Total, c.ContentType, c.Note);
    }

    /// <summary>One header field.</summary>
    public sealed record Field(string Name, string Value);

    private static Field[]? Fields(string[]? flat)
    {
        if (flat is null)
        {
            return null;
        }
        var fields = new Field[flat.Length / 2];
        for (int i = 0; i < fields.Length; i++)
        {
            fields[i] = new Field(flat[2 * i], flat[2 * i + 1]);
        }
        return fields;
    }
}
