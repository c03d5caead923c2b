namespace OrleansTunnel.Grains;

/// <inheritdoc cref="IRequestGrain"/>
public sealed class RequestGrain : Grain, IRequestGrain
{
    /// <summary>
    /// How long an ended request stays readable by tools before it deactivates. Short, because at
    /// tens of thousands of requests a second every second of linger is that many live activations.
    /// </summary>
    public static readonly TimeSpan EndedLinger = TimeSpan.FromSeconds(1);

    private RequestOpen? _open;
    private RequestState _state;
    private RequestOutcome? _outcome;
    private DateTimeOffset? _streamingAt;
    // One timer per request: first the deadline of its response head, then the linger after it ended.
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
            // The agent side's completion overtook the open (both are sent without waiting).
            return Task.CompletedTask;
        }
        _state = RequestState.Open;
        var due = request.Deadline - DateTimeOffset.UtcNow;
        // If nobody completes the request (its gateway died), it still ends: timed out at its deadline.
        _timer = this.RegisterGrainTimer(OnTimer, new GrainTimerCreationOptions(due < TimeSpan.Zero ? TimeSpan.Zero : due, Timeout.InfiniteTimeSpan) { KeepAlive = true });
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
        // The owner's account wins over the grain's own deadline guess (a slow visitor may drain a
        // small answer after the head deadline passed) and over the agent-side gateway's account (the
        // owner knows whether the visitor got the answer); any other ending is final.
        if (IsEnded(_state) && !_timedOutByDeadline && !(_endedByVia && byOwner))
        {
            return Task.FromResult(false);
        }
        _timedOutByDeadline = false;
        _endedByVia = !byOwner;
        _state = outcome.State;
        _outcome = outcome;
        Linger();
        return Task.FromResult(true);
    }

    public Task End(RequestOpen request, RequestOutcome outcome)
    {
        if (_open is null)
        {
            _open = request;
        }
        return Complete(outcome);
    }

    public Task<RequestSnapshot> GetSnapshot() =>
        Task.FromResult(new RequestSnapshot(this.GetPrimaryKeyString(), _state, _open, _outcome, _streamingAt, _fencedCompletions));

    private Task OnTimer(CancellationToken cancellationToken)
    {
        if (IsEnded(_state))
        {
            _timer?.Dispose();
            _timer = null;
            DeactivateOnIdle();
        }
        else if (_state == RequestState.Open)
        {
            _state = RequestState.TimedOut;
            _timedOutByDeadline = true;
            _outcome = new RequestOutcome(RequestState.TimedOut, 504, "no completion before the request's deadline", 0, 0, DateTimeOffset.UtcNow);
            Linger();
        }
        return Task.CompletedTask;
    }

    private void Linger()
    {
        if (_timer is null)
        {
            // Ended before it was opened (one-way calls are not ordered): linger all the same, so
            // the late open finds the ended record instead of starting a new one.
            _timer = this.RegisterGrainTimer(OnTimer, new GrainTimerCreationOptions(EndedLinger, Timeout.InfiniteTimeSpan) { KeepAlive = true });
            return;
        }
        _timer.Change(EndedLinger, Timeout.InfiniteTimeSpan);
    }

    private static bool IsEnded(RequestState state) =>
        state is RequestState.Completed or RequestState.Failed or RequestState.Cancelled or RequestState.TimedOut;
}
