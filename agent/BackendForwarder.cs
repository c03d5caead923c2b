using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Agent.Telemetry;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Agent;

/// <summary>
/// Forwards one tunnelled request to its local backend with a pooled <see cref="SocketsHttpHandler"/>
/// and streams the answer back. Failures become resets with a code the gateway maps to 502/504.
/// </summary>
public sealed partial class BackendForwarder : IDisposable
{
    private readonly AgentOptions _options;
    private readonly ILogger _logger;
    private readonly AgentTelemetry _telemetry;
    private readonly Dictionary<string, Backend> _backends = new(StringComparer.Ordinal);
    private readonly HttpMessageInvoker _http1;
    private readonly HttpMessageInvoker _http2;
    private readonly L4.L4Forwarder _l4;

    private sealed record Backend(string Name, Uri BaseUri, string Scheme, HttpMessageInvoker Invoker, Version Version, HttpVersionPolicy Policy);

    public BackendForwarder(IOptions<AgentOptions> options, AgentTelemetry telemetry, ILogger<BackendForwarder> logger, L4.L4Forwarder l4)
    {
        _l4 = l4;
        _options = options.Value;
        _logger = logger;
        _telemetry = telemetry;
        _http1 = new HttpMessageInvoker(CreateHandler(_options, null), disposeHandler: true);
        _http2 = new HttpMessageInvoker(CreateHandler(_options, null), disposeHandler: true);
        foreach (var service in _options.Services)
        {
            var (baseUri, scheme) = ParseBackendUrl(service.Url);
            if (L4.L4Forwarder.IsL4Scheme(scheme))
            {
                continue; // tcp:// and udp:// backends: agent/L4
            }
            bool h2 = scheme == "h2c";
            // A backend with its own trust settings gets its own pool; the others share one.
            var invoker = scheme == "https" && (service.SkipCertificateValidation || !string.IsNullOrEmpty(service.CaFile))
                ? new HttpMessageInvoker(CreateHandler(_options, service), disposeHandler: true)
                : h2 ? _http2 : _http1;
            _backends[service.Name] = new Backend(service.Name, baseUri, scheme, invoker,
                h2 ? HttpVersion.Version20 : HttpVersion.Version11,
                h2 ? HttpVersionPolicy.RequestVersionExact : HttpVersionPolicy.RequestVersionOrLower);
        }
    }

    /// <summary>Services and the scheme used towards each backend.</summary>
    public IEnumerable<ServiceOffer> Offers => _backends.Values.Select(b => new ServiceOffer
    {
        Name = b.Name, Scheme = b.Scheme,
        HealthPath = _options.Services.FirstOrDefault(s => s.Name == b.Name)?.HealthPath ?? "",
    }).Concat(_l4.Offers);

    /// <summary>Sends a request to a service's backend through its pool (health probes); null for an unknown service.</summary>
    internal Task<HttpResponseMessage>? SendToBackendAsync(string service, string pathAndQuery, CancellationToken cancellationToken)
    {
        if (!_backends.TryGetValue(service, out var backend) || BackendTarget.Build(backend.BaseUri, pathAndQuery).Uri is not { } target)
        {
            return null;
        }
        var request = new HttpRequestMessage(HttpMethod.Get, target) { Version = backend.Version, VersionPolicy = backend.Policy };
        return backend.Invoker.SendAsync(request, cancellationToken);
    }

    /// <summary>Splits http://, h2c:// and https:// backend URLs into a base URI and a scheme.</summary>
    public static (Uri BaseUri, string Scheme) ParseBackendUrl(string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
        {
            throw new ArgumentException($"backend URL '{url}' is not an absolute URL like http://127.0.0.1:3000");
        }
        string scheme = uri.Scheme.ToLowerInvariant();
        var builder = new UriBuilder(uri) { Path = uri.AbsolutePath.TrimEnd('/'), Query = "" };
        switch (scheme)
        {
            case "http":
                break;
            case "h2c":
                builder.Scheme = "http";
                builder.Port = uri.Port;
                break;
            case "https":
                break;
            case "tcp" or "udp" when uri.Port > 0:
                break;
            case "tcp" or "udp":
                throw new ArgumentException($"backend URL '{url}' needs a port, like {scheme}://127.0.0.1:5432");
            default:
                throw new ArgumentException($"backend URL '{url}' has scheme '{uri.Scheme}'; use http://, h2c://, https://, tcp:// or udp://");
        }
        return (builder.Uri, scheme);
    }

