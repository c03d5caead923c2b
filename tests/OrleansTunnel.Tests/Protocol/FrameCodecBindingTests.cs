using Grpc.AspNetCore.Server;
using Grpc.Core;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;
using OrleansTunnel.Tests.EndToEnd;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Protocol;

/// <summary>The gateway serves both tunnel methods with the tunnel's own codec, not the generated marshaller.</summary>
[Collection("shared harness")]
public sealed class FrameCodecBindingTests(SharedHarness fixture)
{
    private TunnelHarness H => fixture.Harness;

    [Theory]
    [InlineData("Connect")]
    [InlineData("Peer")]
    public void TheGatewayBindsTheTunnelMethod_WithTheFrameCodec(string name)
    {
        var methods = H.Gateway.Services.GetRequiredService<EndpointDataSource>().Endpoints
            .Select(e => e.Metadata.GetMetadata<GrpcMethodMetadata>()?.Method)
            .OfType<Method<FrameBatch, FrameBatch>>()
            .Where(m => m.ServiceName == "orleanstunnel.v1.Tunnel" && m.Name == name)
            .ToList();
        var method = Assert.Single(methods);
        Assert.Same(FrameCodec.Marshaller, method.RequestMarshaller);
        Assert.Same(FrameCodec.Marshaller, method.ResponseMarshaller);
    }
}
