using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.L4;

/// <summary>
/// Opens and closes the TCP/UDP listeners managed at run time (admin API <c>/api/l4/services</c>,
/// <c>otun admin l4</c>) as the routing snapshot pushed to every gateway changes. A mapping on the
/// protocol and address of a configured listener is ignored (configuration wins); a listener that
/// cannot bind (port in use) is logged and retried on the next snapshot.
/// </summary>
public sealed partial class L4RuntimeListeners(RoutingCache routing, TcpServices tcp, UdpServices udp, IOptions<L4Options> options,
    Tunnel.GatewayDrain gatewayDrain, ILogger<L4RuntimeListeners> logger) : IHostedService
{
    private readonly Dictionary<(string Protocol, string Listen), (L4Mapping Mapping, L4Listener Listener)> _open = [];
    private readonly SemaphoreSlim _gate = new(1, 1);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        routing.Changed += OnChanged;
        OnChanged(routing.Current.Snapshot);
        // Stops accepting when the drain delay is over, as the configured listeners (open connections get the grace period).
        _ = gatewayDrain.DelayOver.ContinueWith(_ => StopAsync(CancellationToken.None), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        routing.Changed -= OnChanged;
        // Even an abrupt stop (a cancelled token) closes the listeners: the gate is only held briefly.
        await _gate.WaitAsync(CancellationToken.None);
        try
        {
            foreach (var (_, (_, listener)) in _open)
            {
                await listener.DisposeAsync();
            }
            _open.Clear();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The run-time listeners open on this gateway now.</summary>
    public IReadOnlyCollection<L4Mapping> Open
    {
        get
        {
            _gate.Wait();
            try
            {
                return [.. _open.Values.Select(v => v.Mapping)];
            }
            finally
            {
                _gate.Release();
            }
        }
    }

    private void OnChanged(RoutingSnapshot snapshot) => _ = ApplyAsync(snapshot.L4Services ?? []);

    private async Task ApplyAsync(L4Mapping[] wanted)
    {
        await _gate.WaitAsync();
        try
        {
            var o = options.Value;
            var configured = o.TcpServices.Select(s => ("tcp", s.Listen)).Concat(o.UdpServices.Select(s => ("udp", s.Listen)))
                .ToHashSet();
            var want = wanted.Where(m => !configured.Contains((m.Protocol, m.Listen)))
                .GroupBy(m => (m.Protocol, m.Listen)).ToDictionary(g => g.Key, g => g.Last());
            foreach (var key in _open.Keys.ToArray())
            {
                if (!want.TryGetValue(key, out var mapping) || !Same(mapping, _open[key].Mapping))
                {
                    await _open[key].Listener.DisposeAsync();
                    _open.Remove(key);
                    LogClosed(logger, key.Protocol, key.Listen);
                }
            }
            foreach (var (key, mapping) in want)
            {
                if (_open.ContainsKey(key))
                {
                    continue;
                }
                var service = new L4ServiceOptions
                {
                    Listen = mapping.Listen, Service = mapping.Service, AllowedNetworks = [.. mapping.AllowedNetworks ?? []],
                    MaxConnections = mapping.MaxConnections, ProxyProtocol = mapping.ProxyProtocol, IdleTimeout = mapping.IdleTimeout,
                };
                try
                {
                    var listener = mapping.Protocol == "udp" ? udp.Open(service) : tcp.Open(service);
                    _open[key] = (mapping, listener);
                    LogOpened(logger, key.Protocol, key.Listen, mapping.Service);
                }
                catch (OptionsValidationException ex)
                {
                    LogCannotOpen(logger, key.Protocol, key.Listen, ex.Message);
                }
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    private static bool Same(L4Mapping a, L4Mapping b) =>
        a with { AllowedNetworks = null } == b with { AllowedNetworks = null }
        && (a.AllowedNetworks ?? []).SequenceEqual(b.AllowedNetworks ?? []);

    [LoggerMessage(EventId = 1321, EventName = "L4ListenerOpened", Level = LogLevel.Information,
        Message = "Listening on {Protocol} {Listen} for service {Service} (run-time mapping).")]
    private static partial void LogOpened(ILogger logger, string protocol, string listen, string service);

    [LoggerMessage(EventId = 1322, EventName = "L4ListenerClosed", Level = LogLevel.Information,
        Message = "Stopped listening on {Protocol} {Listen} (run-time mapping removed or changed).")]
    private static partial void LogClosed(ILogger logger, string protocol, string listen);

    [LoggerMessage(EventId = 1323, EventName = "L4ListenerFailed", Level = LogLevel.Warning,
        Message = "Cannot open the run-time {Protocol} listener {Listen}: {Reason}. It is retried on the next routing change; free the port or change the mapping (otun admin l4).")]
    private static partial void LogCannotOpen(ILogger logger, string protocol, string listen, string reason);
}
