using Grpc.Core;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.Tunnel;

/// <summary>
/// The tunnel service's gRPC binding: <c>orleanstunnel.v1.Tunnel</c>'s Connect and Peer, served with the
/// tunnel's own frame codec (<see cref="FrameCodec"/>: pooled data payloads, sizes measured once) instead
/// of the generated marshaller. The bytes on the wire are the same.
/// </summary>
[BindServiceMethod(typeof(TunnelServiceBase), nameof(BindService))]
public abstract class TunnelServiceBase
{
    /// <summary>An agent's tunnel connection.</summary>
    public abstract Task Connect(IAsyncStreamReader<FrameBatch> requestStream, IServerStreamWriter<FrameBatch> responseStream, ServerCallContext context);

    /// <summary>Another gateway's peer link (cross-gateway dispatch).</summary>
    public abstract Task Peer(IAsyncStreamReader<FrameBatch> requestStream, IServerStreamWriter<FrameBatch> responseStream, ServerCallContext context);

    /// <summary>Called by Grpc.AspNetCore when the service is mapped (with no instance: it activates one per call).</summary>
    public static void BindService(ServiceBinderBase binder, TunnelServiceBase? service)
    {
        binder.AddMethod(FrameCodec.Connect, service is null ? null! : new DuplexStreamingServerMethod<FrameBatch, FrameBatch>(service.Connect));
        binder.AddMethod(FrameCodec.Peer, service is null ? null! : new DuplexStreamingServerMethod<FrameBatch, FrameBatch>(service.Peer));
    }
}
