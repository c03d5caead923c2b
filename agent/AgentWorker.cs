using System.Runtime.CompilerServices;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Agent;

/// <summary>
/// Keeps the agent's tunnel connections up: dials out, says hello, runs the multiplexed stream and
/// reconnects with capped exponential backoff and jitter. Its receive loop only routes frames: each
/// request is handed to the <see cref="BackendForwarder"/> on its own task.
/// </summary>
public sealed partial class AgentWorker(
    IOptions<AgentOptions> options,
    BackendForwarder forwarder,
    OrleansTunnel.Agent.Health.HealthProber health,
    AgentStatus status,
    OrleansTunnel.Agent.Telemetry.AgentTelemetry telemetry,
    ILoggerFactory loggerFactory,
    ILogger<AgentWorker> logger) : BackgroundService
{
    private long _lastEpoch;
    private GatewayBook? _book;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<uint, MuxConnection> _live = new();
    private volatile bool _draining;

    /// <summary>The gateways this agent knows (configured and announced by the cluster).</summary>
    public GatewayBook Book => _book ??= new GatewayBook(options.Value.Gateways, options.Value.ReconnectMaxDelay * 5, options.Value.AllowCleartext);

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        _ = Book;
        // A service's health changed: every tunnel tells its gateway (the whole report each time).
        health.Changed += () =>
        {
            foreach (var mux in _live.Values)
            {
                SendHealth(mux);
            }
        };
        int count = Math.Max(1, o.Connections);
        var loops = Enumerable.Range(0, count).Select(slot => Task.Run(() => SlotLoopAsync((uint)slot, stoppingToken), stoppingToken));
        return Task.WhenAll(loops);
    }

    private async Task SlotLoopAsync(uint slot, CancellationToken stoppingToken)
    {
        var o = options.Value;
        int failures = 0;
        int gatewayIndex = (int)slot;
        while (!stoppingToken.IsCancellationRequested && !_draining)
        {
            string gateway = Book.Pick(slot, gatewayIndex);
            bool wasUp = false;
            var goAway = new StrongBox<bool>();
            try
            {
                wasUp = await RunOnceAsync(slot, gateway, goAway, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (RpcException ex) when (ex.StatusCode is StatusCode.Unauthenticated or StatusCode.PermissionDenied or StatusCode.FailedPrecondition or StatusCode.InvalidArgument)
            {
                LogRefused(logger, gateway, ex.StatusCode.ToString(), ex.Status.Detail);
            }
            catch (Exception ex)
            {
                LogDialFailed(logger, gateway, Describe(ex));
            }
            finally
            {
                status.Down(slot);
                Book.Released(slot);
            }
            if (stoppingToken.IsCancellationRequested || _draining)
            {
                return;
            }
            failures = wasUp ? 0 : failures + 1;
            if (!wasUp)
            {
                Book.Failed(gateway);
            }
            // Try the next gateway after a failure or a go-away, so one dead or draining gateway does not hold a slot.
            if (!wasUp || goAway.Value)
            {
                gatewayIndex++;
            }
            var delay = Backoff(failures, o.ReconnectMinDelay, o.ReconnectMaxDelay);
            LogReconnecting(logger, slot, delay.TotalMilliseconds);
            await Task.Delay(delay, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    /// <summary>Full-jitter exponential backoff: random in [min, min(max, min * 2^failures)].</summary>
    public static TimeSpan Backoff(int failures, TimeSpan min, TimeSpan max)
    {
        double ceiling = Math.Min(max.TotalMilliseconds, min.TotalMilliseconds * Math.Pow(2, Math.Min(failures, 30)));
        return TimeSpan.FromMilliseconds(min.TotalMilliseconds + Random.Shared.NextDouble() * Math.Max(0, ceiling - min.TotalMilliseconds));
    }

    /// <returns>True when the tunnel came up (so the next attempt starts from the shortest delay).</returns>
    private async Task<bool> RunOnceAsync(uint slot, string gateway, StrongBox<bool> goAway, CancellationToken stoppingToken)
    {
        var o = options.Value;
        using var channel = TunnelDialer.Channel(gateway, o.DialTimeout, o.MaxTunnelMessageSize, handler => GatewayTls.Configure(handler, o));
        using var call = FrameCodec.Open(channel.CreateCallInvoker(), FrameCodec.Connect, stoppingToken);
        ulong epoch = NextEpoch();
        var hello = new Hello
        {
            ProtocolVersion = MuxSettings.ProtocolVersion,
            AgentId = o.AgentId,
            Epoch = epoch,
            Slot = slot,
            AgentVersion = typeof(AgentWorker).Assembly.GetName().Version?.ToString() ?? "0",
            InitialWindow = (uint)o.ReceiveWindow,
        };
        hello.Services.AddRange(forwarder.Offers);
        var welcome = await TunnelDialer.HandshakeAsync(call, hello, o.Token, o.DialTimeout, "this agent", stoppingToken);

        var settings = new MuxSettings
        {
            MaxDataFrame = Math.Min(o.MaxDataFrame, MuxSettings.MaxDataFrameCeiling),
            ReceiveWindow = o.ReceiveWindow,
            SendWindow = (int)Math.Max(1024, welcome.InitialWindow),
            MaxBatchBytes = o.MaxBatchBytes,
            MaxStreamQueuedBytes = o.MaxStreamQueuedBytes,
        };
        var mux = new MuxConnection(call.ResponseStream, (batch, cancel) => call.RequestStream.WriteAsync(batch, cancel), settings, opensStreams: false, loggerFactory.CreateLogger<MuxConnection>())
        {
            // Only route: the forwarder runs on its own task, never on this loop.
            RequestReceived = (stream, head) => _ = Task.Run(() => forwarder.ForwardAsync(stream, head)),
        };
        mux.GoAwayHandler = reason =>
        {
            goAway.Value = true;
            LogGoAway(logger, gateway, reason);
            _ = CloseWhenQuietAsync(mux, "the gateway asked the agent to go away");
        };
        _live[slot] = mux;
        SendHealth(mux);
        if (_draining)
        {
            // Connected while the agent began stopping: the stop's go-away missed this connection.
            mux.SendGoAway("the agent is shutting down");
            _ = CloseWhenQuietAsync(mux, "the agent is shutting down");
        }
        Book.Connected(slot, gateway, welcome.GatewayId);
        LogRefusedAnnouncements(Book.Learn(welcome.Gateways), gateway);
        void MoveIfShared()
        {
            // Two of this agent's connections on one gateway while another is known: move this one
            // (gracefully: go-away, finish in-flight requests, then dial the other gateway).
            if (!goAway.Value && !mux.Closed.IsCancellationRequested && Book.ShouldMove(slot))
            {
                goAway.Value = true;
                LogRebalance(logger, slot, welcome.GatewayId);
                mux.SendGoAway("the agent moves this connection to another gateway");
                _ = CloseWhenQuietAsync(mux, "the agent moved this connection to another gateway");
            }
        }
        mux.ConfigHandler = config =>
        {
            LogRefusedAnnouncements(Book.Learn(config.Gateways), gateway);
            MoveIfShared();
        };
        MoveIfShared();
        // Also now and then: a gateway avoided after a failure may work again.
        async Task RebalanceAsync()
        {
            // A shared slot probes the gateways that failed: one restarted at the same address while the
            // directory still listed it is never announced anew, and the agent would stay lopsided.
            if (Book.SharesGateway(slot))
            {
                foreach (var url in Book.Unreachable())
                {
                    if (await GatewayProbe.AcceptsAsync(url, o.DialTimeout, stoppingToken))
                    {
                        Book.Reachable(url);
                    }
                }
            }
            MoveIfShared();
        }
        using var rebalance = new Timer(_ => _ = RebalanceAsync(), null, o.ReconnectMaxDelay, o.ReconnectMaxDelay);
        var heartbeat = welcome.HeartbeatIntervalMs > 0 ? TimeSpan.FromMilliseconds(welcome.HeartbeatIntervalMs) : o.HeartbeatInterval;
        status.Up(new AgentStatus.TunnelInfo(slot, gateway, welcome.GatewayId, welcome.SessionId, DateTimeOffset.UtcNow));
        LogConnected(logger, gateway, welcome.GatewayId, welcome.SessionId, slot, epoch);
        telemetry.TunnelConnected(gateway);
        try
        {
            await mux.RunAsync(heartbeat, stoppingToken);
        }
        finally
        {
            _live.TryRemove(new KeyValuePair<uint, MuxConnection>(slot, mux));
        }
        LogDisconnected(logger, gateway, mux.CloseReason ?? "closed");
        return true;
    }

    private void SendHealth(MuxConnection mux)
    {
        if (health.Probing && !mux.Closed.IsCancellationRequested)
        {
            mux.SendConnectionFrame(new Frame { Health = health.Report() });
        }
    }

    // After a go-away the gateway sends nothing new; close once in-flight requests finished and the line stayed quiet.
    private Task CloseWhenQuietAsync(MuxConnection mux, string reason, CancellationToken cancellationToken = default) =>
        TunnelQuiesce.CloseWhenQuietAsync(mux, options.Value.GoAwayQuietPeriod, reason, cancellationToken);

    /// <summary>
    /// Graceful stop (SIGTERM): tell every gateway go-away on every tunnel (they send nothing new here and
    /// use the agent's other connections or other agents), let in-flight requests finish within
    /// Agent:ShutdownGracePeriod, close the tunnels, then stop the slot loops without reconnecting.
    /// </summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _draining = true;
        var live = _live.Values.ToArray();
        var grace = options.Value.ShutdownGracePeriod;
        if (live.Length > 0)
        {
            LogStopping(logger, live.Length, live.Sum(m => m.ActiveStreams), grace.TotalSeconds);
            foreach (var mux in live)
            {
                mux.SendGoAway("the agent is shutting down");
            }
            using var graceOver = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            graceOver.CancelAfter(grace);
            await Task.WhenAll(live.Select(m => CloseWhenQuietAsync(m, "the agent is shutting down", graceOver.Token)));
            if (graceOver.IsCancellationRequested)
            {
                LogGraceOver(logger, grace.TotalSeconds);
            }
        }
        await base.StopAsync(cancellationToken);
    }

    private void LogRefusedAnnouncements(IReadOnlyList<string> refused, string gateway)
    {
        foreach (var why in refused)
        {
            LogAnnouncementRefused(logger, gateway, why);
        }
    }

    [LoggerMessage(EventId = 710, EventName = "AnnouncedGatewayRefused", Level = LogLevel.Warning,
        Message = "Gateway {Gateway} announced a tunnel URL this agent will not dial: {Why}. Check the gateways' Gateway:AdvertisedTunnel (or Agent:AllowCleartext).")]
    private static partial void LogAnnouncementRefused(ILogger logger, string gateway, string why);

    private ulong NextEpoch()
    {
        // Milliseconds since the epoch, strictly increasing within this process.
        while (true)
        {
            long last = Interlocked.Read(ref _lastEpoch);
            long next = Math.Max(last + 1, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            if (Interlocked.CompareExchange(ref _lastEpoch, next, last) == last)
            {
                return (ulong)next;
            }
        }
    }

    private static string Describe(Exception ex) => ex switch
    {
        RpcException rpc => $"{rpc.StatusCode}: {rpc.Status.Detail}",
        _ => ex.Message,
    };

    [LoggerMessage(EventId = 700, EventName = "TunnelConnected", Level = LogLevel.Information,
        Message = "Tunnel up to {Gateway} (gateway {GatewayId}, session {SessionId}, slot {Slot}, epoch {Epoch}).")]
    private static partial void LogConnected(ILogger logger, string gateway, string gatewayId, string sessionId, uint slot, ulong epoch);

    [LoggerMessage(EventId = 701, EventName = "TunnelDisconnected", Level = LogLevel.Warning,
        Message = "Tunnel to {Gateway} went down: {Reason}.")]
    private static partial void LogDisconnected(ILogger logger, string gateway, string reason);

    [LoggerMessage(EventId = 702, EventName = "TunnelRefused", Level = LogLevel.Error,
        Message = "Gateway {Gateway} refused this agent ({Code}): {Detail}. Fix the agent's id, token or services; retrying with backoff.")]
    private static partial void LogRefused(ILogger logger, string gateway, string code, string detail);

    [LoggerMessage(EventId = 703, EventName = "TunnelDialFailed", Level = LogLevel.Warning,
        Message = "Could not open a tunnel to {Gateway}: {Error}. Retrying with backoff.")]
    private static partial void LogDialFailed(ILogger logger, string gateway, string error);

    [LoggerMessage(EventId = 704, EventName = "TunnelReconnecting", Level = LogLevel.Debug,
        Message = "Slot {Slot} reconnecting in {DelayMs:0} ms.")]
    private static partial void LogReconnecting(ILogger logger, uint slot, double delayMs);

    [LoggerMessage(EventId = 706, EventName = "TunnelRebalance", Level = LogLevel.Information,
        Message = "Slot {Slot} shares gateway {GatewayId} with another connection while another gateway is known; moving it there once its in-flight requests finished.")]
    private static partial void LogRebalance(ILogger logger, uint slot, string gatewayId);

    [LoggerMessage(EventId = 707, EventName = "AgentStopping", Level = LogLevel.Information,
        Message = "Agent stopping: told the gateways of {Tunnels} tunnel(s) go-away; {Streams} request(s) in flight get up to {Seconds:0.#} s (Agent:ShutdownGracePeriod).")]
    private static partial void LogStopping(ILogger logger, int tunnels, int streams, double seconds);

    [LoggerMessage(EventId = 708, EventName = "AgentGraceOver", Level = LogLevel.Warning,
        Message = "Agent stopping: the grace period of {Seconds:0.#} s ran out with requests in flight; they were cut. Raise Agent:ShutdownGracePeriod if long requests must finish.")]
    private static partial void LogGraceOver(ILogger logger, double seconds);

    [LoggerMessage(EventId = 705, EventName = "TunnelGoAway", Level = LogLevel.Information,
        Message = "Gateway {Gateway} said go-away ({Reason}); finishing in-flight requests, then reconnecting.")]
    private static partial void LogGoAway(ILogger logger, string gateway, string reason);
}
