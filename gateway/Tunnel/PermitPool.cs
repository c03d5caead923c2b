using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Tunnel;

/// <summary>Outcome of asking for a permit: a held permit, or the limit that refused it.</summary>
public readonly record struct PermitResult(PermitPool.Bucket? Bucket, string? LimitReached)
{
    public bool Ok => Bucket is not null;
}

/// <summary>
/// The gateway's share of each agent's concurrency budget. Permits are leased from the agent's
/// <see cref="IBackpressureGrain"/> in batches, handed to requests locally, and given back when idle;
/// leases are renewed periodically so a dead gateway's permits expire at the grain.
/// </summary>
public sealed partial class PermitPool(IGrainFactory grains, IOptions<GatewayOptions> options, OrleansTunnel.Gateway.Telemetry.GatewayTelemetry telemetry, ILogger<PermitPool> logger) : BackgroundService
{
    private readonly ConcurrentDictionary<(string Agent, string Service), Bucket> _buckets = new();

    /// <summary>Permits of one (agent, service) held by this gateway.</summary>
    public sealed class Bucket(string agent, string service)
    {
        internal readonly Lock Gate = new();
        internal int Available;
        internal int InUse;
        internal int Waiting;
        // The most permits in use at once since the background loop's last tick: idle permits up to this
        // level (plus a batch) stay in the bucket, so a closed loop's swings do not lease and return per burst.
        internal int PeakInUse;
        internal long LastUsedTicks = Environment.TickCount64;
        internal Task<PermitGrant>? PendingLease;
        internal bool Degraded;
        // Made only when a request waits for a permit to come back: a release with nobody waiting allocates nothing.
        internal TaskCompletionSource? Released;

        public string Agent { get; } = agent;
        public string Service { get; } = service;
    }

    /// <summary>Permits in use by requests on this gateway now (all agents).</summary>
    public int InUse => _buckets.Values.Sum(b => Volatile.Read(ref b.InUse));

    /// <summary>Permits leased but idle on this gateway now.</summary>
    public int Available => _buckets.Values.Sum(b => Volatile.Read(ref b.Available));

