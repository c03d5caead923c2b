using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Agent.Health;

/// <summary>
/// Probes each service that has a HealthPath (GET through the backend's own pool) every HealthInterval;
/// after UnhealthyThreshold failures in a row the service is unhealthy, after HealthyThreshold good
/// probes in a row healthy again. Services start healthy. Each change raises <see cref="Changed"/>; the
/// <see cref="AgentWorker"/> sends the whole report on every tunnel then, and on each new tunnel.
/// </summary>
public sealed partial class HealthProber(IOptions<AgentOptions> options, BackendForwarder forwarder, ILogger<HealthProber> logger) : BackgroundService
{
    private readonly Dictionary<string, (bool Healthy, string Detail)> _state = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    /// <summary>Raised (on a probe's task) after a service changed state.</summary>
    public event Action? Changed;

    /// <summary>True when at least one service is probed.</summary>
    public bool Probing => options.Value.Services.Any(s => !string.IsNullOrEmpty(s.HealthPath));

    /// <summary>The report to send: every probed service and its state.</summary>
    public HealthReport Report()
    {
        var report = new HealthReport();
        lock (_gate)
        {
            foreach (var (name, (healthy, detail)) in _state)
            {
                report.Services.Add(new ServiceHealth { Name = name, Healthy = healthy, Detail = detail });
            }
        }
        return report;
    }

    /// <summary>A service's state (true when it is not probed).</summary>
    public bool IsHealthy(string service)
    {
        lock (_gate)
        {
            return !_state.TryGetValue(service, out var s) || s.Healthy;
        }
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var probed = options.Value.Services.Where(s => !string.IsNullOrEmpty(s.HealthPath)).ToArray();
        lock (_gate)
        {
            foreach (var s in probed)
            {
                _state[s.Name] = (true, "not probed yet");
            }
        }
        return Task.WhenAll(probed.Select(s => Task.Run(() => LoopAsync(s, stoppingToken), stoppingToken)));
    }

    private async Task LoopAsync(AgentServiceOptions service, CancellationToken stoppingToken)
    {
        int good = 0, bad = 0;
        var interval = service.HealthInterval > TimeSpan.Zero ? service.HealthInterval : TimeSpan.FromSeconds(5);
        using var timer = new PeriodicTimer(interval);
        do
        {
            var (ok, detail) = await ProbeAsync(service, stoppingToken);
            if (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            if (ok)
            {
                good++;
                bad = 0;
            }
            else
            {
                bad++;
                good = 0;
            }
            bool changed;
            lock (_gate)
            {
                var was = _state[service.Name];
                bool now = was.Healthy ? bad < Math.Max(1, service.UnhealthyThreshold) : good >= Math.Max(1, service.HealthyThreshold);
                changed = now != was.Healthy;
                _state[service.Name] = (now, detail);
            }
            if (changed)
            {
                bool healthy = IsHealthy(service.Name);
                if (healthy)
                {
                    LogHealthy(logger, service.Name, service.HealthPath!, good);
                }
                else
                {
                    LogUnhealthy(logger, service.Name, service.HealthPath!, bad, detail);
                }
                Changed?.Invoke();
            }
        }
        while (await NextTickAsync(timer, stoppingToken));
    }

    private static async Task<bool> NextTickAsync(PeriodicTimer timer, CancellationToken stoppingToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private async Task<(bool Ok, string Detail)> ProbeAsync(AgentServiceOptions service, CancellationToken stoppingToken)
    {
        var timeout = service.HealthTimeout > TimeSpan.Zero ? service.HealthTimeout : TimeSpan.FromSeconds(2);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        cts.CancelAfter(timeout);
        try
        {
            var send = forwarder.SendToBackendAsync(service.Name, service.HealthPath!, cts.Token);
            if (send is null)
            {
                return (false, $"health path '{service.HealthPath}' is not a valid target for this backend");
            }
            using var response = await send;
            int status = (int)response.StatusCode;
            return (status is >= 200 and < 400, $"status {status}");
        }
        catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
        {
            return (false, $"timed out after {timeout.TotalSeconds:0.###} s");
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException)
        {
            return (false, ex is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError } ? "connection refused or failed" : ex.GetType().Name);
        }
    }

    [LoggerMessage(EventId = 760, EventName = "ServiceUnhealthy", Level = LogLevel.Warning,
        Message = "Service '{Service}' is unhealthy: {Failures} probe(s) of {Path} failed in a row (last: {Detail}). The gateways send it no new request from this agent until it recovers; check the backend.")]
    private static partial void LogUnhealthy(ILogger logger, string service, string path, int failures, string detail);

    [LoggerMessage(EventId = 761, EventName = "ServiceHealthy", Level = LogLevel.Information,
        Message = "Service '{Service}' is healthy again ({Successes} good probe(s) of {Path} in a row); the gateways dispatch to it again.")]
    private static partial void LogHealthy(ILogger logger, string service, string path, int successes);
}
