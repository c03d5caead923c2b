using System.Collections.Concurrent;
using System.Diagnostics;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Mux;

/// <summary>
/// Both ends of one tunnel connection (a gRPC bidirectional stream) after the hello exchange:
/// a read loop that only routes frames (it never awaits a consumer), and exactly one writer that
/// writes control frames before data and takes data frames round-robin across streams.
/// </summary>
public sealed partial class MuxConnection
{
    private readonly IAsyncStreamReader<FrameBatch> _reader;
    private readonly Func<FrameBatch, CancellationToken, Task> _write;
    private readonly ILogger _logger;
    private readonly bool _opensStreams;
    private readonly ConcurrentDictionary<ulong, MuxStream> _streams = new();
    private int _streamCount; // streams counted against MaxConcurrentStreams (reserved before they are added)
    private readonly ConcurrentQueue<(Frame Frame, TaskCompletionSource? Done)> _control = new();
    private readonly ConcurrentQueue<(Frame Frame, TaskCompletionSource Done, byte[]? Pooled)> _data = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _closed = new();
    private readonly ConcurrentDictionary<long, long> _pings = new();
    private readonly TaskCompletionSource _writerStopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _openLock = new();
    private int _wakePending;
    private int _controlCount;
    private long _nextLocalStream;
    private ulong _highestPeerStream;
    private long _nextPingId;
    private long _lastPongTicks;
    private long _rttMicros = -1;
    private string? _closeReason;

    /// <param name="reader">Frames from the peer (the hello exchange already consumed).</param>
    /// <param name="write">Writes one batch; only ever called by this connection's writer; cancelled when the connection closes.</param>
    /// <param name="opensStreams">True at the gateway, which opens request streams (odd numbers).</param>
    public MuxConnection(IAsyncStreamReader<FrameBatch> reader, Func<FrameBatch, CancellationToken, Task> write, MuxSettings settings, bool opensStreams, ILogger logger)
    {
        _reader = reader;
        _write = write;
        Settings = settings;
        _opensStreams = opensStreams;
        _logger = logger;
        _nextLocalStream = -1;
        _lastPongTicks = Stopwatch.GetTimestamp();
    }

    public MuxSettings Settings { get; }

    // Written only by the writer (…Written) and the read loop (…Read); read by admin views.
    private long _messagesWritten;
    private long _framesWritten;
    private long _messagesRead;
    private long _framesRead;

    /// <summary>Cancelled once the connection is closed for any reason.</summary>
    public CancellationToken Closed => _closed.Token;

    /// <summary>Why the connection closed (null while open).</summary>
    public string? CloseReason => Volatile.Read(ref _closeReason);

    /// <summary>Streams open now.</summary>
    public int ActiveStreams => Volatile.Read(ref _streamCount);

    /// <summary>Control frames waiting for the writer.</summary>
    public int QueuedControlFrames => Volatile.Read(ref _controlCount);

    /// <summary>
    /// gRPC messages (frame batches) and frames written and read so far; frames per message is how much
    /// the writer coalesces (one message is one HTTP/2 DATA write and flush).
    /// </summary>
    public MuxTraffic Traffic => new(Volatile.Read(ref _messagesWritten), Volatile.Read(ref _framesWritten),
        Volatile.Read(ref _messagesRead), Volatile.Read(ref _framesRead));

    /// <summary>Last measured ping round trip, or null before the first pong.</summary>
    public TimeSpan? RoundTripTime => Volatile.Read(ref _rttMicros) is var us and >= 0 ? TimeSpan.FromMicroseconds(us) : null;

    /// <summary>True once the peer said go-away: open nothing new here.</summary>
    public bool GoAwayReceived { get; private set; }

    /// <summary>Called (on the read loop) for each request the peer opens; must not block.</summary>
    public Action<MuxStream, RequestHead>? RequestReceived { get; set; }

    /// <summary>Called when the peer sends go-away.</summary>
    public Action<string>? GoAwayHandler { get; set; }

