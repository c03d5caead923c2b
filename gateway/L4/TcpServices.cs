using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Mux.L4;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.L4;

/// <summary>
/// The gateway's TCP service listeners (Gateway:TcpServices): each accepted connection is checked
/// against the service's AllowedNetworks and connection cap, then becomes one tunnel stream relayed
/// byte for byte (half-close and reset carried both ways) until either side ends it or it idles out.
/// When the gateway stops, the listeners close (after Gateway:DrainDelay, as the HTTP ingress) and open
/// connections (TLS passthrough's too) get Gateway:ShutdownGracePeriod to end before they are reset. That
/// grace runs alongside the web server's (which keeps the agents' tunnels, and so these streams, up until its
/// own stop ends), not after it: the web server stops first and waits for its tunnels to close.
/// </summary>
public sealed partial class TcpServices(L4Gate gate, L4Telemetry telemetry, L4Endpoints endpoints, IOptions<L4Options> options,
    IOptions<GatewayOptions> gatewayOptions, Tunnel.GatewayDrain gatewayDrain, ILogger<TcpServices> logger) : ConfiguredListeners, IHostedLifecycleService
{
    private readonly OpenConnections _open = new();
    private Task? _closed;
    private Task<int>? _drain;

    protected override IReadOnlyList<L4ServiceOptions> Configured => options.Value.TcpServices;

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Runs before the web server stops (it stops first, and waits for the agents' tunnels): once the drain
    /// delay is over the listeners close and the open connections' grace period starts.
    /// </summary>
    public Task StoppingAsync(CancellationToken cancellationToken)
    {
        _closed = CloseAfterDrainDelayAsync(cancellationToken);
        _drain = DrainAsync(_closed, cancellationToken);
        return Task.CompletedTask;
    }

    /// <summary>Stops accepting (already done when the drain delay ended); the open connections drain alongside the HTTP requests (awaited in <see cref="StoppedAsync"/>).</summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_closed is null)
        {
            _closed = CloseListenersAsync();
            _drain = DrainAsync(_closed, cancellationToken);
        }
        await _closed;
    }

    private async Task CloseAfterDrainDelayAsync(CancellationToken cancellationToken)
    {
        await gatewayDrain.DelayOver.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await CloseListenersAsync();
    }

    private async Task<int> DrainAsync(Task closed, CancellationToken cancellationToken)
    {
        await closed;
        var grace = gatewayOptions.Value.ShutdownGracePeriod;
        if (_open.Count > 0)
        {
            LogDraining(logger, _open.Count, grace.TotalSeconds);
        }
        return await _open.DrainAsync(grace, cancellationToken);
    }

    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        if (_drain is not null)
        {
            // The drain ends at the same shutdown deadline (it resets what is left then).
            await ((Task)_drain).WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (_drain.IsCompletedSuccessfully && _drain.Result > 0)
            {
                LogDrainClosed(logger, _drain.Result);
            }
        }
        Stopping.Cancel();
    }

    public override L4Listener Open(L4ServiceOptions service)
    {
        var socket = L4Endpoints.Bind(service.Listen, SocketType.Stream, ProtocolType.Tcp, "Gateway:TcpServices", service.Service);
        socket.Listen(512);
        var bound = (IPEndPoint)socket.LocalEndPoint!;
        endpoints.Add("tcp", service.Service, bound);
        var cancel = CancellationTokenSource.CreateLinkedTokenSource(Stopping.Token);
        var allowed = VisitorAccess.ParseNetworks(service.AllowedNetworks);
        var idle = service.IdleTimeout ?? TimeSpan.FromHours(1);
        var loop = L4Accept.LoopAsync(socket, service.MaxConnections, "Gateway:TcpServices MaxConnections",
            visitor =>
            {
                var address = (visitor.RemoteEndPoint as IPEndPoint)?.Address;
                return allowed.Length > 0 && !VisitorAccess.Contains(allowed, address?.IsIPv4MappedToIPv6 == true ? address.MapToIPv4() : address)
                    ? "its address is not in the service's AllowedNetworks"
                    : null;
            },
            (visitor, reason) =>
            {
                telemetry.Refused("tcp", service.Service);
                LogRefused(logger, service.Service, visitor.RemoteEndPoint?.ToString(), reason);
            },
            visitor => RelayAsync(visitor, service.Service, service.Listen, service.ProxyProtocol, idle, ReadOnlyMemory<byte>.Empty, Stopping.Token),
            cancel.Token);
        return new L4Listener(socket, cancel, loop, () => endpoints.Remove("tcp", service.Service, bound));
    }

    /// <summary>Relays one visitor connection to <paramref name="service"/> (also used by TLS passthrough with the ClientHello already read as <paramref name="prefix"/>).</summary>
    public async Task RelayAsync(Socket visitor, string service, string host, bool proxyProtocol, TimeSpan idle, ReadOnlyMemory<byte> prefix, CancellationToken stoppingToken)
    {
        visitor.NoDelay = true;
        _open.Add(visitor);
        L4Session? session = null;
        string outcome = "failed";
        try
        {
            (session, string? refusal) = await gate.OpenAsync(service, VisitorKind.Tcp, host, visitor.RemoteEndPoint, visitor.LocalEndPoint, proxyProtocol, stoppingToken);
            if (session is null)
            {
                LogRefused(logger, service, visitor.RemoteEndPoint?.ToString(), refusal ?? "refused");
                TcpRelay.Abort(visitor);
                return;
            }
            if (!await gate.AwaitConnectedAsync(session))
            {
                LogNotConnected(logger, session.Entry.Id, service, session.Entry.Failure);
                TcpRelay.Abort(visitor);
                return;
            }
            var entry = session.Entry;
            if (!prefix.IsEmpty)
            {
                await session.Stream.SendDataAsync(prefix, endOfBody: false, session.Stream.Aborted);
                entry.BytesIn += prefix.Length;
            }
            var result = await TcpRelay.RunAsync(visitor, session.Stream, options.Value.TcpBufferSize, idle, ResetCode.Cancelled, "visitor",
                (up, down) =>
                {
                    // Each pump adds to its own direction only (one writer per field).
                    if (up > 0)
                    {
                        entry.BytesIn += up;
                    }
                    else
                    {
                        entry.BytesOut += down;
                    }
                });
            outcome = result.Failure is null ? "ok" : result.Failure.StartsWith("idle", StringComparison.Ordinal) ? "idle" : "reset";
            entry.Failure = result.Failure;
        }
        catch (Exception ex) when (ex is OperationCanceledException or Mux.MuxStreamAbortedException or SocketException or ObjectDisposedException)
        {
            TcpRelay.Abort(visitor);
            if (session is not null)
            {
                session.Entry.Failure ??= ex.Message;
            }
        }
        catch (Exception ex)
        {
            LogUnexpected(logger, service, ex);
            TcpRelay.Abort(visitor);
        }
        finally
        {
            _open.Remove(visitor);
            if (session is not null)
            {
                gate.Close(session, outcome);
            }
        }
    }

    [LoggerMessage(EventId = 1301, EventName = "L4Refused", Level = LogLevel.Information,
        Message = "Refused a connection to service {Service} from {Visitor}: {Reason}.")]
    internal static partial void LogRefused(ILogger logger, string service, string? visitor, string reason);

    [LoggerMessage(EventId = 1302, EventName = "L4NotConnected", Level = LogLevel.Warning,
        Message = "Connection {RequestId} to service {Service} closed: {Reason}; check the agent's backend.")]
    private static partial void LogNotConnected(ILogger logger, string requestId, string service, string? reason);

    [LoggerMessage(EventId = 1304, EventName = "L4Draining", Level = LogLevel.Information,
        Message = "Gateway stopping: TCP listeners closed; {Connections} open TCP connections may finish within {Seconds:0.#} s (Gateway:ShutdownGracePeriod).")]
    private static partial void LogDraining(ILogger logger, int connections, double seconds);

    [LoggerMessage(EventId = 1305, EventName = "L4DrainClosed", Level = LogLevel.Warning,
        Message = "Gateway stopping: reset {Connections} TCP connections still open after the grace period; raise Gateway:ShutdownGracePeriod if they need longer.")]
    private static partial void LogDrainClosed(ILogger logger, int connections);

    [LoggerMessage(EventId = 1303, EventName = "L4Unexpected", Level = LogLevel.Error,
        Message = "A connection to service {Service} failed unexpectedly.")]
    private static partial void LogUnexpected(ILogger logger, string service, Exception exception);
}
