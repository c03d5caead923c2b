using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace OrleansTunnel.Grains;

/// <inheritdoc cref="IBackpressureGrain"/>
public sealed partial class BackpressureGrain(IOptions<BackpressureOptions> options, ILogger<BackpressureGrain> logger) : Grain, IBackpressureGrain
{
    private readonly Dictionary<string, GatewayLease> _gateways = new(StringComparer.Ordinal);
    private IGrainTimer? _expiry;
    private long _rejections;

    private sealed class GatewayLease
    {
        public Dictionary<string, int> Held { get; } = new(StringComparer.Ordinal);
        public DateTimeOffset LastSeen { get; set; }
    }

    private BackpressureOptions Limits => options.Value;

    public Task<PermitGrant> Lease(string gatewayId, string service, int need, int want)
    {
        var lease = Touch(gatewayId);
        int agentFree = Limits.MaxConcurrentPerAgent - _gateways.Values.Sum(g => g.Held.Values.Sum());
        int serviceFree = Limits.MaxConcurrentPerService - _gateways.Values.Sum(g => g.Held.GetValueOrDefault(service));
        int granted = Math.Max(0, Math.Min(want, Math.Min(agentFree, serviceFree)));
        if (granted < need)
        {
            _rejections++;
            string limit = agentFree <= serviceFree
                ? $"agent '{this.GetPrimaryKeyString()}' is at its limit of {Limits.MaxConcurrentPerAgent} concurrent requests"
                : $"service '{service}' on agent '{this.GetPrimaryKeyString()}' is at its limit of {Limits.MaxConcurrentPerService} concurrent requests";
            return Task.FromResult(new PermitGrant(0, limit, Limits.MaxConcurrentPerAgent, Limits.MaxConcurrentPerService));
        }
        lease.Held[service] = lease.Held.GetValueOrDefault(service) + granted;
        return Task.FromResult(new PermitGrant(granted, null, Limits.MaxConcurrentPerAgent, Limits.MaxConcurrentPerService));
    }

    public Task Return(string gatewayId, string service, int count)
    {
        var lease = Touch(gatewayId);
        int held = lease.Held.GetValueOrDefault(service) - count;
        if (held > 0)
        {
            lease.Held[service] = held;
        }
        else
        {
            lease.Held.Remove(service);
        }
        return Task.CompletedTask;
    }

    public Task Renew(string gatewayId, Dictionary<string, int> heldByService)
    {
        var lease = Touch(gatewayId);
        lease.Held.Clear();
        foreach (var (service, count) in heldByService)
        {
            if (count > 0)
            {
                lease.Held[service] = count;
            }
        }
        return Task.CompletedTask;
    }

    public Task<BackpressureSnapshot> GetSnapshot()
    {
        var byService = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (service, count) in _gateways.Values.SelectMany(g => g.Held))
        {
            byService[service] = byService.GetValueOrDefault(service) + count;
        }
        var byGateway = _gateways.ToDictionary(g => g.Key, g => g.Value.Held.Values.Sum(), StringComparer.Ordinal);
        return Task.FromResult(new BackpressureSnapshot(this.GetPrimaryKeyString(), byService.Values.Sum(), byService, byGateway,
            Limits.MaxConcurrentPerAgent, Limits.MaxConcurrentPerService, _rejections));
    }

    private GatewayLease Touch(string gatewayId)
    {
        if (!_gateways.TryGetValue(gatewayId, out var lease))
        {
            _gateways[gatewayId] = lease = new GatewayLease();
        }
        lease.LastSeen = DateTimeOffset.UtcNow;
        var period = Limits.LeaseTimeout / 3;
        _expiry ??= this.RegisterGrainTimer(ExpireLeases, new GrainTimerCreationOptions(period, period) { KeepAlive = true });
        return lease;
    }

    private Task ExpireLeases(CancellationToken cancellationToken)
    {
        var cutoff = DateTimeOffset.UtcNow - Limits.LeaseTimeout;
        foreach (var (gatewayId, lease) in _gateways.Where(g => g.Value.LastSeen < cutoff).ToList())
        {
            int held = lease.Held.Values.Sum();
            if (held > 0)
            {
                LogLeaseExpired(logger, this.GetPrimaryKeyString(), gatewayId, held);
            }
            _gateways.Remove(gatewayId);
        }
        if (_gateways.Count == 0)
        {
            _expiry?.Dispose();
            _expiry = null;
            DeactivateOnIdle();
        }
        return Task.CompletedTask;
    }

    [LoggerMessage(EventId = 210, EventName = "LeaseExpired", Level = LogLevel.Warning,
        Message = "Gateway {GatewayId} stopped renewing its {Held} permits for agent {AgentId}; they are free again (the gateway is presumed dead).")]
    private static partial void LogLeaseExpired(ILogger logger, string agentId, string gatewayId, int held);
}