    /// <summary>Called (on the read loop: do not block) when the peer sends a config frame.</summary>
    public Action<Config>? ConfigHandler { get; set; }

    /// <summary>Called (on the read loop: do not block) when the peer reports its services' health.</summary>
    public Action<HealthReport>? HealthHandler { get; set; }

    /// <summary>Called (with a description) when the peer breaks the protocol on a stream or the connection.</summary>
    public Action<string>? ProtocolViolation { get; set; }

    /// <summary>Runs the read loop, the writer and the heartbeat until the connection ends; never throws.</summary>
    /// <param name="cancelledReason">The close reason when <paramref name="cancellationToken"/> fires (what its owner knows that means).</param>
    public async Task RunAsync(TimeSpan heartbeatInterval, CancellationToken cancellationToken, string cancelledReason = "shutting down")
    {
        using var link = cancellationToken.Register(() => Close(cancelledReason));
        var writer = Task.Run(WriteLoopAsync);
        var heartbeat = heartbeatInterval > TimeSpan.Zero ? Task.Run(() => HeartbeatLoopAsync(heartbeatInterval)) : Task.CompletedTask;
        try
        {
            await ReadLoopAsync().ConfigureAwait(false);
            Close("the peer closed the tunnel stream");
        }
        catch (OperationCanceledException) when (_closed.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (ex is RpcException or IOException or InvalidOperationException or ObjectDisposedException)
        {
            Close($"the tunnel stream failed: {Describe(ex)}");
        }
        catch (MuxPeerErrorException ex)
        {
            Close($"the peer closed the tunnel: {ex.Message}");
        }
        catch (MuxProtocolException ex)
        {
            ProtocolViolation?.Invoke(ex.Message);
            await SendFinalErrorAsync("protocol_error", ex.Message).ConfigureAwait(false);
            Close($"protocol error: {ex.Message}");
        }
        await writer.ConfigureAwait(false);
        await heartbeat.ConfigureAwait(false);
    }

    /// <summary>Opens a new request stream (gateway side).</summary>
    public MuxStream OpenStream()
    {
        if (!_opensStreams)
        {
            throw new InvalidOperationException("only the gateway side opens streams");
        }
        if (_closed.IsCancellationRequested)
        {
            throw new MuxStreamAbortedException(new Reset { Code = ResetCode.Refused, Reason = CloseReason ?? "connection closed" });
        }
        // Reserve the slot atomically: a check on the map's count raced with concurrent opens.
        if (!TryReserveStream())
        {
            throw new MuxStreamAbortedException(new Reset { Code = ResetCode.Refused, Reason = $"the connection carries its limit of {Settings.MaxConcurrentStreams} concurrent streams" });
        }
        // The number is given when the head is sent, so numbers reach the wire in increasing order.
        return new MuxStream(this, 0, Settings.SendWindow, Settings.ReceiveWindow) { Counted = true };
    }

    internal Task StartStream(MuxStream stream, Frame head)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_openLock)
        {
            ulong id = (ulong)Interlocked.Add(ref _nextLocalStream, 2);
            stream.Id = id;
            head.Stream = id;
            _streams[id] = stream;
            Interlocked.Increment(ref _controlCount);
            _control.Enqueue((head, done));
        }
        if (_closed.IsCancellationRequested)
        {
            stream.OnConnectionLost(CloseReason ?? "connection closed");
        }
        Wake();
        FailIfWriterStopped();
        return done.Task;
    }

    /// <summary>Closes the connection once no stream is open any more (after a go-away either way).</summary>
    public static async Task CloseWhenIdleAsync(MuxConnection mux, string reason)
    {
        while (mux.ActiveStreams > 0 && !mux.Closed.IsCancellationRequested)
        {
            await Task.Delay(100).ConfigureAwait(false);
        }
        mux.Close(reason);
    }

    /// <summary>Sends go-away: the peer should open nothing new here.</summary>
    public void SendGoAway(string reason) =>
        EnqueueControl(new Frame { GoAway = new GoAway { Reason = reason } });

    /// <summary>Sends a connection-level frame (e.g. configuration) ahead of data.</summary>
    public void SendConnectionFrame(Frame frame) => EnqueueControl(frame, withCompletion: false);

    /// <summary>Closes the connection: every open stream is aborted with the reason.</summary>
    public void Close(string reason)
    {
        if (Interlocked.CompareExchange(ref _closeReason, reason, null) is not null)
        {
            return;
        }
        try
        {
            _closed.Cancel();
        }
        catch (AggregateException)
        {
        }
        foreach (var stream in _streams.Values)
        {
            stream.OnConnectionLost($"tunnel connection lost: {reason}");
        }
        Wake();
    }

    /// <summary>Sends an error frame, waits (briefly) for it to be written, then closes.</summary>
    public async Task CloseWithErrorAsync(string code, string message)
    {
        var done = EnqueueControlWithCompletion(new Frame { Error = new Error { Code = code, Message = message } });
        await Task.WhenAny(done, Task.Delay(TimeSpan.FromSeconds(2))).ConfigureAwait(false);
        Close(message);
    }

    internal void Remove(MuxStream stream)
    {
        _streams.TryRemove(stream.Id, out _);
        if (stream.Counted)
        {
            Interlocked.Decrement(ref _streamCount);
        }
    }

    private bool TryReserveStream()
    {
        if (Interlocked.Increment(ref _streamCount) > Settings.MaxConcurrentStreams)
        {
            Interlocked.Decrement(ref _streamCount);
            return false;
        }
        return true;
    }

    internal void ReportStreamProtocolError(MuxStream stream, string reason)
    {
        int count = Interlocked.Increment(ref _violations);
        // The log is rate-limited per connection: the first few, then every 100th (a hostile peer writes no flood).
        if (count <= 3 || count % 100 == 0)
        {
            LogStreamProtocolError(_logger, stream.Id, reason, count);
        }
        ProtocolViolation?.Invoke($"stream {stream.Id}: {reason}");
        if (count == Settings.MaxProtocolViolations)
        {
            _ = CloseWithErrorAsync("protocol_error", $"{count} stream protocol errors on this connection (the last: {reason})");
        }
    }

    private int _violations;

    /// <summary>Stream protocol errors the peer caused on this connection.</summary>
    public int ProtocolViolations => Volatile.Read(ref _violations);

    private static string Describe(Exception ex) => ex switch
    {
        RpcException rpc => $"{rpc.StatusCode}: {rpc.Status.Detail}",
        _ => ex.Message,
    };

    [LoggerMessage(EventId = 100, EventName = "ForgedStream", Level = LogLevel.Warning,
        Message = "Rejected a {Kind} frame for stream {Stream}, which was never opened on this connection; the frame was dropped. A well-behaved peer never does this: check the peer's version.")]
    private static partial void LogForgedStream(ILogger logger, ulong stream, string kind);

    [LoggerMessage(EventId = 101, EventName = "StreamProtocolError", Level = LogLevel.Warning,
        Message = "Stream {Stream} reset as a protocol error: {Reason} (violation {Count} on this connection; logged for the first 3, then every 100th; the connection closes at MaxProtocolViolations)")]
    private static partial void LogStreamProtocolError(ILogger logger, ulong stream, string reason, int count);
}

/// <summary>The peer broke the protocol at the connection level; the connection is closed.</summary>
public sealed class MuxProtocolException(string message) : Exception(message);

/// <summary>The peer sent an Error frame and is closing the connection.</summary>
public sealed class MuxPeerErrorException(string code, string message) : Exception($"{code}: {message}")
{
    public string Code { get; } = code;
}

/// <summary>Messages and frames a <see cref="MuxConnection"/> wrote and read.</summary>
public readonly record struct MuxTraffic(long MessagesWritten, long FramesWritten, long MessagesRead, long FramesRead);
