using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using Grpc.Core;
using Grpc.Net.Client;
using OrleansTunnel.Demo;
using OrleansTunnel.Tests.Grpc;
using OrleansTunnel.Tests.Infrastructure;

namespace OrleansTunnel.Tests.Churn;

/// <summary>What one operation of the load did.</summary>
public sealed record ChurnOutcome(string Kind, TimeSpan Started, TimeSpan Ended, bool Ok, bool Hung, string? Error);

/// <summary>
/// Steady load through one address (the load balancer): small GETs at a fixed rate (open loop: started on
/// schedule whether or not earlier ones answered), plus one long download
/// (compared by hash), one Server-Sent Events stream, one WebSocket echo session and one gRPC duplex
/// stream, each repeated back to back. Every operation has a deadline; one that reaches it is "hung"
/// (cancelled by the load, counted apart from failures). Outcomes carry start and end times, so a
/// test can count what overlapped each restart.
/// </summary>
public sealed class ChurnLoad : IAsyncDisposable
{
    public const long DownloadSize = 32L << 20;
    private static readonly Lazy<string> DownloadHash = new(() => DemoBackend.DownloadHash(DownloadSize));

    private readonly Uri _http;
    private readonly Uri _h2c;
    private double _smallPerSecond;
    private readonly ConcurrentQueue<ChurnOutcome> _outcomes = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly HttpClient _client = new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, PooledConnectionIdleTimeout = TimeSpan.FromSeconds(5) })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };
    private readonly GrpcChannel _channel;
    private readonly List<Task> _loops = [];
    private readonly ConcurrentDictionary<Task, bool> _small = new();

    public ChurnLoad(Uri http, Uri h2c, double smallPerSecond)
    {
        _http = http;
        _h2c = h2c;
        _smallPerSecond = smallPerSecond;
        _channel = GrpcChannel.ForAddress(h2c, new GrpcChannelOptions { HttpHandler = new SocketsHttpHandler { UseProxy = false } });
    }

    public TimeSpan Now => _clock.Elapsed;

    public IReadOnlyList<ChurnOutcome> Outcomes => [.. _outcomes];

    /// <summary>Starts the small GETs at the rate given to the constructor and the long operations.</summary>
    public void Start()
    {
        StartLong();
        StartSmall(_smallPerSecond);
    }

    /// <summary>Starts the small GETs at a fixed rate.</summary>
    public void StartSmall(double perSecond)
    {
        _smallPerSecond = perSecond;
        _loops.Add(Task.Run(SmallLoopAsync));
    }

    /// <summary>Starts the long operations (download, SSE, WebSocket, gRPC), each repeated back to back.</summary>
    public void StartLong()
    {
        _loops.Add(Task.Run(() => RepeatAsync("download", TimeSpan.FromSeconds(120), DownloadAsync)));
        _loops.Add(Task.Run(() => RepeatAsync("sse", TimeSpan.FromSeconds(60), SseAsync)));
        _loops.Add(Task.Run(() => RepeatAsync("websocket", TimeSpan.FromSeconds(60), WebSocketAsync)));
        _loops.Add(Task.Run(() => RepeatAsync("grpc", TimeSpan.FromSeconds(60), GrpcAsync)));
    }

    /// <summary>Stops starting operations and waits for those running (each ends by its own deadline).</summary>
    public async Task StopAsync()
    {
        _stop.Cancel();
        await Task.WhenAll(_loops).WaitAsync(TimeSpan.FromMinutes(3));
        await Task.WhenAll(_small.Keys).WaitAsync(TimeSpan.FromMinutes(1));
    }

    /// <summary>Outcomes of a kind that overlapped [from, to].</summary>
    public IEnumerable<ChurnOutcome> During(TimeSpan from, TimeSpan to, string? kind = null) =>
        Outcomes.Where(o => o.Started <= to && o.Ended >= from && (kind is null || o.Kind == kind));

    /// <summary>"ok/failed/hung" counts, e.g. "412 ok, 0 failed, 0 hung".</summary>
    public static string Counts(IEnumerable<ChurnOutcome> outcomes)
    {
        var list = outcomes.ToList();
        return $"{list.Count(o => o.Ok)} ok, {list.Count(o => !o.Ok && !o.Hung)} failed, {list.Count(o => o.Hung)} hung";
    }

    /// <summary>
    /// Every 10 ms, starts as many GETs as the rate owes since the loop began, so a late tick does not
    /// lower the rate (a timer per request would coalesce missed ticks on a loaded machine).
    /// </summary>
    private async Task SmallLoopAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(10));
        var since = Stopwatch.StartNew();
        long started = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                for (long due = (long)(since.Elapsed.TotalSeconds * _smallPerSecond); started < due; started++)
                {
                    var task = Run("small", TimeSpan.FromSeconds(30), SmallAsync);
                    _small[task] = true;
                    _ = task.ContinueWith(t => _small.TryRemove(t, out _), TaskScheduler.Default);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task RepeatAsync(string kind, TimeSpan deadline, Func<CancellationToken, Task> operation)
    {
        while (!_stop.IsCancellationRequested)
        {
            await Run(kind, deadline, operation);
        }
    }

    private async Task Run(string kind, TimeSpan deadline, Func<CancellationToken, Task> operation)
    {
        var started = Now;
        using var timeout = new CancellationTokenSource(deadline);
        try
        {
            await operation(timeout.Token);
            _outcomes.Enqueue(new ChurnOutcome(kind, started, Now, true, false, null));
        }
        catch (Exception ex) when (timeout.IsCancellationRequested)
        {
            _outcomes.Enqueue(new ChurnOutcome(kind, started, Now, false, true, $"no end within {deadline.TotalSeconds:0} s ({ex.GetType().Name})"));
        }
        catch (Exception ex)
        {
            _outcomes.Enqueue(new ChurnOutcome(kind, started, Now, false, false, $"{ex.GetType().Name}: {ex.Message}"));
            // A failure is recorded; do not spin on a broken path.
            await Task.Delay(200, CancellationToken.None);
        }
    }

    private async Task SmallAsync(CancellationToken cancellationToken)
    {
        using var response = await _client.GetAsync(new Uri(_http, "/hello"), cancellationToken);
        string body = await response.Content.ReadAsStringAsync(cancellationToken);
        if ((int)response.StatusCode != 200 || body != "hello")
        {
            throw new InvalidOperationException($"GET /hello answered {(int)response.StatusCode}: {Short(body)}");
        }
    }

    private async Task DownloadAsync(CancellationToken cancellationToken)
    {
        using var response = await _client.GetAsync(new Uri(_http, $"/download?size={DownloadSize}"), HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if ((int)response.StatusCode != 200)
        {
            throw new InvalidOperationException($"GET /download answered {(int)response.StatusCode}: {Short(await response.Content.ReadAsStringAsync(cancellationToken))}");
        }
        var (hash, length) = await Hashing.Sha256Async(await response.Content.ReadAsStreamAsync(cancellationToken), cancellationToken);
        if (length != DownloadSize || hash != DownloadHash.Value)
        {
            throw new InvalidOperationException($"download arrived with {length} bytes (hash {hash[..12]}), not {DownloadSize} bytes whole");
        }
    }

    private async Task SseAsync(CancellationToken cancellationToken)
    {
        const int count = 10;
        using var response = await _client.GetAsync(new Uri(_http, $"/sse?count={count}&interval_ms=200"), HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if ((int)response.StatusCode != 200)
        {
            throw new InvalidOperationException($"GET /sse answered {(int)response.StatusCode}");
        }
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
        int events = 0;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.StartsWith($"data: event {events} ", StringComparison.Ordinal))
            {
                events++;
            }
        }
        if (events != count)
        {
            throw new InvalidOperationException($"the SSE stream ended after {events} of {count} events");
        }
    }

    private async Task WebSocketAsync(CancellationToken cancellationToken)
    {
        using var ws = new ClientWebSocket();
        var uri = new UriBuilder(_http) { Scheme = "ws", Path = "/ws" }.Uri;
        await ws.ConnectAsync(uri, cancellationToken);
        var buffer = new byte[4096];
        for (int i = 0; i < 10; i++)
        {
            string text = $"message {i}";
            await ws.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, cancellationToken);
            var result = await ws.ReceiveAsync(buffer, cancellationToken);
            string echo = Encoding.UTF8.GetString(buffer, 0, result.Count);
            if (echo != text)
            {
                throw new InvalidOperationException($"the WebSocket echoed '{Short(echo)}' for '{text}' ({result.MessageType})");
            }
            await Task.Delay(200, cancellationToken);
        }
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", cancellationToken);
    }

    private async Task GrpcAsync(CancellationToken cancellationToken)
    {
        var client = new Echo.EchoClient(_channel);
        using var call = client.Duplex(cancellationToken: cancellationToken);
        for (int i = 0; i < 10; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Text = $"m{i}", Sequence = i }, cancellationToken);
            if (!await call.ResponseStream.MoveNext(cancellationToken) || call.ResponseStream.Current.Sequence != i)
            {
                throw new InvalidOperationException($"the gRPC stream did not echo message {i}");
            }
            await Task.Delay(200, cancellationToken);
        }
        await call.RequestStream.CompleteAsync();
        if (await call.ResponseStream.MoveNext(cancellationToken))
        {
            throw new InvalidOperationException("the gRPC stream sent more than it was sent");
        }
        if (call.GetStatus().StatusCode != StatusCode.OK)
        {
            throw new InvalidOperationException($"the gRPC stream ended {call.GetStatus()}");
        }
    }

    private static string Short(string text) => text.Length > 200 ? text[..200] + "..." : text;

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            try
            {
                await StopAsync();
            }
            catch (TimeoutException)
            {
            }
        }
        _client.Dispose();
        _channel.Dispose();
        _stop.Dispose();
    }
}
