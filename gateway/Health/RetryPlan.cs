using Microsoft.AspNetCore.Http;
using OrleansTunnel.Gateway.Cluster;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.Health;

/// <summary>
/// Whether, and where, one visitor request may be sent a second time. A request is retried at most once,
/// on another agent session: another agent's when one is usable (a killed agent's other connections die
/// with the one that failed), else another session of the same agent. Only when nothing of the answer
/// reached the visitor yet, and only when the backend cannot have acted on it or acting twice is harmless:
/// <list type="bullet">
/// <item>the stream could not be opened (the session was closing): always;</item>
/// <item>the agent or the holding gateway refused it before the backend saw it (Refused, UnknownService):
/// when its body can be sent again (no body, or buffered);</item>
/// <item>the backend refused the connection or the session died (BackendUnavailable, stream lost), before
/// the answer's head or after it but before the gateway wrote any of it to the visitor: only for an
/// idempotent method (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) whose body can be sent again.</item>
/// </list>
/// Never after a timeout, a protocol error, an operator's cancel, or once the visitor's answer started.
/// </summary>
/// <param name="choose">Chooses a session for the service, skipping the given sessions and, when not null, every session of the given agent.</param>
public sealed class RetryPlan(string service, Func<ISet<string>, string?, ValueTask<DispatchTarget?>> choose)
{
    private readonly HashSet<string> _failed = new(StringComparer.Ordinal);

    /// <summary>The request has no body, or its body is held whole in <see cref="Body"/>.</summary>
    public required bool Replayable { get; init; }

    public required bool Idempotent { get; init; }

    /// <summary>The buffered body of an idempotent request (sent again on the retry).</summary>
    public byte[]? Body { get; init; }

    public string Service => service;

    /// <summary>True once the one retry was planned.</summary>
    public bool Used { get; private set; }

    /// <summary>Where the retry goes (set by <see cref="TryPlanAsync"/>; taken by the forwarder).</summary>
    public DispatchTarget? Next { get; private set; }

    /// <summary>Why the first path failed (metrics label and journal note).</summary>
    public string? Reason { get; private set; }

    /// <summary>The request id of the failed attempt.</summary>
    public string? FailedRequestId { get; private set; }

    public static bool IsIdempotent(string method) =>
        HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method) || HttpMethods.IsTrace(method)
        || HttpMethods.IsPut(method) || HttpMethods.IsDelete(method);

    /// <summary>Whether a failure with this reset (null: the stream ended with nothing) allows the retry.</summary>
    public bool Allows(Reset? reset, bool headSent) => !Used && (!headSent || (reset?.Code ?? ResetCode.Internal) switch
    {
        ResetCode.Refused or ResetCode.UnknownService => Replayable,
        ResetCode.BackendUnavailable or ResetCode.Internal or ResetCode.Unspecified => Replayable && Idempotent,
        _ => false,
    });

    /// <summary>
    /// Whether an answer whose head arrived and then broke off (<paramref name="reset"/>) may be retried:
    /// the caller checks that nothing of it was written to the visitor yet.
    /// </summary>
    private bool AllowsAfterAnswerHead(Reset reset) => !Used && Replayable && Idempotent
        && reset.Code is ResetCode.BackendUnavailable or ResetCode.Internal or ResetCode.Unspecified;

    /// <summary>
    /// After a failure on <paramref name="sessionId"/> of <paramref name="agentId"/>: chooses another
    /// session (another agent's first); true when the request goes there (the caller then writes nothing
    /// to the visitor). <paramref name="answerHead"/>: the answer's head had arrived (see <see cref="AllowsAfterAnswerHead"/>).
    /// </summary>
    public async ValueTask<bool> TryPlanAsync(string sessionId, string agentId, string? requestId, Reset? reset, bool headSent, bool answerHead = false)
    {
        if (answerHead ? reset is null || !AllowsAfterAnswerHead(reset) : !Allows(reset, headSent))
        {
            return false;
        }
        _failed.Add(sessionId);
        var next = await choose(_failed, agentId) ?? await choose(_failed, null);
        if (next is null)
        {
            return false;
        }
        Used = true;
        Next = next;
        FailedRequestId = requestId;
        Reason = !headSent ? "stream-not-opened" : answerHead ? "answer-lost" : (reset?.Code ?? ResetCode.Internal) switch
        {
            ResetCode.BackendUnavailable => "backend-unavailable",
            ResetCode.Refused => "refused",
            ResetCode.UnknownService => "unknown-service",
            _ => "session-lost",
        };
        return true;
    }

    /// <summary>Takes the planned target (once).</summary>
    public DispatchTarget? TakeNext()
    {
        var next = Next;
        Next = null;
        return next;
    }

    /// <summary>Puts the buffered body back for the next attempt.</summary>
    public void RewindBody(HttpRequest request)
    {
        if (Body is not null)
        {
            request.Body = new MemoryStream(Body, writable: false);
        }
    }

    /// <summary>
    /// The plan for a request, or null when retries are off. An idempotent request with a small body of known
    /// length is read whole first (Resilience:RetryBufferBytes), so it can be sent again.
    /// </summary>
    public static async Task<RetryPlan?> ForAsync(HttpContext context, bool hasBody, ResilienceOptions o, Func<ISet<string>, string?, ValueTask<DispatchTarget?>> choose, string service)
    {
        if (!o.Retry)
        {
            return null;
        }
        var request = context.Request;
        bool idempotent = IsIdempotent(request.Method);
        if (!hasBody)
        {
            return new RetryPlan(service, choose) { Replayable = true, Idempotent = idempotent };
        }
        if (idempotent && request.ContentLength is long length && length <= o.RetryBufferBytes)
        {
            var body = new byte[length];
            await request.Body.ReadExactlyAsync(body, context.RequestAborted);
            var plan = new RetryPlan(service, choose) { Replayable = true, Idempotent = true, Body = body };
            plan.RewindBody(request);
            return plan;
        }
        return new RetryPlan(service, choose) { Replayable = false, Idempotent = idempotent };
    }
}
