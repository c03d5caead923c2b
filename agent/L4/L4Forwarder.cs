using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Agent.Telemetry;
using OrleansTunnel.Mux;
using OrleansTunnel.Mux.L4;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Agent.L4;

/// <summary>
/// The agent's side of TCP and UDP services (tcp:// and udp:// backends): a tunnel stream with protocol
/// TCP becomes one connection to the backend, one with protocol UDP one flow (a connected UDP socket).
/// The agent answers a response head (status 200) once the backend is reached, or resets the stream
/// (backend unavailable) when it is not.
/// </summary>
public sealed partial class L4Forwarder(IOptions<AgentOptions> options, AgentTelemetry telemetry, ILogger<L4Forwarder> logger)
{
    private readonly Dictionary<string, (string Scheme, string Host, int Port)> _backends = Build(options.Value);

    /// <summary>Whether a backend URL is a tcp:// or udp:// one.</summary>
    public static bool IsL4Scheme(string scheme) => scheme is "tcp" or "udp";

    public IEnumerable<ServiceOffer> Offers => _backends.Select(b => new ServiceOffer { Name = b.Key, Scheme = b.Value.Scheme });

    private static Dictionary<string, (string, string, int)> Build(AgentOptions o)
    {
        var backends = new Dictionary<string, (string, string, int)>(StringComparer.Ordinal);
        foreach (var service in o.Services)
        {
            if (Uri.TryCreate(service.Url, UriKind.Absolute, out var uri) && IsL4Scheme(uri.Scheme.ToLowerInvariant()))
            {
                backends[service.Name] = (uri.Scheme.ToLowerInvariant(), uri.Host.Trim('[', ']'), uri.Port);
            }
        }
        return backends;
    }

    /// <summary>Handles one TCP connection or UDP flow to completion; never throws.</summary>
    public async Task ForwardAsync(MuxStream stream, RequestHead head)
    {
        long started = Stopwatch.GetTimestamp();
        var activity = AgentTelemetry.StartRequest(head);
        string outcome = "ok";
        try
        {
            string wanted = head.Protocol == OrleansTunnel.Protocol.V1.Protocol.Tcp ? "tcp" : "udp";
            if (!_backends.TryGetValue(head.Service, out var backend) || backend.Scheme != wanted)
            {
                outcome = AgentTelemetry.ResetName(ResetCode.UnknownService);
                stream.Reset(ResetCode.UnknownService, $"this agent does not serve a {wanted} service '{head.Service}'");
                return;
            }
            outcome = wanted == "tcp" ? await ForwardTcpAsync(stream, head, backend.Host, backend.Port) : await ForwardUdpAsync(stream, head, backend.Host, backend.Port);
        }
        catch (Exception ex) when (ex is MuxStreamAbortedException or OperationCanceledException)
        {
            outcome = AgentTelemetry.ResetName(ResetCode.Cancelled);
        }
        catch (Exception ex)
        {
            LogUnexpected(logger, head.RequestId, ex);
            outcome = AgentTelemetry.ResetName(ResetCode.Internal);
            stream.Reset(ResetCode.Internal, $"the agent failed to relay the connection ({ex.GetType().Name}; see the agent's log for request {head.RequestId})");
        }
        finally
        {
            stream.Complete();
            telemetry.EndRequest(head.Service, outcome, started, activity);
        }
    }

    private async Task<Socket?> ConnectAsync(MuxStream stream, RequestHead head, string host, int port, SocketType type, ProtocolType protocol)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stream.Aborted);
        timeout.CancelAfter(options.Value.BackendConnectTimeout);
        Socket? socket = null;
        try
        {
            var addresses = IPAddress.TryParse(host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, timeout.Token);
            var address = addresses.FirstOrDefault() ?? throw new SocketException((int)SocketError.HostNotFound);
            socket = new Socket(address.AddressFamily, type, protocol);
            if (type == SocketType.Stream)
            {
                socket.NoDelay = true;
            }
            await socket.ConnectAsync(new IPEndPoint(address, port), timeout.Token);
            return socket;
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            socket?.Dispose();
            if (stream.Aborted.IsCancellationRequested)
            {
                return null;
            }
            string reason = ex is OperationCanceledException
                ? $"the backend of service '{head.Service}' did not accept the connection within {options.Value.BackendConnectTimeout.TotalSeconds:0.#} s"
                : $"the backend of service '{head.Service}' refused the connection ({((SocketException)ex).SocketErrorCode})";
            LogBackendFailed(logger, head.RequestId, head.Service, reason);
            stream.Reset(ex is OperationCanceledException ? ResetCode.BackendTimeout : ResetCode.BackendUnavailable, reason);
            return null;
        }
    }

    private async Task<string> ForwardTcpAsync(MuxStream stream, RequestHead head, string host, int port)
    {
        var socket = await ConnectAsync(stream, head, host, port, SocketType.Stream, ProtocolType.Tcp);
        if (socket is null)
        {
            return AgentTelemetry.ResetName(ResetCode.BackendUnavailable);
        }
        if (head.ProxyProtocol)
        {
            var header = ProxyProtocolV2.Build(ParseEndPoint(head.ClientAddress), ParseEndPoint(head.LocalAddress));
            await socket.SendAsync(header, SocketFlags.None, stream.Aborted);
        }
        stream.SendHead(new Frame { ResponseHead = new ResponseHead { Status = 200 } });
        var result = await TcpRelay.RunAsync(socket, stream, options.Value.ResponseBufferSize, Timeout.InfiniteTimeSpan, ResetCode.BackendUnavailable, "backend");
        return result.Failure is null ? "ok" : AgentTelemetry.ResetName(stream.AbortReason?.Code ?? ResetCode.Cancelled);
    }

    private async Task<string> ForwardUdpAsync(MuxStream stream, RequestHead head, string host, int port)
    {
        using var socket = await ConnectAsync(stream, head, host, port, SocketType.Dgram, ProtocolType.Udp);
        if (socket is null)
        {
            return AgentTelemetry.ResetName(ResetCode.BackendUnavailable);
        }
        stream.SendHead(new Frame { ResponseHead = new ResponseHead { Status = 200 } });
        using var done = CancellationTokenSource.CreateLinkedTokenSource(stream.Aborted);
        var up = UdpRelay.PumpSocketUpAsync(socket, stream, null, done.Token);
        await UdpRelay.PumpStreamDownAsync(stream, (payload, ct) => socket.SendAsync(payload, SocketFlags.None, ct), null);
        done.Cancel();
        await up;
        return "ok";
    }

    private static IPEndPoint? ParseEndPoint(string text) =>
        IPEndPoint.TryParse(text, out var endPoint) ? endPoint : null;

    [LoggerMessage(EventId = 1401, EventName = "L4BackendFailed", Level = LogLevel.Warning,
        Message = "Request {RequestId}: {Reason}; check that the backend of service {Service} is running and listening.")]
    private static partial void LogBackendFailed(ILogger logger, string requestId, string service, string reason);

    [LoggerMessage(EventId = 1402, EventName = "L4RelayFailed", Level = LogLevel.Error,
        Message = "Request {RequestId}: relaying the connection failed unexpectedly.")]
    private static partial void LogUnexpected(ILogger logger, string requestId, Exception exception);
}
