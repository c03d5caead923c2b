using Microsoft.Extensions.Options;

namespace OrleansTunnel.Grains;

/// <inheritdoc cref="IRequestGrain"/>
public sealed class RequestGrain(IOptions<RequestRecordOptions> options) : Grain, IRequestGrain
{
    private RequestOpen? _open;
    private RequestState _state;
    private RequestOutcome? _outcome;
    private DateTimeOffset? _streamingAt;
    // One timer per activation: first the deadline of a promoted request's response head, then the
    // linger after it ended (or after a look-up) before the activation goes.
    private IGrainTimer? _timer;
    private bool _timedOutByDeadline;
    private bool _endedByVia;
    private int _fencedCompletions;

    public Task Open(RequestOpen request)
    {
        if (_open is not null)
        {
            return Task.CompletedTask;
        }
        _open = request;
        if (_state != RequestState.None)
        {
            // The ending overtook the open (both are sent without waiting).
            return Task.CompletedTask;
        }
        _state = RequestState.Open;
        var due = request.Deadline - DateTimeOffset.UtcNow;
        // If nobody completes the request (its gateway died), it still ends: timed out at its deadline.
        Schedule(due < TimeSpan.Zero ? TimeSpan.Zero : due);
        return Task.CompletedTask;
    }

    public Task MarkStreaming(DateTimeOffset at)
    {
        if (_state is RequestState.Open or RequestState.None)
        {
            _state = RequestState.Streaming;
            _streamingAt = at;
            // A streaming response (SSE, a large download) may legitimately outlive the head's deadline.
            _timer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }
        return Task.CompletedTask;
    }

    public Task<bool> Complete(RequestOutcome outcome)
    {
        // Unattributed completions come from a gateway that hosts its own silo (dev mode). A completion
        // that arrives before the open counts as the agent side's: the owner's later account wins.
        bool byOwner = outcome.ReportedBy is null || _open is not null;
        if (outcome.ReportedBy is { } reporter && _open is { } open)
        {
            // Fencing: only the gateway that opened the request, or the gateway holding the agent's
            // tunnel it was sent through, each in the incarnation recorded at open, may end it.
            byOwner = reporter == open.GatewayId && outcome.ReporterIncarnation == open.GatewayIncarnation;
            bool byVia = reporter == open.ViaGatewayId && outcome.ReporterIncarnation == open.ViaIncarnation;
            if (!byOwner && !byVia)
            {
                _fencedCompletions++;
                return Task.FromResult(false);
            }
        }
        // The owner's account wins over the grain's own guesses (its deadline, a lost owner) and over the
        // agent-side gateway's account (the owner knows whether the visitor got the answer); any other
        // ending is final.
        if (IsEnded(_state) && !_timedOutByDeadline && _state != RequestState.Lost && !(_endedByVia && byOwner))
        {
            return Task.FromResult(false);
        }
        _timedOutByDeadline = false;
        _endedByVia = !byOwner;
        _state = outcome.State;
        _outcome = outcome;
        LingerAfterEnd();
        return Task.FromResult(true);
    }

    public Task End(RequestOpen request, RequestOutcome outcome)
    {
        _open ??= request;
        return Complete(outcome);
    }

    public async Task<RequestSnapshot> GetSnapshot()
    {
        string id = this.GetPrimaryKeyString();
        // The owner's journal has the whole story (headers, timings); the grain's record is the fallback.
        if (!RequestIds.TryParse(id, out string gateway, out long incarnation, out _, out string? problem))
        {
            if (_state != RequestState.None)
            {
                return Own(id, "grain", null);
            }
            DeactivateOnIdle();
            return new RequestSnapshot(id, RequestState.None, null, null, null, Source: "none", Note: problem);
        }
        var answer = await GrainFactory.GetGrain<IGatewayJournalGrain>(gateway).Lookup(id, incarnation);
        if (answer.Reachable && answer.Snapshot is { } fresh)
        {
            // Whether the cluster holds a record of its own (the owner promoted it and the open landed).
            bool recorded = _state != RequestState.None;
            if (IsEnded(fresh.State) && _state == RequestState.None)
            {
                // Final: later look-ups are answered here even if the owner forgets it or goes.
                (_state, _open, _outcome, _streamingAt) = (fresh.State, fresh.Open, fresh.Outcome, fresh.ResponseStartedAt);
            }
            LingerAfterLookup();
            return fresh with { FencedCompletions = _fencedCompletions, HasGrain = recorded };
        }
        if (_state == RequestState.None)
        {
            DeactivateOnIdle();
            return new RequestSnapshot(id, RequestState.None, null, null, null, Source: "none", Note: answer.Reachable
                ? $"gateway '{gateway}' does not know this request: never made, or finished longer ago than it retains requests (Gateway:RequestRetention, Inspector:Capacity)"
                : $"the gateway that owned this request cannot tell: {answer.Problem}");
        }
        if (!answer.Reachable && !IsEnded(_state))
        {
            MarkLost(answer.Problem!);
        }
        return Own(id, "grain", answer.Reachable ? null : answer.Problem);
    }

