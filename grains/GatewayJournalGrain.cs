using Microsoft.Extensions.Options;
using Orleans.Concurrency;

namespace OrleansTunnel.Grains;

/// <inheritdoc cref="IGatewayJournalGrain"/>
[Reentrant]
public sealed class GatewayJournalGrain(IOptions<RequestRecordOptions> options) : Grain, IGatewayJournalGrain
{
    private long _incarnation;
    private IRequestJournalObserver? _journal;

    public Task Register(long incarnation, IRequestJournalObserver journal)
    {
        if (incarnation >= _incarnation)
        {
            _incarnation = incarnation;
            _journal = journal;
        }
        return Task.CompletedTask;
    }

    public Task Unregister(long incarnation)
    {
        if (incarnation == _incarnation)
        {
            _journal = null;
        }
        return Task.CompletedTask;
    }

    public async Task<OwnerAnswer> Lookup(string requestId, long incarnation)
    {
        if (Unavailable(incarnation) is { } problem)
        {
            return new OwnerAnswer(false, problem, null);
        }
        try
        {
            var snapshot = await _journal!.Lookup(requestId).WaitAsync(options.Value.OwnerTimeout);
            return new OwnerAnswer(true, null, snapshot);
        }
        catch (Exception ex)
        {
            return new OwnerAnswer(false, Unreachable(ex), null);
        }
    }

    public async Task<CancelResult> Cancel(string requestId, long incarnation, string reason)
    {
        if (Unavailable(incarnation) is { } problem)
        {
            return new CancelResult(CancelStatus.OwnerUnreachable, problem);
        }
        try
        {
            return await _journal!.Cancel(requestId, reason).WaitAsync(options.Value.OwnerTimeout);
        }
        catch (Exception ex)
        {
            return new CancelResult(CancelStatus.OwnerUnreachable, Unreachable(ex));
        }
    }

    public async Task<RequestSummary[]?> List(RequestQuery query)
    {
        if (_journal is null)
        {
            return null;
        }
        try
        {
            return await _journal.List(query).WaitAsync(options.Value.OwnerTimeout);
        }
        catch (Exception)
        {
            return null;
        }
    }

    private string? Unavailable(long incarnation)
    {
        string gateway = this.GetPrimaryKeyString();
        if (_journal is null)
        {
            return $"gateway '{gateway}' is not registered in the cluster (stopped, killed, or not yet started)";
        }
        if (incarnation != _incarnation)
        {
            return $"gateway '{gateway}' restarted since (incarnation {_incarnation:x}, the request's is {incarnation:x}); the request's journal died with the old process";
        }
        return null;
    }

    private string Unreachable(Exception ex) =>
        ex is TimeoutException
            ? $"gateway '{this.GetPrimaryKeyString()}' did not answer within {options.Value.OwnerTimeout.TotalSeconds:0.#} s (Requests:OwnerTimeout)"
            : $"gateway '{this.GetPrimaryKeyString()}' could not be reached: {ex.Message}";
}
