using Microsoft.AspNetCore.Http;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>Answers the gateway makes itself: a status and a one-line body naming the cause (a gRPC status for gRPC callers).</summary>
public static class GatewayErrors
{
    /// <summary>Writes a gateway-made error: status and a one-line body naming the cause.</summary>
    public static async Task WriteAsync(HttpContext context, int status, string message, int? grpcCode = null)
    {
        var response = context.Response;
        if (VisitorProtocol.Detect(context) == VisitorKind.Grpc)
        {
            // gRPC callers get a gRPC status in a trailers-only response, never an HTTP error page.
            if (!GrpcStatus.TryWriteTrailersOnly(context, grpcCode ?? GrpcStatus.FromHttp(status), message)
                && !GrpcStatus.TryWriteTrailers(context, grpcCode ?? GrpcStatus.FromHttp(status), message))
            {
                context.Abort();
            }
            return;
        }
        if (response.HasStarted)
        {
            context.Abort();
            return;
        }
        response.StatusCode = status;
        response.ContentType = "text/plain; charset=utf-8";
        response.Headers.CacheControl = "no-store";
        try
        {
            await response.WriteAsync("otun: " + message + "\n", context.RequestAborted);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The visitor is gone; nothing to tell.
        }
    }
}