    public async Task<CancelResult> Cancel(string reason)
    {
        if (IsEnded(_state))
        {
            return new CancelResult(CancelStatus.AlreadyEnded, $"the request already ended ({_state}, status {_outcome?.Status})", _state);
        }
        string id = this.GetPrimaryKeyString();
        if (!RequestIds.TryParse(id, out string gateway, out long incarnation, out _, out string? problem))
        {
            DeactivateOnIdle();
            return new CancelResult(CancelStatus.Unknown, problem!);
        }
        var result = await GrainFactory.GetGrain<IGatewayJournalGrain>(gateway).Cancel(id, incarnation, reason);
        if (result.Status == CancelStatus.OwnerUnreachable && _state is RequestState.Open or RequestState.Streaming)
        {
            MarkLost(result.Message);
        }
        if (_state == RequestState.None)
        {
            LingerAfterLookup();
        }
        return result;
    }

    private RequestSnapshot Own(string id, string source, string? note) =>
        new(id, _state, _open, _outcome, _streamingAt, _fencedCompletions, null, source, note, HasGrain: _open is not null);

    private void MarkLost(string problem)
    {
        _state = RequestState.Lost;
        _outcome = new RequestOutcome(RequestState.Lost, 0, $"the gateway that owned the request is gone before it ended: {problem}", 0, 0, DateTimeOffset.UtcNow);
        Schedule(options.Value.LookupLinger);
    }

    /// <summary>
    /// After the end: the activation stays Requests:EndedLinger, or goes at once when that is zero (the
    /// default; later look-ups reach the owner's journal, and the ended record, through a fresh activation).
    /// </summary>
    private void LingerAfterEnd()
    {
        var linger = options.Value.EndedLinger;
        if (linger > TimeSpan.Zero)
        {
            Schedule(linger);
            return;
        }
        _timer?.Dispose();
        _timer = null;
        DeactivateOnIdle();
    }

    private void LingerAfterLookup()
    {
        if (_state is RequestState.None || IsEnded(_state))
        {
            Schedule(options.Value.LookupLinger);
        }
    }

    private async Task OnTimer(CancellationToken cancellationToken)
    {
        if (_state == RequestState.Open)
        {
            // The head's deadline passed with no ending here. Ask the owner before guessing: an ending
            // may have reached an earlier activation (one-way calls are not ordered, so a late open can
            // re-activate an ended request), or the owner may be gone.
            var answer = RequestIds.TryParse(this.GetPrimaryKeyString(), out string gateway, out long incarnation, out _, out _)
                ? await GrainFactory.GetGrain<IGatewayJournalGrain>(gateway).Lookup(this.GetPrimaryKeyString(), incarnation)
                : new OwnerAnswer(false, "the id names no gateway", null);
            if (_state != RequestState.Open)
            {
                return;
            }
            if (answer.Reachable && answer.Snapshot is { } fresh && IsEnded(fresh.State))
            {
                (_state, _outcome) = (fresh.State, fresh.Outcome);
            }
            else if (answer.Reachable && answer.Snapshot is null)
            {
                // The owner no longer retains it: it ended long ago; nothing true to record.
                _state = RequestState.None;
                DeactivateOnIdle();
                return;
            }
            else
            {
                _state = RequestState.TimedOut;
                _timedOutByDeadline = true;
                _outcome = new RequestOutcome(RequestState.TimedOut, 504, answer.Reachable
                    ? "no response head before the request's deadline"
                    : $"no completion before the request's deadline, and its gateway cannot tell: {answer.Problem}", 0, 0, DateTimeOffset.UtcNow);
            }
            LingerAfterEnd();
        }
        else if (_state != RequestState.Streaming)
        {
            _timer?.Dispose();
            _timer = null;
            DeactivateOnIdle();
        }
    }

    private void Schedule(TimeSpan due)
    {
        if (_timer is null)
        {
            _timer = this.RegisterGrainTimer(OnTimer, new GrainTimerCreationOptions(due, Timeout.InfiniteTimeSpan) { KeepAlive = true });
            return;
        }
        _timer.Change(due, Timeout.InfiniteTimeSpan);
    }

    private static bool IsEnded(RequestState state) =>
        state is RequestState.Completed or RequestState.Failed or RequestState.Cancelled or RequestState.TimedOut or RequestState.Lost;
}