    /// <summary>Takes a permit for a request to <paramref name="agent"/>'s <paramref name="service"/>.</summary>
    public async ValueTask<PermitResult> AcquireAsync(string agent, string service, CancellationToken cancellationToken)
    {
        var o = options.Value;
        var bucket = _buckets.GetOrAdd((agent, service), k => new Bucket(k.Agent, k.Service));
        long deadline = o.QueueTimeout > TimeSpan.Zero ? Environment.TickCount64 + (long)o.QueueTimeout.TotalMilliseconds : 0;
        bool queued = false;
        try
        {
            while (true)
            {
                Task<PermitGrant> lease;
                Task released;
                lock (bucket.Gate)
                {
                    if (bucket.Available > 0)
                    {
                        bucket.Available--;
                        bucket.InUse++;
                        if (bucket.InUse > bucket.PeakInUse)
                        {
                            bucket.PeakInUse = bucket.InUse;
                        }
                        bucket.LastUsedTicks = Environment.TickCount64;
                        return new PermitResult(bucket, null);
                    }
                    // One lease call per bucket at a time; the others wait for its outcome.
                    bucket.PendingLease ??= LeaseAsync(bucket, o.PermitBatchSize);
                    lease = bucket.PendingLease;
                    released = (bucket.Released ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
                }
                var grant = await lease.WaitAsync(cancellationToken);
                lock (bucket.Gate)
                {
                    if (bucket.Available > 0)
                    {
                        continue;
                    }
                }
                if (grant.LimitReached is null)
                {
                    // The batch was granted but other requests took it first: lease again.
                    continue;
                }
                // Over the limit: fail fast, or wait (bounded) for a permit to come back.
                long now = Environment.TickCount64;
                if (deadline == 0 || now >= deadline)
                {
                    return new PermitResult(null, grant.LimitReached);
                }
                if (!queued)
                {
                    if (Interlocked.Increment(ref bucket.Waiting) > o.MaxQueuedPerAgent)
                    {
                        Interlocked.Decrement(ref bucket.Waiting);
                        return new PermitResult(null, grant.LimitReached + $", and {o.MaxQueuedPerAgent} requests already wait");
                    }
                    queued = true;
                }
                // A permit may come back here, or at the grain from another gateway: retry the lease now and then.
                await Task.WhenAny(released, Task.Delay(TimeSpan.FromMilliseconds(Math.Min(250, deadline - now)), cancellationToken));
                cancellationToken.ThrowIfCancellationRequested();
                if (Environment.TickCount64 >= deadline)
                {
                    return new PermitResult(null, grant.LimitReached + $" (waited {o.QueueTimeout.TotalSeconds:0.###} s)");
                }
            }
        }
        finally
        {
            if (queued)
            {
                Interlocked.Decrement(ref bucket.Waiting);
            }
        }
    }

    /// <summary>Gives a request's permit back (on every ending of the request).</summary>
    public void Release(Bucket bucket)
    {
        TaskCompletionSource? released;
        int surplus = 0;
        int batch = options.Value.PermitBatchSize;
        lock (bucket.Gate)
        {
            bucket.InUse--;
            bucket.Available++;
            bucket.LastUsedTicks = Environment.TickCount64;
            // Keep enough idle permits to climb back to the recent peak, plus a batch; return the rest.
            int headroom = Math.Max(0, bucket.PeakInUse - bucket.InUse);
            if (bucket.Available > 2 * batch + headroom)
            {
                surplus = bucket.Available - batch - headroom;
                bucket.Available -= surplus;
            }
            released = bucket.Released;
            bucket.Released = null;
        }
        released?.TrySetResult();
        if (surplus > 0)
        {
            _ = ReturnAsync(bucket, surplus);
        }
    }

    /// <summary>Held counts for tests and tools: (in use, leased but idle).</summary>
    public (int InUse, int Available) Counts(string agent, string service) =>
        _buckets.TryGetValue((agent, service), out var b) ? (Volatile.Read(ref b.InUse), Volatile.Read(ref b.Available)) : (0, 0);

    private async Task<PermitGrant> LeaseAsync(Bucket bucket, int batch)
    {
        await Task.Yield();
        var o = options.Value;
        PermitGrant grant;
        try
        {
            // Bounded: a grain whose silo just died would otherwise hold requests for the whole
            // Orleans response timeout.
            grant = await grains.GetGrain<IBackpressureGrain>(bucket.Agent).Lease(o.GatewayId, bucket.Service, 1, batch).WaitAsync(o.PermitLeaseTimeout);
            if (grant.Granted == 0 && await ReturnIdleOfOtherServicesAsync(bucket) > 0)
            {
                // Refused while this gateway itself held idle permits of the agent's other services (kept up to
                // their recent peak until a tick): those are back at the grain now, so ask once more.
                grant = await grains.GetGrain<IBackpressureGrain>(bucket.Agent).Lease(o.GatewayId, bucket.Service, 1, batch).WaitAsync(o.PermitLeaseTimeout);
            }
            telemetry.PermitsLeased(bucket.Agent, grant.Granted);
            if (bucket.Degraded)
            {
                bucket.Degraded = false;
                LogLeaseRecovered(logger, bucket.Agent);
            }
        }
        catch (Exception ex)
        {
            grant = Degrade(bucket, batch, ex is TimeoutException ? $"no answer within {o.PermitLeaseTimeout.TotalSeconds:0.###} s" : ex.Message);
        }
        // The grant joins the bucket here, whether or not the request that asked is still waiting.
        lock (bucket.Gate)
        {
            bucket.Available += grant.Granted;
            bucket.PendingLease = null;
        }
        return grant;
    }

    /// <summary>
    /// The cluster cannot answer (a silo died and failure detection has not finished, or Redis or the
    /// network is down): this gateway admits up to Gateway:DegradedPermitsPerAgent requests per agent and
    /// service on its own rather than refusing everything. The next renewal tells the grain what it holds.
    /// </summary>
    private PermitGrant Degrade(Bucket bucket, int batch, string error)
    {
        int allowance = options.Value.DegradedPermitsPerAgent;
        if (!bucket.Degraded)
        {
            bucket.Degraded = true;
            LogLeaseFailed(logger, bucket.Agent, error, allowance);
        }
        int held;
        lock (bucket.Gate)
        {
            held = bucket.InUse + bucket.Available;
        }
        int granted = Math.Max(0, Math.Min(batch, allowance - held));
        return granted > 0
            ? new PermitGrant(granted, null, allowance, allowance)
            : new PermitGrant(0, $"the cluster cannot grant permits right now ({error}) and this gateway already admits its degraded allowance of {allowance} requests to agent '{bucket.Agent}'", allowance, allowance);
    }

    /// <summary>Gives back the idle permits this gateway holds for the other services of <paramref name="bucket"/>'s agent.</summary>
    private async Task<int> ReturnIdleOfOtherServicesAsync(Bucket bucket)
    {
        int total = 0;
        foreach (var other in _buckets.Values)
        {
            if (ReferenceEquals(other, bucket) || !string.Equals(other.Agent, bucket.Agent, StringComparison.Ordinal))
            {
                continue;
            }
            int idle;
            lock (other.Gate)
            {
                if (other.PendingLease is not null)
                {
                    continue;
                }
                idle = other.Available;
                other.Available = 0;
            }
            if (idle > 0)
            {
                await ReturnAsync(other, idle);
                total += idle;
            }
        }
        return total;
    }

    private async Task ReturnAsync(Bucket bucket, int count)
    {
        try
        {
            await grains.GetGrain<IBackpressureGrain>(bucket.Agent).Return(options.Value.GatewayId, bucket.Service, count);
        }
        catch (Exception ex)
        {
            // The next renewal states what this gateway really holds.
            LogReturnFailed(logger, bucket.Agent, ex.Message);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        var tick = TimeSpan.FromMilliseconds(Math.Max(100, Math.Min(o.PermitIdleReturn.TotalMilliseconds, o.PermitRenewInterval.TotalMilliseconds) / 2));
        long lastRenew = Environment.TickCount64;
        using var timer = new PeriodicTimer(tick);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                long now = Environment.TickCount64;
                foreach (var bucket in _buckets.Values)
                {
                    int idle = 0;
                    lock (bucket.Gate)
                    {
                        // The peak is remembered for one tick: a gateway whose load fell returns the surplus then.
                        bucket.PeakInUse = bucket.InUse;
                        if (bucket.Available > 0 && now - bucket.LastUsedTicks >= o.PermitIdleReturn.TotalMilliseconds && bucket.PendingLease is null)
                        {
                            idle = bucket.Available;
                            bucket.Available = 0;
                        }
                    }
                    if (idle > 0)
                    {
                        await ReturnAsync(bucket, idle);
                    }
                }
                if (now - lastRenew >= o.PermitRenewInterval.TotalMilliseconds)
                {
                    lastRenew = now;
                    foreach (var agent in _buckets.Values.GroupBy(b => b.Agent))
                    {
                        var held = agent.ToDictionary(b => b.Service, b => Volatile.Read(ref b.InUse) + Volatile.Read(ref b.Available), StringComparer.Ordinal);
                        try
                        {
                            await grains.GetGrain<IBackpressureGrain>(agent.Key).Renew(o.GatewayId, held);
                        }
                        catch (Exception ex)
                        {
                            LogRenewFailed(logger, agent.Key, ex.Message);
                        }
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    [LoggerMessage(EventId = 520, EventName = "PermitLeaseFailed", Level = LogLevel.Warning,
        Message = "Could not lease permits for agent {AgentId}: {Error}. Until the cluster answers, this gateway admits up to {Allowance} concurrent requests to it on its own (Gateway:DegradedPermitsPerAgent); check the silos.")]
    private static partial void LogLeaseFailed(ILogger logger, string agentId, string error, int allowance);

    [LoggerMessage(EventId = 523, EventName = "PermitLeaseRecovered", Level = LogLevel.Information,
        Message = "Permits for agent {AgentId} are leased from the cluster again.")]
    private static partial void LogLeaseRecovered(ILogger logger, string agentId);

    [LoggerMessage(EventId = 521, EventName = "PermitReturnFailed", Level = LogLevel.Debug,
        Message = "Could not return permits of agent {AgentId}: {Error}; the next renewal corrects the count.")]
    private static partial void LogReturnFailed(ILogger logger, string agentId, string error);

    [LoggerMessage(EventId = 522, EventName = "PermitRenewFailed", Level = LogLevel.Warning,
        Message = "Could not renew permits of agent {AgentId}: {Error}. If this lasts longer than the lease timeout the grain frees them.")]
    private static partial void LogRenewFailed(ILogger logger, string agentId, string error);
}
