using System.Collections.Concurrent;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Grains;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.Cluster;

/// <summary>
/// This gateway's links to the other gateways of the cluster (one multiplexed gRPC stream each, the
/// tunnel protocol with this gateway opening the streams). A link is kept to every live gateway in the
/// directory, so a request for a service whose agents are connected elsewhere finds it already up.
/// </summary>
public sealed partial class PeerLinks(
    RoutingCache routing,
    GatewayIdentity identity,
    IOptions<GatewayOptions> options,
    ILoggerFactory loggerFactory,
    ILogger<PeerLinks> logger) : IHostedService
{
    private readonly ConcurrentDictionary<string, PeerLink> _links = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _gate = new();

    /// <summary>The links, for /tunnels and metrics.</summary>
    public IReadOnlyCollection<PeerLink> All => [.. _links.Values];

    public Task StartAsync(CancellationToken cancellationToken)
    {
        routing.Changed += Reconcile;
        Reconcile(routing.Current.Snapshot);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        routing.Changed -= Reconcile;
        _stopping.Cancel();
        await Task.WhenAll(_links.Values.Select(l => l.DisposeAsync().AsTask()));
        _links.Clear();
    }

    /// <summary>The link to a gateway if it is up and accepts new streams.</summary>
    public PeerLink? Up(string gatewayId) =>
        _links.TryGetValue(gatewayId, out var link) && link.Accepting ? link : null;

    /// <summary>Waits (bounded by Gateway:PeerDialTimeout) for the link to one of the gateways to come up.</summary>
    public async Task<PeerLink?> WaitAnyUpAsync(IEnumerable<string> gatewayIds, CancellationToken cancellationToken)
    {
        var links = gatewayIds.Distinct(StringComparer.Ordinal).Select(id => _links.GetValueOrDefault(id)).OfType<PeerLink>().ToArray();
        if (links.Length == 0)
        {
            return null;
        }
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.Value.PeerDialTimeout);
        try
        {
            await Task.WhenAny(links.Select(l => l.WaitUpAsync(timeout.Token)));
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
        }
        return links.FirstOrDefault(l => l.Accepting);
    }

    /// <summary>Closes every link (this gateway was fenced); they are redialled with the new incarnation.</summary>
    public void CloseAll(string reason)
    {
        foreach (var link in _links.Values)
        {
            link.Mux?.Close(reason);
        }
    }

    private void Reconcile(RoutingSnapshot snapshot)
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }
        lock (_gate)
        {
            var wanted = snapshot.Gateways
                .Where(g => g.GatewayId != identity.GatewayId && !string.IsNullOrEmpty(g.TunnelUrl))
                .ToDictionary(g => g.GatewayId, StringComparer.Ordinal);
            foreach (var (id, link) in _links)
            {
                if (!wanted.TryGetValue(id, out var info) || info.Incarnation != link.Info.Incarnation || info.TunnelUrl != link.Info.TunnelUrl)
                {
                    // Gone from the directory (declared dead, left) or restarted: drop this link.
                    _links.TryRemove(id, out _);
                    _ = link.DisposeAsync().AsTask();
                }
            }
            foreach (var (id, info) in wanted)
            {
                if (!_links.ContainsKey(id))
                {
                    var link = new PeerLink(info, identity, options.Value, loggerFactory.CreateLogger<MuxConnection>(), logger, _stopping.Token);
                    _links[id] = link;
                    link.Start();
                }
            }
        }
    }

    [LoggerMessage(EventId = 600, EventName = "PeerLinkUp", Level = LogLevel.Information,
        Message = "Link to gateway '{GatewayId}' at {Url} is up: requests for services whose agents are connected there can be sent through it.")]
    internal static partial void LogUp(ILogger logger, string gatewayId, string url);

    [LoggerMessage(EventId = 601, EventName = "PeerLinkDown", Level = LogLevel.Warning,
        Message = "Link to gateway '{GatewayId}' at {Url} is down ({Reason}); redialling in {DelayMs:0} ms while the directory lists it.")]
    internal static partial void LogDown(ILogger logger, string gatewayId, string url, string reason, double delayMs);
}

/// <summary>One link to another gateway, redialled with backoff until disposed.</summary>
public sealed class PeerLink : IAsyncDisposable
{
    private readonly GatewayIdentity _identity;
    private readonly GatewayOptions _options;
    private readonly ILogger<MuxConnection> _muxLogger;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop;
    private volatile MuxConnection? _mux;
    private TaskCompletionSource _up = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _loop = Task.CompletedTask;

