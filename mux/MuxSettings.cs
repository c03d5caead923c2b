namespace OrleansTunnel.Mux;

/// <summary>Limits of one multiplexed tunnel connection (both ends use the same type).</summary>
public sealed record MuxSettings
{
    /// <summary>Protocol version spoken by this build; a Hello with another version is refused.</summary>
    public const uint ProtocolVersion = 2;

    /// <summary>Hard ceiling of a Data frame's payload, fixed by the protocol.</summary>
    public const int MaxDataFrameCeiling = 64 * 1024;

    /// <summary>Largest payload this end puts in one Data frame (at most 64 KiB).</summary>
    public int MaxDataFrame { get; init; } = MaxDataFrameCeiling;

    /// <summary>Credit this end grants the peer per stream for bodies it receives.</summary>
    public int ReceiveWindow { get; init; } = 256 * 1024;

    /// <summary>Credit the peer granted this end per stream (learnt from Hello/Welcome).</summary>
    public int SendWindow { get; init; } = 256 * 1024;

    /// <summary>Upper bound of the bytes the single writer coalesces into one gRPC message.</summary>
    public int MaxBatchBytes { get; init; } = 512 * 1024;

    /// <summary>
    /// Most body bytes one stream keeps queued for the writer (written or not yet); at least one data
    /// frame always goes. More than one frame lets the writer put several frames of a bulk stream in one
    /// gRPC message; the bound keeps the round-robin across streams fine-grained.
    /// </summary>
    public int MaxStreamQueuedBytes { get; init; } = 256 * 1024;

    /// <summary>Bound of the control-frame queue; a peer that makes us queue more is dropped.</summary>
    public int MaxQueuedControlFrames { get; init; } = 65_536;

    /// <summary>
    /// Frames one stream may hold for its reader (data, heads, trailers not read yet). Data is also bounded by
    /// credit, but empty frames cost no credit: a peer that queues more than this is a stream protocol error.
    /// </summary>
    public int MaxQueuedFramesPerStream { get; init; } = 4096;

    /// <summary>Stream protocol errors a peer may cause on one connection before the whole connection is closed.</summary>
    public int MaxProtocolViolations { get; init; } = 16;

    /// <summary>Most streams open at once on one connection; more is a protocol error.</summary>
    public int MaxConcurrentStreams { get; init; } = 10_000;
}
