using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>gRPC status codes the gateway itself answers with, and how it writes them.</summary>
public static class GrpcStatus
{
    public const int Cancelled = 1;
    public const int DeadlineExceeded = 4;
    public const int NotFound = 5;
    public const int ResourceExhausted = 8;
    public const int Internal = 13;
    public const int Unavailable = 14;
    public const int InvalidArgument = 3;

    /// <summary>The gRPC code for an HTTP status the gateway would otherwise have answered.</summary>
    public static int FromHttp(int status) => status switch
    {
        404 => NotFound,
        413 or 429 => ResourceExhausted,
        504 => DeadlineExceeded,
        502 or 503 => Unavailable,
        400 or 414 or 431 => InvalidArgument,
        _ => Internal,
    };

    /// <summary>A trailers-only response (HTTP 200, grpc-status in the headers, no body); false once the response started.</summary>
    public static bool TryWriteTrailersOnly(HttpContext context, int code, string message)
    {
        var response = context.Response;
        if (response.HasStarted)
        {
            return false;
        }
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/grpc";
        response.Headers["grpc-status"] = code.ToString(CultureInfo.InvariantCulture);
        response.Headers["grpc-message"] = Encode(message);
        response.ContentLength = null;
        return true;
    }

    /// <summary>Ends a started gRPC response with a status in its trailers (HTTP/2 only).</summary>
    public static bool TryWriteTrailers(HttpContext context, int code, string message)
    {
        var trailers = context.Features.Get<IHttpResponseTrailersFeature>();
        if (trailers?.Trailers is not { IsReadOnly: false } target)
        {
            return false;
        }
        target["grpc-status"] = code.ToString(CultureInfo.InvariantCulture);
        target["grpc-message"] = Encode(message);
        return true;
    }

    /// <summary>Parses a grpc-timeout value ("100m", "5S", "1H", ...); null when absent or malformed.</summary>
    /// <summary>Whether a response head carries grpc-status (a Trailers-Only answer: no body follows).</summary>
    public static bool HasStatus(IEnumerable<OrleansTunnel.Protocol.V1.Header> headers)
    {
        foreach (var h in headers)
        {
            if (h.Name.Equals("grpc-status", StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }
        return false;
    }

    public static TimeSpan? ParseTimeout(string? value)
    {
        if (string.IsNullOrEmpty(value) || value.Length < 2 || value.Length > 9
            || !long.TryParse(value.AsSpan(0, value.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out long amount))
        {
            return null;
        }
        return value[^1] switch
        {
            'H' => TimeSpan.FromHours(amount),
            'M' => TimeSpan.FromMinutes(amount),
            'S' => TimeSpan.FromSeconds(amount),
            'm' => TimeSpan.FromMilliseconds(amount),
            'u' => TimeSpan.FromMicroseconds(amount),
            'n' => TimeSpan.FromTicks(amount / 100),
            _ => null,
        };
    }

    /// <summary>Percent-encodes a grpc-message (gRPC over HTTP/2 spec).</summary>
    public static string Encode(string message)
    {
        var builder = new StringBuilder(message.Length);
        foreach (byte b in Encoding.UTF8.GetBytes(message))
        {
            if (b is >= 0x20 and <= 0x7E && b != '%')
            {
                builder.Append((char)b);
            }
            else
            {
                builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }
        return builder.ToString();
    }
}