    internal PeerLink(GatewayInfo info, GatewayIdentity identity, GatewayOptions options, ILogger<MuxConnection> muxLogger, ILogger logger, CancellationToken stopping)
    {
        Info = info;
        _identity = identity;
        _options = options;
        _muxLogger = muxLogger;
        _logger = logger;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(stopping);
    }

    public GatewayInfo Info { get; }

    public MuxConnection? Mux => _mux;

    /// <summary>True while the link is up and the peer did not say go-away.</summary>
    public bool Accepting => _mux is { } m && !m.Closed.IsCancellationRequested && !m.GoAwayReceived
        && m.ActiveStreams < m.Settings.MaxConcurrentStreams;

    internal void Start() => _loop = Task.Run(RunAsync);

    internal async Task WaitUpAsync(CancellationToken cancellationToken)
    {
        if (!Accepting)
        {
            await Volatile.Read(ref _up).Task.WaitAsync(cancellationToken);
        }
    }

    private async Task RunAsync()
    {
        try
        {
            // The peer checks this gateway's secret against the directory: join it first.
            await _identity.Joined.WaitAsync(_stop.Token);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        int failures = 0;
        while (!_stop.IsCancellationRequested)
        {
            string reason;
            try
            {
                reason = await RunOnceAsync();
                failures = 0;
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (RpcException ex)
            {
                reason = $"{ex.StatusCode}: {ex.Status.Detail}";
                failures++;
            }
            catch (Exception ex)
            {
                reason = ex.Message;
                failures++;
            }
            _mux = null;
            if (_stop.IsCancellationRequested)
            {
                return;
            }
            var delay = TimeSpan.FromMilliseconds(Math.Min(5000, 100 * Math.Pow(2, Math.Min(failures, 6))) * (0.5 + Random.Shared.NextDouble() / 2));
            PeerLinks.LogDown(_logger, Info.GatewayId, Info.TunnelUrl, reason, delay.TotalMilliseconds);
            await Task.Delay(delay, _stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    private async Task<string> RunOnceAsync()
    {
        using var channel = TunnelDialer.Channel(Info.TunnelUrl, _options.PeerDialTimeout, _options.MaxTunnelMessageSize, handler =>
        {
            if (!string.IsNullOrWhiteSpace(_options.PeerCaFile))
            {
                handler.SslOptions.RemoteCertificateValidationCallback = CaTrust.Validator(_options.PeerCaFile);
            }
        });
        using var call = FrameCodec.Open(channel.CreateCallInvoker(), FrameCodec.Peer, _stop.Token);
        var hello = new Hello
        {
            ProtocolVersion = MuxSettings.ProtocolVersion,
            AgentId = _identity.GatewayId,
            Epoch = (ulong)_identity.Incarnation,
            InitialWindow = (uint)_options.ReceiveWindow,
        };
        var welcome = await TunnelDialer.HandshakeAsync(call, hello, _identity.PeerSecret, _options.HelloTimeout, "this gateway", _stop.Token);
        var settings = new MuxSettings
        {
            MaxDataFrame = Math.Min(_options.MaxDataFrame, MuxSettings.MaxDataFrameCeiling),
            ReceiveWindow = _options.ReceiveWindow,
            SendWindow = (int)Math.Max(1024, welcome.InitialWindow),
            MaxBatchBytes = _options.MaxBatchBytes,
            MaxStreamQueuedBytes = _options.MaxStreamQueuedBytes,
            MaxQueuedFramesPerStream = _options.MaxQueuedFramesPerStream,
            MaxProtocolViolations = _options.MaxProtocolViolations,
            MaxConcurrentStreams = _options.MaxStreamsPerConnection,
        };
        var mux = new MuxConnection(call.ResponseStream, (batch, cancel) => call.RequestStream.WriteAsync(batch, cancel), settings, opensStreams: true, _muxLogger);
        // The peer is draining: send nothing new, close once the requests in flight finished.
        mux.GoAwayHandler = reason => _ = MuxConnection.CloseWhenIdleAsync(mux, "the gateway went away: " + reason);
        _mux = mux;
        PeerLinks.LogUp(_logger, Info.GatewayId, Info.TunnelUrl);
        var up = Volatile.Read(ref _up);
        up.TrySetResult();
        try
        {
            await mux.RunAsync(_options.HeartbeatInterval, _stop.Token);
        }
        finally
        {
            _mux = null;
            Interlocked.CompareExchange(ref _up, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), up);
        }
        return mux.CloseReason ?? "closed";
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _mux?.Close("the link is no longer needed");
        try
        {
            await _loop.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception)
        {
            // Disposal is best effort: the loop ends with the cancellation.
        }
        _stop.Dispose();
    }
}
