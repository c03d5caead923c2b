using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Mux.L4;

namespace OrleansTunnel.Gateway.L4;

/// <summary>
/// The shared TLS passthrough port (Gateway:TlsPassthrough): reads the visitor's ClientHello, matches
/// its SNI name against the host routes (exact and wildcard, the route's AllowedNetworks applying) and
/// relays the still-encrypted connection to the route's service, whose agent exposes a tcp:// backend
/// that terminates TLS itself with its own certificate.
/// </summary>
public sealed class TlsPassthrough(TcpServices tcp, RoutingCache routing, L4Telemetry telemetry, L4Endpoints endpoints, IOptions<L4Options> options,
    Tunnel.GatewayDrain gatewayDrain, ILogger<TlsPassthrough> logger) : BackgroundService
{
    private Socket? _listener;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        if (!string.IsNullOrWhiteSpace(options.Value.TlsPassthrough))
        {
            _listener = L4Endpoints.Bind(options.Value.TlsPassthrough, SocketType.Stream, ProtocolType.Tcp, "Gateway:TlsPassthrough", "(passthrough)");
            _listener.Listen(512);
            endpoints.TlsPassthrough = (IPEndPoint)_listener.LocalEndPoint!;
            // Stops accepting when the drain delay is over, as the TCP services (open connections get the grace period).
            var listener = _listener;
            _ = gatewayDrain.DelayOver.ContinueWith(_ => listener.Dispose(), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        }
        return base.StartAsync(cancellationToken);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _listener?.Dispose();
        await base.StopAsync(cancellationToken);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => _listener is null
        ? Task.CompletedTask
        : L4Accept.LoopAsync(_listener, options.Value.TlsPassthroughMaxConnections, "Gateway:TlsPassthroughMaxConnections", _ => null,
            (visitor, reason) =>
            {
                telemetry.Refused("tcp", "(passthrough)");
                TcpServices.LogRefused(logger, "(passthrough)", visitor.RemoteEndPoint?.ToString(), reason);
            },
            visitor => HandleAsync(visitor, stoppingToken), stoppingToken);

    private async Task HandleAsync(Socket visitor, CancellationToken stoppingToken)
    {
        var o = options.Value;
        var buffer = new byte[ClientHelloSni.MaxRecord];
        int filled = 0;
        int? need = 0;
        using (var deadline = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken))
        {
            deadline.CancelAfter(o.ClientHelloTimeout);
            try
            {
                while ((need = ClientHelloSni.RecordLength(buffer.AsSpan(0, filled))) is int n && (n == 0 || filled < n))
                {
                    int want = n == 0 ? 5 - filled : n - filled;
                    int read = await visitor.ReceiveAsync(buffer.AsMemory(filled, want), SocketFlags.None, deadline.Token);
                    if (read == 0)
                    {
                        visitor.Dispose();
                        return;
                    }
                    filled += read;
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException)
            {
                TcpServices.LogRefused(logger, "(passthrough)", visitor.RemoteEndPoint?.ToString(), $"no TLS ClientHello within {o.ClientHelloTimeout.TotalSeconds:0.#} s (Gateway:ClientHelloTimeout)");
                TcpRelay.Abort(visitor);
                return;
            }
        }
        var (host, problem) = need is null ? (null, "the connection does not start with a TLS handshake") : ClientHelloSni.Parse(buffer.AsSpan(0, filled));
        var route = host is null ? null : routing.Current.Routes.Match(host, "/");
        if (route is null)
        {
            telemetry.Refused("tcp", "(passthrough)");
            TcpServices.LogRefused(logger, "(passthrough)", visitor.RemoteEndPoint?.ToString(), problem ?? $"no route for SNI name '{host}'");
            TcpRelay.Abort(visitor);
            return;
        }
        var address = (visitor.RemoteEndPoint as IPEndPoint)?.Address;
        if (route.AllowedNetworks is { Length: > 0 } networks
            && !VisitorAccess.Contains(VisitorAccess.ParseNetworks(networks), address?.IsIPv4MappedToIPv6 == true ? address.MapToIPv4() : address))
        {
            telemetry.Refused("tcp", route.Service);
            TcpServices.LogRefused(logger, route.Service, visitor.RemoteEndPoint?.ToString(), $"its address is not in the AllowedNetworks of the route for '{host}'");
            TcpRelay.Abort(visitor);
            return;
        }
        await tcp.RelayAsync(visitor, route.Service, host!, proxyProtocol: false, o.TlsPassthroughIdleTimeout, buffer.AsMemory(0, filled), stoppingToken);
    }
}
