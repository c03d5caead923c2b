using System.Diagnostics;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Grpc.Net.Client;
using OrleansTunnel.Demo;
using OrleansTunnel.Tests.Grpc;
using OrleansTunnel.Tests.Infrastructure;

namespace OrleansTunnel.Tests.Churn;

/// <summary>How one transfer that crossed a kill ended.</summary>
public sealed record TransferEnd(string Kind, bool Ok, string Detail, TimeSpan EndedAfterKill);

/// <summary>
/// Four long transfers through one HTTP/1.1 and one h2c address: a 1 GiB download (hashed as it streams),
/// a 1 GiB upload (generated and hashed as it streams, hash echoed by the backend), a WebSocket echo session and a gRPC duplex stream. <see cref="StartAsync"/>
/// returns once each has moved bytes, so a kill right after it lands in the middle of all four. The
/// WebSocket and gRPC sessions keep exchanging messages until <see cref="Finish"/> (or their path dies).
/// </summary>
public sealed class CrossingTransfers : IAsyncDisposable
{
    public const long Size = 1L << 30;
    private static readonly Lazy<string> DownloadHash = new(() => DemoBackend.DownloadHash(Size));

    private readonly HttpClient _client = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = Timeout.InfiniteTimeSpan };
    private readonly GrpcChannel _channel;
    private readonly Uri _http;
    private readonly CancellationTokenSource _deadline;
    private readonly CancellationTokenSource _finish = new();
    private readonly Stopwatch _sinceKill = new();
    private readonly List<Task<TransferEnd>> _transfers = [];
    private readonly List<TaskCompletionSource> _moving = [];
    private int _wsAfterKill;
    private int _grpcAfterKill;

    public CrossingTransfers(Uri http, Uri h2c, TimeSpan deadline)
    {
        _http = http;
        _channel = GrpcChannel.ForAddress(h2c, new GrpcChannelOptions { HttpHandler = new SocketsHttpHandler { UseProxy = false } });
        _deadline = new CancellationTokenSource(deadline);
    }

    /// <summary>Starts the four transfers and waits until each moved bytes.</summary>
    public async Task StartAsync()
    {
        _transfers.Add(Track("download", DownloadAsync));
        _transfers.Add(Track("upload", UploadAsync));
        _transfers.Add(Track("websocket", WebSocketAsync));
        _transfers.Add(Track("grpc", GrpcAsync));
        await Task.WhenAll(_moving.Select(m => m.Task)).Within(TimeSpan.FromSeconds(60));
    }

    /// <summary>Call right after the kill: end times are measured from here.</summary>
    public void Killed() => _sinceKill.Restart();

    /// <summary>Waits until the WebSocket and gRPC sessions each echoed <paramref name="count"/> messages after the kill, or ended.</summary>
    public Task CrossedAsync(int count) => ChurnRig.UntilAsync(
        () => Task.FromResult((Volatile.Read(ref _wsAfterKill) >= count || _transfers[2].IsCompleted) && (Volatile.Read(ref _grpcAfterKill) >= count || _transfers[3].IsCompleted)),
        TimeSpan.FromMinutes(2), "the WebSocket and gRPC sessions neither went on nor ended after the kill");

    /// <summary>Lets the message sessions close normally and waits for all four to end.</summary>
    public async Task<TransferEnd[]> EndAsync()
    {
        _finish.Cancel();
        return await Task.WhenAll(_transfers);
    }

    private TaskCompletionSource Moving()
    {
        var moving = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _moving.Add(moving);
        return moving;
    }

    private Task<TransferEnd> Track(string kind, Func<TaskCompletionSource, CancellationToken, Task<string>> transfer)
    {
        var moving = Moving();
        return Task.Run(async () =>
        {
            try
            {
                string detail = await transfer(moving, _deadline.Token);
                return new TransferEnd(kind, true, detail, _sinceKill.Elapsed);
            }
            catch (Exception ex)
            {
                moving.TrySetResult();
                string why = _deadline.IsCancellationRequested ? "HUNG: no end before the deadline" : $"{ex.GetType().Name}: {ex.Message}";
                return new TransferEnd(kind, false, why, _sinceKill.Elapsed);
            }
        });
    }

    private async Task<string> DownloadAsync(TaskCompletionSource moving, CancellationToken cancellationToken)
    {
        using var response = await _client.GetAsync(new Uri(_http, $"/download?size={Size}"), HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        response.EnsureSuccessStatusCode();
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[64 * 1024];
        long length = 0;
        int n;
        while ((n = await body.ReadAsync(buffer, cancellationToken)) > 0)
        {
            sha.AppendData(buffer, 0, n);
            length += n;
            moving.TrySetResult();
        }
        string hash = Convert.ToHexStringLower(sha.GetHashAndReset());
        return length == Size && hash == DownloadHash.Value ? $"{length} bytes, hash matches" : throw new InvalidOperationException($"download ended after {length} bytes without an error (hash {hash[..12]})");
    }

    private async Task<string> UploadAsync(TaskCompletionSource moving, CancellationToken cancellationToken)
    {
        var content = new ProgressContent(Size, moving);
        using var response = await _client.PostAsync(new Uri(_http, "/upload"), content, cancellationToken);
        string text = await response.Content.ReadAsStringAsync(cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"upload answered {(int)response.StatusCode}: {(text.Length > 200 ? text[..200] : text)}");
        }
        var echo = JsonSerializer.Deserialize<JsonElement>(text);
        string hash = echo.GetProperty("sha256").GetString()!;
        long length = echo.GetProperty("length").GetInt64();
        return length == Size && hash == content.SentHash ? $"{length} bytes, hash matches" : throw new InvalidOperationException($"the backend got {length} bytes (hash {hash[..12]}), not the {Size} sent");
    }

    private async Task<string> WebSocketAsync(TaskCompletionSource moving, CancellationToken cancellationToken)
    {
        using var ws = new ClientWebSocket();
        await ws.ConnectAsync(new UriBuilder(_http) { Scheme = "ws", Path = "/ws" }.Uri, cancellationToken);
        var buffer = new byte[4096];
        int i = 0;
        for (; !_finish.IsCancellationRequested; i++)
        {
            string text = $"message {i}";
            await ws.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, cancellationToken);
            var result = await ws.ReceiveAsync(buffer, cancellationToken);
            if (result.MessageType == WebSocketMessageType.Close || Encoding.UTF8.GetString(buffer, 0, result.Count) != text)
            {
                throw new InvalidOperationException($"message {i} was not echoed ({result.MessageType}, close {result.CloseStatus})");
            }
            moving.TrySetResult();
            if (_sinceKill.IsRunning)
            {
                Interlocked.Increment(ref _wsAfterKill);
            }
            await Task.Delay(100, cancellationToken);
        }
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", cancellationToken);
        return $"{i} messages echoed, closed normally";
    }

    private async Task<string> GrpcAsync(TaskCompletionSource moving, CancellationToken cancellationToken)
    {
        using var call = new Echo.EchoClient(_channel).Duplex(cancellationToken: cancellationToken);
        int i = 0;
        for (; !_finish.IsCancellationRequested; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Text = $"m{i}", Sequence = i }, cancellationToken);
            if (!await call.ResponseStream.MoveNext(cancellationToken) || call.ResponseStream.Current.Sequence != i)
            {
                throw new InvalidOperationException($"message {i} was not echoed");
            }
            moving.TrySetResult();
            if (_sinceKill.IsRunning)
            {
                Interlocked.Increment(ref _grpcAfterKill);
            }
            await Task.Delay(100, cancellationToken);
        }
        await call.RequestStream.CompleteAsync();
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
        }
        return $"{i} messages echoed, status {call.GetStatus().StatusCode}";
    }

    public async ValueTask DisposeAsync()
    {
        _deadline.Cancel();
        try
        {
            await Task.WhenAll(_transfers).WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException)
        {
        }
        _client.Dispose();
        _channel.Dispose();
        _deadline.Dispose();
        _finish.Dispose();
    }

    /// <summary>A generated body that says when its first bytes went out.</summary>
    private sealed class ProgressContent(long length, TaskCompletionSource moving) : HttpContent
    {
        private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        public string SentHash => Convert.ToHexStringLower(_sha.GetCurrentHash());

        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
        {
            var rng = new Random(7);
            var buffer = new byte[64 * 1024];
            for (long sent = 0; sent < length;)
            {
                int n = (int)Math.Min(buffer.Length, length - sent);
                rng.NextBytes(buffer.AsSpan(0, n));
                _sha.AppendData(buffer, 0, n);
                await stream.WriteAsync(buffer.AsMemory(0, n));
                sent += n;
                if (sent >= 1 << 20)
                {
                    moving.TrySetResult();
                }
            }
        }

        protected override bool TryComputeLength(out long len)
        {
            len = length;
            return true;
        }
    }
}
