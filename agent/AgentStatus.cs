using System.Collections.Concurrent;

namespace OrleansTunnel.Agent;

/// <summary>The agent's tunnels as seen from inside (readiness, tests, `ready` line in dev mode).</summary>
public sealed class AgentStatus
{
    private readonly ConcurrentDictionary<uint, TunnelInfo> _tunnels = new();
    private TaskCompletionSource _firstUp = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _connects;

    public sealed record TunnelInfo(uint Slot, string Gateway, string GatewayId, string SessionId, DateTimeOffset Since);

    /// <summary>Tunnels up now.</summary>
    public IReadOnlyCollection<TunnelInfo> Tunnels => [.. _tunnels.Values];

    /// <summary>Successful connections since start (first connect and reconnects).</summary>
    public long Connects => Interlocked.Read(ref _connects);

    /// <summary>Completes when at least one tunnel is up (renewed after all went down).</summary>
    public Task AnyUp => Volatile.Read(ref _firstUp).Task;

    public event Action<TunnelInfo>? Connected;

    internal void Up(TunnelInfo info)
    {
        _tunnels[info.Slot] = info;
        Interlocked.Increment(ref _connects);
        Volatile.Read(ref _firstUp).TrySetResult();
        Connected?.Invoke(info);
    }

    internal void Down(uint slot)
    {
        _tunnels.TryRemove(slot, out _);
        if (_tunnels.IsEmpty && Volatile.Read(ref _firstUp).Task.IsCompleted)
        {
            Interlocked.Exchange(ref _firstUp, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        }
    }
}
