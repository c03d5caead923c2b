using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Auth;
using OrleansTunnel.Grains;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.Tunnel;

/// <summary>
/// The tunnel endpoint: authenticates an agent's hello, registers its session with its
/// <see cref="IAgentGrain"/>, then runs the multiplexed connection until it ends.
/// </summary>
public sealed partial class TunnelService(
    AgentCredentialStore credentials,
    ConnectionRegistry registry,
    OrleansTunnel.Gateway.Telemetry.GatewayTelemetry telemetry,
    GatewayDrain drain,
    HandshakeLimiter limiter,
    IGrainFactory grains,
    OrleansTunnel.Gateway.Routing.RoutingCache routing,
    OrleansTunnel.Gateway.Routing.RoutingSubscriber subscriber,
    OrleansTunnel.Gateway.Cluster.GatewayIdentity identity,
    OrleansTunnel.Gateway.Cluster.PeerBridge bridge,
    OrleansTunnel.Gateway.Cluster.ClusterPresence presence,
    IOptions<GatewayOptions> options,
    ILoggerFactory loggerFactory,
    ILogger<TunnelService> logger) : TunnelServiceBase
{
    /// <summary>Why a tunnel connection ended when Kestrel aborted its gRPC call (the peer's connection dropped, or it was reset).</summary>
    private const string StreamAborted = "the peer's tunnel stream was aborted (its process or its network connection went away)";

    public override async Task Connect(IAsyncStreamReader<FrameBatch> requestStream, IServerStreamWriter<FrameBatch> responseStream, ServerCallContext context)
    {
        var o = options.Value;
        string peer = context.Peer;
        var http = context.GetHttpContext();
        string source = http.Connection.RemoteIpAddress?.ToString() ?? peer;
        if (!limiter.TryAcquire(source))
        {
            LogRefused(logger, "?", peer, "handshake rate limit");
            throw new RpcException(new Status(StatusCode.ResourceExhausted, $"too many tunnel handshakes from {source}; retry later"));
        }
        var nonce = HelloProof.NewNonce();
        await responseStream.WriteAsync(new FrameBatch { Frames = { new Frame { Challenge = new Challenge { Nonce = Google.Protobuf.ByteString.CopyFrom(nonce) } } } });
        var hello = await ReadHelloAsync(requestStream, o.HelloTimeout, context.CancellationToken);
        if (HelloCheck.ShapeProblem(hello, o) is { } shape)
        {
            // Nothing the dialler chose is logged: it may be megabytes long or forged.
            LogRefused(logger, "?", peer, "malformed hello: " + shape);
            throw new RpcException(new Status(StatusCode.InvalidArgument, "malformed hello: " + shape));
        }
        if (drain.Draining)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "this gateway is shutting down; dial another"));
        }

        if (hello.ProtocolVersion != MuxSettings.ProtocolVersion)
        {
            LogRefused(logger, hello.AgentId, peer, "protocol version mismatch");
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"protocol version mismatch: the agent speaks version {hello.ProtocolVersion}, this gateway speaks version {MuxSettings.ProtocolVersion}; upgrade the older side"));
        }

        var check = credentials.CheckProof(hello, nonce, out var tokenHash);
        if (!check.Ok)
        {
            LogRefused(logger, hello.AgentId, peer, check.Failure!);
            throw new RpcException(new Status(StatusCode.Unauthenticated, check.Failure!));
        }
        if (!string.IsNullOrWhiteSpace(o.TunnelClientCaPath))
        {
            // Mutual TLS: Kestrel already checked the chain; the certificate must also name this agent.
            var certificate = await http.Connection.GetClientCertificateAsync(context.CancellationToken);
            if (certificate is null || !TunnelTls.Names(certificate, hello.AgentId))
            {
                string name = certificate?.GetNameInfo(System.Security.Cryptography.X509Certificates.X509NameType.SimpleName, false) ?? "(none)";
                LogRefused(logger, hello.AgentId, peer, $"client certificate '{name}' does not name the agent");
                throw new RpcException(new Status(StatusCode.PermissionDenied, $"the client certificate ('{name}') does not name agent '{hello.AgentId}'"));
            }
        }
        if (hello.Services.Count == 0)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "the hello offers no services"));
        }
        foreach (var service in hello.Services)
        {
            if (string.IsNullOrWhiteSpace(service.Name))
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, "a service in the hello has an empty name"));
            }
            if (!check.AllowsService(service.Name))
            {
                LogRefused(logger, hello.AgentId, peer, $"service '{service.Name}' not allowed for this token");
                throw new RpcException(new Status(StatusCode.PermissionDenied, $"agent '{hello.AgentId}' may not serve service '{service.Name}'"));
            }
        }
        if (hello.InitialWindow is < 1024 or > 64 * 1024 * 1024)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"initial_window {hello.InitialWindow} is outside 1 KiB..64 MiB"));
        }
        if (HelloCheck.EpochProblem(hello.Epoch, o, DateTimeOffset.UtcNow) is { } epochProblem)
        {
            LogRefused(logger, hello.AgentId, peer, epochProblem);
            throw new RpcException(new Status(StatusCode.InvalidArgument, epochProblem));
        }

        var session = new AgentSession(
            Guid.NewGuid().ToString("N"), o.GatewayId, hello.Slot, hello.Epoch,
            [.. hello.Services.Select(s => s.Name).Distinct(StringComparer.Ordinal)],
            DateTimeOffset.UtcNow, peer);
        var agentGrain = grains.GetGrain<IAgentGrain>(hello.AgentId);
        SessionAdmission admission;
        try
        {
            admission = await agentGrain.OpenSession(session);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogClusterUnavailable(logger, hello.AgentId, ex.Message);
            throw new RpcException(new Status(StatusCode.Unavailable, "the gateway cannot reach the cluster right now; retry"));
        }
        if (!admission.Accepted)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, admission.RefusedBecause ?? "session refused"));
        }
        foreach (var old in admission.Superseded)
        {
            if (registry.Find(old.SessionId) is { } stale)
            {
                LogSuperseded(logger, hello.AgentId, old.SessionId, old.Epoch, session.Epoch);
                stale.Mux.Close($"superseded by a newer session (epoch {session.Epoch})");
            }
        }

        var welcome = new Welcome
        {
            ProtocolVersion = MuxSettings.ProtocolVersion,
            GatewayId = o.GatewayId,
            SessionId = session.SessionId,
            HeartbeatIntervalMs = (uint)o.HeartbeatInterval.TotalMilliseconds,
            InitialWindow = (uint)o.ReceiveWindow,
        };
        // The cluster's live gateways, so an agent keeping several connections spreads them.
        welcome.Gateways.AddRange(presence.GatewayUrls);
        await responseStream.WriteAsync(new FrameBatch { Frames = { new Frame { Welcome = welcome } } }, context.CancellationToken);

        var settings = SettingsFor(o, hello);
        var mux = new MuxConnection(requestStream, (batch, cancel) => responseStream.WriteAsync(batch, cancel), settings, opensStreams: true, loggerFactory.CreateLogger<MuxConnection>());
        mux.ProtocolViolation = violation => LogViolation(logger, hello.AgentId, session.SessionId, violation);
        var connection = new AgentConnection(session, mux) { AgentId = hello.AgentId, TokenHash = tokenHash };
        // A service turning unhealthy leaves (or a healthy one rejoins) this gateway's dispatch at once and
        // the directory's (so every gateway's) with the report this triggers.
        mux.HealthHandler = report => OrleansTunnel.Gateway.Health.HealthFrames.Apply(connection, report, registry, loggerFactory);
        registry.Add(connection);
        // A revocation or a drain that began while this handshake was in flight missed this connection.
        if (!credentials.CheckHash(hello.AgentId, tokenHash).Ok)
        {
            await mux.CloseWithErrorAsync("unauthenticated", "session closed: its credential was revoked during the handshake");
        }
        if (drain.Draining)
        {
            connection.Draining = true;
            mux.SendGoAway("the gateway is shutting down");
        }
        telemetry.AgentConnected(hello.AgentId);
        LogConnected(logger, hello.AgentId, session.SessionId, peer, string.Join(",", session.Services), session.Slot, session.Epoch);
        using var heartbeats = new CancellationTokenSource();
        var heartbeatTask = HeartbeatGrainAsync(agentGrain, connection, o.HeartbeatInterval, heartbeats.Token);
        try
        {
            await mux.RunAsync(o.HeartbeatInterval, context.CancellationToken, StreamAborted);
        }
        finally
        {
            registry.Remove(connection);
            heartbeats.Cancel();
            await heartbeatTask;
            LogDisconnected(logger, hello.AgentId, session.SessionId, mux.CloseReason ?? "closed");
            try
            {
                await agentGrain.CloseSession(session.SessionId).WaitAsync(TimeSpan.FromSeconds(5));
            }
            catch (Exception ex)
            {
                // The grain expires the session by its time-to-live anyway.
                LogCloseSessionFailed(logger, hello.AgentId, session.SessionId, ex.Message);
            }
        }
    }

    /// <summary>
    /// Another gateway's link (cross-gateway dispatch): it authenticates with its peer secret, whose
    /// SHA-256 it published in the cluster's directory; each stream it opens is bridged to a local agent.
    /// </summary>
    public override async Task Peer(IAsyncStreamReader<FrameBatch> requestStream, IServerStreamWriter<FrameBatch> responseStream, ServerCallContext context)
    {
        var o = options.Value;
        string peer = context.Peer;
        string source = context.GetHttpContext().Connection.RemoteIpAddress?.ToString() ?? peer;
        // The same per-source bucket as agents' handshakes: the peer port is the public tunnel port.
        if (!limiter.TryAcquire(source))
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted, $"too many tunnel handshakes from {source}; retry later"));
        }
        var nonce = HelloProof.NewNonce();
        await responseStream.WriteAsync(new FrameBatch { Frames = { new Frame { Challenge = new Challenge { Nonce = Google.Protobuf.ByteString.CopyFrom(nonce) } } } });
        var hello = await ReadHelloAsync(requestStream, o.HelloTimeout, context.CancellationToken);
        if (HelloCheck.NameProblem(hello.AgentId) is { } idProblem)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "malformed peer hello: the gateway id " + idProblem));
        }
        if (hello.Token.Length > HelloCheck.MaxTokenLength)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"malformed peer hello: the secret is longer than {HelloCheck.MaxTokenLength} characters"));
        }
        if (drain.Draining)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "this gateway is shutting down"));
        }
        if (hello.ProtocolVersion != MuxSettings.ProtocolVersion)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"protocol version mismatch: the dialling gateway speaks version {hello.ProtocolVersion}, this gateway speaks version {MuxSettings.ProtocolVersion}"));
        }
        if (!await PeerKnownAsync(hello, nonce))
        {
            LogPeerRefused(logger, hello.AgentId, peer);
            throw new RpcException(new Status(StatusCode.Unauthenticated, $"'{hello.AgentId}' is not a live gateway of this cluster, or its peer secret does not match the directory"));
        }
        if (hello.InitialWindow is < 1024 or > 64 * 1024 * 1024)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"initial_window {hello.InitialWindow} is outside 1 KiB..64 MiB"));
        }
        await responseStream.WriteAsync(new FrameBatch
        {
            Frames =
            {
                new Frame
                {
                    Welcome = new Welcome
                    {
                        ProtocolVersion = MuxSettings.ProtocolVersion,
                        GatewayId = o.GatewayId,
                        HeartbeatIntervalMs = (uint)o.HeartbeatInterval.TotalMilliseconds,
                        InitialWindow = (uint)o.ReceiveWindow,
                    },
                },
            },
        }, context.CancellationToken);
        var settings = SettingsFor(o, hello);
        string peerId = hello.AgentId;
        var mux = new MuxConnection(requestStream, (batch, cancel) => responseStream.WriteAsync(batch, cancel), settings, opensStreams: false, loggerFactory.CreateLogger<MuxConnection>())
        {
            RequestReceived = (stream, head) => bridge.Accept(stream, head, peerId),
        };
        mux.ProtocolViolation = violation => LogViolation(logger, peerId, "peer", violation);
        // Draining: the other gateway stops sending here and uses its own tunnels or another gateway.
        using var draining = drain.DrainStarted.Register(() =>
        {
            mux.SendGoAway("the gateway is shutting down");
            _ = MuxConnection.CloseWhenIdleAsync(mux, "the gateway is shutting down");
        });
        // Fencing: a dialler the directory declared dead, or that rejoined as a new incarnation, loses this link.
        long incarnation = (long)hello.Epoch;
        void Recheck(RoutingSnapshot snapshot)
        {
            if (!snapshot.GatewaysIncomplete && !snapshot.Gateways.Any(g => g.GatewayId == peerId && g.Incarnation == incarnation))
            {
                mux.Close($"gateway '{peerId}' incarnation {incarnation} is no longer in the cluster's directory");
            }
        }
        routing.Changed += Recheck;
        LogPeerConnected(logger, peerId, peer);
        try
        {
            await mux.RunAsync(o.HeartbeatInterval, context.CancellationToken, StreamAborted);
        }
        finally
        {
            routing.Changed -= Recheck;
        }
        LogPeerDisconnected(logger, peerId, mux.CloseReason ?? "closed");
    }

    /// <summary>The multiplexer settings of a connection this gateway accepted (from an agent or another gateway).</summary>
    private static MuxSettings SettingsFor(GatewayOptions o, Hello hello) => new()
    {
        MaxDataFrame = Math.Min(o.MaxDataFrame, MuxSettings.MaxDataFrameCeiling),
        ReceiveWindow = o.ReceiveWindow,
        SendWindow = (int)hello.InitialWindow,
        MaxBatchBytes = o.MaxBatchBytes,
        MaxStreamQueuedBytes = o.MaxStreamQueuedBytes,
        MaxQueuedFramesPerStream = o.MaxQueuedFramesPerStream,
        MaxProtocolViolations = o.MaxProtocolViolations,
        MaxConcurrentStreams = o.MaxStreamsPerConnection,
    };

    private async Task<bool> PeerKnownAsync(Hello hello, byte[] nonce)
    {
        // The dialling gateway proves its peer secret for this nonce, keyed by the SHA-256 the directory holds.
        bool Proves(GatewayInfo g) => g.PeerSecretSha256 is { Length: 64 } hex && hex.All(Uri.IsHexDigit) && hello.Token.Length == 0
            && System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(HelloProof.FromKey(Convert.FromHexString(hex), nonce, hello), hello.Proof.Span);
        bool Known() => routing.Current.Snapshot.Gateways.Any(g => g.GatewayId == hello.AgentId && g.GatewayId != identity.GatewayId && Proves(g));
        if (Known())
        {
            return true;
        }
        if (routing.Current.Snapshot.Gateways.Any(g => g.GatewayId == hello.AgentId))
        {
            // Listed, and the secret does not match: no reason to ask the cluster.
            return false;
        }
        try
        {
            // The dialling gateway may have joined after this gateway's last snapshot. One re-read at a
            // time and at most one a second, so unknown callers cannot flood the routing grain.
            await subscriber.RefreshAsync();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogClusterUnavailable(logger, hello.AgentId, ex.Message);
            throw new RpcException(new Status(StatusCode.Unavailable, "the gateway cannot reach the cluster right now; retry"));
        }
        return Known();
    }

    private static async Task<Hello> ReadHelloAsync(IAsyncStreamReader<FrameBatch> requestStream, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        bool got;
        try
        {
            got = await requestStream.MoveNext(cts.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"no hello within {timeout.TotalSeconds:0.#} s"));
        }
        if (!got)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "the stream ended before a hello"));
        }
        var batch = requestStream.Current;
        if (batch.Frames.Count != 1 || batch.Frames[0].KindCase != Frame.KindOneofCase.Hello)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "the first message must hold exactly one hello frame"));
        }
        return batch.Frames[0].Hello;
    }

    private async Task HeartbeatGrainAsync(IAgentGrain agentGrain, AgentConnection connection, TimeSpan interval, CancellationToken cancellationToken)
    {
        try
        {
            using var timer = new PeriodicTimer(interval);
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                try
                {
                    if (!await agentGrain.Heartbeat(connection.Session))
                    {
                        LogFenced(logger, connection.AgentId, connection.Session.SessionId);
                        connection.Mux.Close("fenced: a newer session of this agent took over");
                        return;
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogHeartbeatFailed(logger, connection.AgentId, ex.Message);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    [LoggerMessage(EventId = 410, EventName = "PeerRefused", Level = LogLevel.Warning,
        Message = "Refused a gateway link from '{GatewayId}' at {Peer}: not a live gateway of the directory, or its secret does not match.")]
    private static partial void LogPeerRefused(ILogger logger, string gatewayId, string peer);

    [LoggerMessage(EventId = 411, EventName = "PeerConnected", Level = LogLevel.Information,
        Message = "Gateway '{GatewayId}' linked from {Peer}: it may now send requests for agents connected here.")]
    private static partial void LogPeerConnected(ILogger logger, string gatewayId, string peer);

    [LoggerMessage(EventId = 412, EventName = "PeerDisconnected", Level = LogLevel.Information,
        Message = "Link from gateway '{GatewayId}' ended: {Reason}.")]
    private static partial void LogPeerDisconnected(ILogger logger, string gatewayId, string reason);

    [LoggerMessage(EventId = 400, EventName = "AgentRefused", Level = LogLevel.Warning,
        Message = "Refused tunnel from agent '{AgentId}' at {Peer}: {Reason}.")]
    private static partial void LogRefused(ILogger logger, string agentId, string peer, string reason);

    [LoggerMessage(EventId = 401, EventName = "AgentConnected", Level = LogLevel.Information,
        Message = "Agent '{AgentId}' connected from {Peer} (session {SessionId}, services {Services}, slot {Slot}, epoch {Epoch}).")]
    private static partial void LogConnected(ILogger logger, string agentId, string sessionId, string peer, string services, uint slot, ulong epoch);

    [LoggerMessage(EventId = 402, EventName = "AgentDisconnected", Level = LogLevel.Information,
        Message = "Agent '{AgentId}' session {SessionId} ended: {Reason}.")]
    private static partial void LogDisconnected(ILogger logger, string agentId, string sessionId, string reason);

    [LoggerMessage(EventId = 403, EventName = "AgentSuperseded", Level = LogLevel.Information,
        Message = "Agent '{AgentId}' session {SessionId} (epoch {OldEpoch}) superseded by epoch {NewEpoch}; closing it.")]
    private static partial void LogSuperseded(ILogger logger, string agentId, string sessionId, ulong oldEpoch, ulong newEpoch);

    [LoggerMessage(EventId = 404, EventName = "AgentProtocolViolation", Level = LogLevel.Warning,
        Message = "Agent '{AgentId}' session {SessionId} broke the tunnel protocol: {Violation}.")]
    private static partial void LogViolation(ILogger logger, string agentId, string sessionId, string violation);

    [LoggerMessage(EventId = 405, EventName = "ClusterUnavailable", Level = LogLevel.Error,
        Message = "Could not register agent '{AgentId}' with the cluster: {Error}. The agent will retry; check the silos.")]
    private static partial void LogClusterUnavailable(ILogger logger, string agentId, string error);

    [LoggerMessage(EventId = 406, EventName = "AgentFenced", Level = LogLevel.Warning,
        Message = "Agent '{AgentId}' session {SessionId} was fenced by the cluster (a newer session took its slot); closing it.")]
    private static partial void LogFenced(ILogger logger, string agentId, string sessionId);

    [LoggerMessage(EventId = 407, EventName = "HeartbeatFailed", Level = LogLevel.Warning,
        Message = "Heartbeat of agent '{AgentId}' to the cluster failed: {Error}; the tunnel stays up and the next heartbeat retries.")]
    private static partial void LogHeartbeatFailed(ILogger logger, string agentId, string error);

    [LoggerMessage(EventId = 408, EventName = "CloseSessionFailed", Level = LogLevel.Debug,
        Message = "Could not tell the cluster that agent '{AgentId}' session {SessionId} ended: {Error}; it expires on its own.")]
    private static partial void LogCloseSessionFailed(ILogger logger, string agentId, string sessionId, string error);
}