    /// <summary>Handles one request stream to completion; never throws.</summary>
    public async Task ForwardAsync(MuxStream stream, RequestHead head)
    {
        if (head.Protocol is OrleansTunnel.Protocol.V1.Protocol.Tcp or OrleansTunnel.Protocol.V1.Protocol.Udp)
        {
            await _l4.ForwardAsync(stream, head);
            return;
        }
        long started = Stopwatch.GetTimestamp();
        var activity = AgentTelemetry.StartRequest(head);
        if (!_backends.TryGetValue(head.Service, out var backend))
        {
            stream.Reset(ResetCode.UnknownService, $"this agent does not serve service '{head.Service}'");
            _telemetry.EndRequest(head.Service, AgentTelemetry.ResetName(ResetCode.UnknownService), started, activity);
            return;
        }
        var (target, targetProblem) = BackendTarget.Build(backend.BaseUri, head.PathAndQuery);
        if (target is null)
        {
            stream.Reset(ResetCode.BadRequest, targetProblem!);
            _telemetry.EndRequest(head.Service, AgentTelemetry.ResetName(ResetCode.BadRequest), started, activity);
            return;
        }
        var cancel = stream.Aborted;
        HttpResponseMessage? response = null;
        bool webSocket = head.Protocol == OrleansTunnel.Protocol.V1.Protocol.Websocket;
        string outcome = AgentTelemetry.ResetName(ResetCode.Internal);
        try
        {
            using var request = BuildRequest(backend, target, head, stream, webSocket);
            if (activity is not null)
            {
                // The backend's parent is the agent's span: the gateway's traceparent is replaced.
                AgentTelemetry.Inject(request, activity);
            }
            try
            {
                response = await backend.Invoker.SendAsync(request, cancel);
                outcome = AgentTelemetry.StatusName((int)response.StatusCode);
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                outcome = AgentTelemetry.ResetName(ResetCode.Cancelled);
                LogCancelled(_logger, head.RequestId, stream.AbortReason?.Reason ?? "reset");
                return;
            }
            catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or IOException)
            {
                var (code, reason) = Classify(ex, backend);
                outcome = AgentTelemetry.ResetName(code);
                LogBackendFailed(_logger, head.RequestId, backend.Name, reason);
                stream.Reset(code, reason);
                return;
            }

            if (response.StatusCode == HttpStatusCode.SwitchingProtocols)
            {
                // Only a real WebSocket switch becomes a byte pipe; any other 101 is refused.
                if ((webSocket ? WebSocketHandshake.Problem(response) : "the backend answered 101 to a request that asked for no upgrade") is { } switchProblem)
                {
                    outcome = AgentTelemetry.ResetName(ResetCode.ProtocolError);
                    LogBackendFailed(_logger, head.RequestId, backend.Name, switchProblem);
                    stream.Reset(ResetCode.ProtocolError, switchProblem);
                    return;
                }
                await RelayWebSocketAsync(stream, head, response, backend);
                return;
            }
            await RelayResponseAsync(stream, head, response, backend);
        }
        catch (MuxStreamAbortedException)
        {
            // The gateway reset the request or the tunnel was lost: the backend call is abandoned.
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            LogUnexpected(_logger, head.RequestId, ex);
            // The exception's text stays in the agent's log: it may name hosts and paths of the private network.
            stream.Reset(ResetCode.Internal, $"the agent failed to forward the request ({ex.GetType().Name}; see the agent's log for request {head.RequestId})");
        }
        finally
        {
            response?.Dispose();
            stream.Complete();
            _telemetry.EndRequest(head.Service, outcome, started, activity);
        }
    }

    private async Task RelayResponseAsync(MuxStream stream, RequestHead head, HttpResponseMessage response, Backend backend)
    {
        var cancel = stream.Aborted;
        var responseHead = new ResponseHead { Status = (int)response.StatusCode };
        AddHeaders(responseHead.Headers, response.Headers, response.Content.Headers);
        var frame = new Frame { ResponseHead = responseHead };
        long? length = response.Content.Headers.ContentLength;
        bool noBody = head.Method == "HEAD" || response.StatusCode is HttpStatusCode.NoContent or HttpStatusCode.NotModified
            || (int)response.StatusCode < 200 || length == 0;
        if (noBody)
        {
            responseHead.EndOfBody = true;
            stream.SendHead(frame);
            return;
        }

        var body = await response.Content.ReadAsStreamAsync(cancel);
        // Buffers fit the body: a known length rents no more than it, an unknown one starts at
        // ResponseInitialBufferSize (a gRPC answer or an event stream is a few hundred bytes at a time) and
        // grows to ResponseBufferSize as soon as a read fills its buffer. Two 64 KiB buffers per call held across a gRPC call's wait for its
        // trailers outgrew ArrayPool's shared cache at 64 concurrent calls: ~27 KB allocated per call.
        int size = length is > 0 ? (int)Math.Min(length.Value, _options.ResponseBufferSize) : _options.ResponseInitialBufferSize;
        byte[]? current = ArrayPool<byte>.Shared.Rent(size);
        byte[]? next = null; // the read-ahead buffer, rented only when a body has more than one chunk
        int? firstRead = null;
        try
        {
            // A small body of known length travels with its head: read it whole (it is bounded) first.
            if (length is > 0 && length <= _options.MaxDataFrame && length <= current.Length)
            {
                int filled = await ReadAtLeastAsync(body, current.AsMemory(0, (int)length), cancel);
                if (filled == length && stream.TrySendHeadWithBody(frame, current.AsSpan(0, filled)))
                {
                    return;
                }
                stream.SendHead(frame);
                await stream.SendDataAsync(current.AsMemory(0, filled), endOfBody: false, cancel);
            }
            else
            {
                // A body already known to be empty (an HTTP/2 answer whose headers carried END_STREAM,
                // e.g. a gRPC Trailers-Only status) ends with its head, so the visitor gets one HEADERS frame.
                var first = body.ReadAsync(current, cancel);
                int? early = first.IsCompleted ? first.Result : null;
                if (early == 0 && !HasTrailers(response))
                {
                    responseHead.EndOfBody = true;
                    stream.SendHead(frame);
                    return;
                }
                if (early is null)
                {
                    try
                    {
                        stream.SendHead(frame);
                    }
                    catch
                    {
                        await SettleReadAsync(body, first);
                        throw;
                    }
                    firstRead = await first;
                }
                else
                {
                    stream.SendHead(frame);
                    firstRead = early;
                }
            }

            // Read one chunk ahead so the last chunk can carry the end of body, but never hold a chunk
            // back while the backend is silent: a chunk waits only for a read that already completed.
            // Each chunk's buffer is handed to the tunnel with it (no copy into a frame buffer); the
            // writer returns it to the pool once written, and the next read gets a fresh one.
            int n = firstRead ?? await body.ReadAsync(current!, cancel);
            while (n > 0)
            {
                next ??= ArrayPool<byte>.Shared.Rent(n >= current!.Length ? _options.ResponseBufferSize : current.Length);
                var pending = body.ReadAsync(next, cancel);
                bool sent = false;
                if (!pending.IsCompleted)
                {
                    try
                    {
                        var chunk = current!;
                        current = null;
                        await stream.SendLeasedDataAsync(chunk, n, endOfBody: false, cancel);
                    }
                    catch
                    {
                        // The read still writes into next: it must end before next goes back to the pool.
                        await SettleReadAsync(body, pending);
                        throw;
                    }
                    sent = true;
                }
                int m = await pending;
                if (!sent)
                {
                    bool end = m == 0 && !HasTrailers(response);
                    var chunk = current!;
                    current = null;
                    await stream.SendLeasedDataAsync(chunk, n, end, cancel);
                    if (end)
                    {
                        return;
                    }
                }
                (current, next) = (next, null);
                n = m;
            }
            if (HasTrailers(response))
            {
                var trailers = new List<Header>();
                foreach (var (name, values) in response.TrailingHeaders)
                {
                    foreach (var value in values)
                    {
                        trailers.Add(new Header { Name = name, Value = value });
                    }
                }
                await stream.SendTrailersAsync(trailers);
            }
            else
            {
                await stream.SendDataAsync(ReadOnlyMemory<byte>.Empty, endOfBody: true, cancel);
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException && !cancel.IsCancellationRequested)
        {
            LogBackendFailed(_logger, head.RequestId, backend.Name, "the response body broke off: " + ex.Message);
            stream.Reset(ResetCode.BackendUnavailable, "the backend's response broke off mid-body");
        }
        finally
        {
            if (current is not null)
            {
                ArrayPool<byte>.Shared.Return(current);
            }
            if (next is not null)
            {
                ArrayPool<byte>.Shared.Return(next);
            }
        }
    }

    /// <summary>Ends a read still in flight (by disposing the body) and waits for it, so its buffer can be reused.</summary>
    private static async ValueTask SettleReadAsync(Stream body, ValueTask<int> pending)
    {
        await body.DisposeAsync();
        try
        {
            await pending;
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or HttpRequestException or ObjectDisposedException)
        {
            // A read cut short by the dispose: the point was only to wait for it.
        }
    }

    private static bool HasTrailers(HttpResponseMessage response) => response.TrailingHeaders.Any();

    private static async ValueTask<int> ReadAtLeastAsync(Stream body, Memory<byte> buffer, CancellationToken cancel)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = await body.ReadAsync(buffer[total..], cancel);
            if (n == 0)
            {
                break;
            }
            total += n;
        }
        return total;
    }

    private (ResetCode Code, string Reason) Classify(Exception ex, Backend backend)
    {
        var socket = ex.InnerException as SocketException ?? ex.InnerException?.InnerException as SocketException;
        if (ex is OperationCanceledException || ex.InnerException is TimeoutException)
        {
            return (ResetCode.BackendTimeout, $"connecting to {backend.BaseUri.Authority} timed out after {_options.BackendConnectTimeout.TotalSeconds:0.#} s");
        }
        if (socket?.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return (ResetCode.BackendUnavailable, $"connection refused by {backend.BaseUri.Authority}");
        }
        return (ResetCode.BackendUnavailable, $"{backend.BaseUri.Authority}: {ex.Message}");
    }

    public void Dispose()
    {
        foreach (var invoker in _backends.Values.Select(b => b.Invoker).Append(_http1).Append(_http2).Distinct())
        {
            invoker.Dispose();
        }
    }

    [LoggerMessage(EventId = 600, EventName = "BackendFailed", Level = LogLevel.Warning,
        Message = "Request {RequestId} to service '{Service}' failed at the backend: {Reason}. Check that the backend is running at the configured URL.")]
    private static partial void LogBackendFailed(ILogger logger, string requestId, string service, string reason);

    [LoggerMessage(EventId = 601, EventName = "RequestCancelled", Level = LogLevel.Debug,
        Message = "Request {RequestId} cancelled by the gateway ({Reason}); the backend call was aborted.")]
    private static partial void LogCancelled(ILogger logger, string requestId, string reason);

    [LoggerMessage(EventId = 602, EventName = "ForwardUnexpected", Level = LogLevel.Error,
        Message = "Request {RequestId} failed inside the agent.")]
    private static partial void LogUnexpected(ILogger logger, string requestId, Exception ex);
}
