using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Mux;
using OrleansTunnel.Mux.L4;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.L4;

/// <summary>
/// The gateway's UDP service listeners (Gateway:UdpServices). Each visitor address and port is a flow:
/// one tunnel stream, opened on its first datagram and closed after IdleTimeout without a datagram
/// either way. Every datagram is one data frame (never split or merged); answers go back to the
/// flow's visitor address. A flow's queue is bounded: datagrams beyond it, or beyond the stream's
/// credit, are dropped and counted.
/// </summary>
public sealed partial class UdpServices(L4Gate gate, L4Telemetry telemetry, L4Endpoints endpoints, IOptions<L4Options> options, ILogger<UdpServices> logger) : ConfiguredListeners
{
    private sealed class Flow(IPEndPoint visitor, int queue)
    {
        public IPEndPoint Visitor { get; } = visitor;
        public Channel<byte[]> Queue { get; } = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(queue) { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
        public long LastActivity = Stopwatch.GetTimestamp();
        public void Touch() => Volatile.Write(ref LastActivity, Stopwatch.GetTimestamp());
    }

    protected override IReadOnlyList<L4ServiceOptions> Configured => options.Value.UdpServices;

    /// <summary>Starts listening for one UDP service (configured, or a run-time mapping); dispose to stop (its flows end).</summary>
    public override L4Listener Open(L4ServiceOptions service)
    {
        var socket = L4Endpoints.Bind(service.Listen, SocketType.Dgram, ProtocolType.Udp, "Gateway:UdpServices", service.Service);
        var bound = (IPEndPoint)socket.LocalEndPoint!;
        endpoints.Add("udp", service.Service, bound);
        var cancel = CancellationTokenSource.CreateLinkedTokenSource(Stopping.Token);
        var loop = ReceiveLoopAsync(socket, service, VisitorAccess.ParseNetworks(service.AllowedNetworks), cancel.Token);
        return new L4Listener(socket, cancel, loop, () => endpoints.Remove("udp", service.Service, bound));
    }

    private async Task ReceiveLoopAsync(Socket socket, L4ServiceOptions service, System.Net.IPNetwork[] allowed, CancellationToken stoppingToken)
    {
        var flows = new ConcurrentDictionary<IPEndPoint, Flow>();
        var buffer = new byte[UdpRelay.MaxDatagram];
        EndPoint any = new IPEndPoint(socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        var idle = service.IdleTimeout ?? TimeSpan.FromSeconds(60);
        while (!stoppingToken.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await socket.ReceiveFromAsync(buffer, SocketFlags.None, any, stoppingToken);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                continue; // ICMP errors for earlier answers, or an oversized datagram: the listener goes on
            }
            var visitor = (IPEndPoint)received.RemoteEndPoint;
            if (!flows.TryGetValue(visitor, out var flow))
            {
                var address = visitor.Address.IsIPv4MappedToIPv6 ? visitor.Address.MapToIPv4() : visitor.Address;
                if (allowed.Length > 0 && !VisitorAccess.Contains(allowed, address))
                {
                    telemetry.Refused("udp", service.Service);
                    telemetry.Datagram(service.Service, inbound: true, dropped: true);
                    continue;
                }
                if (flows.Count >= service.MaxConnections)
                {
                    telemetry.Refused("udp", service.Service);
                    telemetry.Datagram(service.Service, inbound: true, dropped: true);
                    continue;
                }
                flow = new Flow(visitor, Math.Max(1, options.Value.UdpFlowQueue));
                flows[visitor] = flow;
                _ = Task.Run(() => RunFlowAsync(socket, service, flow, flows, idle, stoppingToken), CancellationToken.None);
            }
            if (!flow.Queue.Writer.TryWrite(buffer.AsSpan(0, received.ReceivedBytes).ToArray()))
            {
                telemetry.Datagram(service.Service, inbound: true, dropped: true);
            }
        }
    }

    private async Task RunFlowAsync(Socket socket, L4ServiceOptions service, Flow flow, ConcurrentDictionary<IPEndPoint, Flow> flows, TimeSpan idle, CancellationToken stoppingToken)
    {
        L4Session? session = null;
        string outcome = "failed";
        try
        {
            (session, string? refusal) = await gate.OpenAsync(service.Service, VisitorKind.Udp, service.Listen, flow.Visitor, socket.LocalEndPoint, false, stoppingToken);
            if (session is null)
            {
                TcpServices.LogRefused(logger, service.Service, flow.Visitor.ToString(), refusal ?? "refused");
                return;
            }
            if (!await gate.AwaitConnectedAsync(session))
            {
                return;
            }
            var stream = session.Stream;
            var entry = session.Entry;
            using var done = CancellationTokenSource.CreateLinkedTokenSource(stream.Aborted);
            var up = SendUpAsync(service.Service, flow, session, done.Token);
            var watchdog = WatchIdleAsync(flow, stream, idle, done.Token);
            await UdpRelay.PumpStreamDownAsync(stream, (payload, ct) => socket.SendToAsync(payload, SocketFlags.None, flow.Visitor, ct), length =>
            {
                flow.Touch();
                entry.BytesOut += length;
                telemetry.Datagram(service.Service, inbound: false, dropped: false);
            });
            done.Cancel();
            await up;
            bool idled = await watchdog;
            outcome = idled ? "idle" : stream.AbortReason is null ? "ok" : "reset";
            entry.Failure = idled || stream.AbortReason is null ? null : $"{stream.AbortReason.Code}: {stream.AbortReason.Reason}";
        }
        catch (Exception ex) when (ex is OperationCanceledException or MuxStreamAbortedException)
        {
        }
        catch (Exception ex)
        {
            LogUnexpected(logger, service.Service, ex);
        }
        finally
        {
            flows.TryRemove(new KeyValuePair<IPEndPoint, Flow>(flow.Visitor, flow));
            flow.Queue.Writer.TryComplete();
            while (flow.Queue.Reader.TryRead(out _))
            {
                telemetry.Datagram(service.Service, inbound: true, dropped: true);
            }
            if (session is not null)
            {
                gate.Close(session, outcome);
            }
        }
    }

    private async Task SendUpAsync(string service, Flow flow, L4Session session, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var datagram in flow.Queue.Reader.ReadAllAsync(cancellationToken))
            {
                flow.Touch();
                bool sent = await session.Stream.TrySendDatagramAsync(datagram, cancellationToken);
                if (sent)
                {
                    session.Entry.BytesIn += datagram.Length;
                }
                telemetry.Datagram(service, inbound: true, dropped: !sent);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or MuxStreamAbortedException)
        {
        }
    }

    /// <summary>Resets the flow's stream once no datagram went either way for <paramref name="idle"/>; true when it did.</summary>
    private static async Task<bool> WatchIdleAsync(Flow flow, MuxStream stream, TimeSpan idle, CancellationToken cancellationToken)
    {
        var step = TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerMillisecond * 50, idle.Ticks / 4));
        try
        {
            while (true)
            {
                await Task.Delay(step, cancellationToken);
                if (Stopwatch.GetElapsedTime(Volatile.Read(ref flow.LastActivity)) >= idle)
                {
                    stream.Reset(ResetCode.Cancelled, $"the UDP flow was idle for {idle.TotalSeconds:0.#} s");
                    return true;
                }
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [LoggerMessage(EventId = 1311, EventName = "UdpFlowFailed", Level = LogLevel.Error,
        Message = "A UDP flow of service {Service} failed unexpectedly.")]
    private static partial void LogUnexpected(ILogger logger, string service, Exception exception);
}
