using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Protocol.L4;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.L4;

/// <summary>
/// The gateway's TCP service listeners (Gateway:TcpServices): each accepted connection is checked
/// against the service's AllowedNetworks and connection cap, then becomes one tunnel stream relayed
/// byte for byte (half-close and reset carried both ways) until either side ends it or it idles out.
/// </summary>
public sealed partial class TcpServices(L4Gate gate, L4Telemetry telemetry, L4Endpoints endpoints, IOptions<L4Options> options, ILogger<TcpServices> logger) : IHostedService
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<L4Listener> _configured = [];

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Bound here, before the host reports started: a port in use fails the start with a clear message.
        foreach (var service in options.Value.TcpServices)
        {
            _configured.Add(Open(service));
        }
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stop.Cancel();
        foreach (var listener in _configured)
        {
            await listener.DisposeAsync();
        }
    }

    /// <summary>Starts listening for one TCP service (configured, or a run-time mapping); dispose to stop (open connections go on).</summary>
    public L4Listener Open(L4ServiceOptions service)
    {
        var socket = L4Endpoints.Bind(service.Listen, SocketType.Stream, ProtocolType.Tcp, "Gateway:TcpServices", service.Service);
        socket.Listen(512);
        var bound = (IPEndPoint)socket.LocalEndPoint!;
        endpoints.Add("tcp", service.Service, bound);
        var cancel = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        var loop = AcceptLoopAsync(socket, service, VisitorAccess.ParseNetworks(service.AllowedNetworks), cancel.Token);
        return new L4Listener(socket, cancel, loop, () => endpoints.Remove("tcp", service.Service, bound));
    }

    private async Task AcceptLoopAsync(Socket listener, L4ServiceOptions service, System.Net.IPNetwork[] allowed, CancellationToken listening)
    {
        int active = 0;
        var idle = service.IdleTimeout ?? TimeSpan.FromHours(1);
        while (!listening.IsCancellationRequested)
        {
            Socket visitor;
            try
            {
                visitor = await listener.AcceptAsync(listening);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }
            var address = (visitor.RemoteEndPoint as IPEndPoint)?.Address;
            if (allowed.Length > 0 && !VisitorAccess.Contains(allowed, address?.IsIPv4MappedToIPv6 == true ? address.MapToIPv4() : address))
            {
                telemetry.Refused("tcp", service.Service);
                LogRefused(logger, service.Service, visitor.RemoteEndPoint?.ToString(), "its address is not in the service's AllowedNetworks");
                TcpRelay.Abort(visitor);
                continue;
            }
            if (Interlocked.Increment(ref active) > service.MaxConnections)
            {
                Interlocked.Decrement(ref active);
                telemetry.Refused("tcp", service.Service);
                LogRefused(logger, service.Service, visitor.RemoteEndPoint?.ToString(), $"the service is at its limit of {service.MaxConnections} connections (Gateway:TcpServices MaxConnections)");
                TcpRelay.Abort(visitor);
                continue;
            }
            _ = Task.Run(async () =>
            {
                try
                {
                    await RelayAsync(visitor, service.Service, service.Listen, service.ProxyProtocol, idle, ReadOnlyMemory<byte>.Empty, _stop.Token);
                }
                finally
                {
                    Interlocked.Decrement(ref active);
                }
            }, CancellationToken.None);
        }
    }

    /// <summary>Relays one visitor connection to <paramref name="service"/> (also used by TLS passthrough with the ClientHello already read as <paramref name="prefix"/>).</summary>
    public async Task RelayAsync(Socket visitor, string service, string host, bool proxyProtocol, TimeSpan idle, ReadOnlyMemory<byte> prefix, CancellationToken stoppingToken)
    {
        visitor.NoDelay = true;
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
        catch (Exception ex) when (ex is OperationCanceledException or Protocol.MuxStreamAbortedException or SocketException or ObjectDisposedException)
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

    [LoggerMessage(EventId = 1303, EventName = "L4Unexpected", Level = LogLevel.Error,
        Message = "A connection to service {Service} failed unexpectedly.")]
    private static partial void LogUnexpected(ILogger logger, string service, Exception exception);
}
