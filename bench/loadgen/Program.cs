// Benchmark load generator and gRPC backend for bench/protocols.sh (see bench/README.md).
//
//   loadgen grpc-backend --port P
//   loadgen grpc-unary   --target URL --concurrency C --duration S [--size B] [--warmup S]
//   loadgen grpc-stream  --target URL --streams C --duration S --size B [--mode bidi|server] [--warmup S] [--interval-ms N]
//   loadgen ws-echo      --target ws(s)://HOST:PORT/PATH --sockets N --duration S --size B [--warmup S] [--interval-ms N]
//   loadgen http-rate    --target URL --rate R --duration S [--connections C] [--warmup S] [--host H]
//   loadgen http-sink    --port P   (HTTP/1.1: GET /download?size=N zeros, POST /upload discards; bench/bulk.sh)
//
// --interval-ms N paces each gRPC bidi stream or WebSocket to one round trip every N ms (0: closed loop).
// Each client command prints one line of key=value pairs (the last one, first_error, is quoted).

namespace OrleansTunnel.Bench.LoadGen;

public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.Error.WriteLine("usage: loadgen grpc-backend|grpc-unary|grpc-stream|ws-echo|http-rate|http-sink [--flag value ...]");
            return 2;
        }
        Options o;
        try { o = Options.Parse(args.AsSpan(1)); }
        catch (ArgumentException e) { Console.Error.WriteLine($"loadgen: {e.Message}"); return 2; }
        try
        {
            return args[0] switch
            {
                "grpc-backend" => await Backend.RunAsync(o),
                "grpc-unary" => await Clients.GrpcUnaryAsync(o),
                "grpc-stream" => await Clients.GrpcStreamAsync(o),
                "ws-echo" => await Clients.WsEchoAsync(o),
                "http-rate" => await OpenLoop.RunAsync(o),
                "http-sink" => await Sink.RunAsync(o),
                _ => Usage(args[0]),
            };
        }
        catch (ArgumentException e) { Console.Error.WriteLine($"loadgen: {e.Message}"); return 2; }
    }

    private static int Usage(string cmd)
    {
        Console.Error.WriteLine($"loadgen: unknown command '{cmd}'");
        return 2;
    }
}

internal sealed class Options
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    public static Options Parse(ReadOnlySpan<string> args)
    {
        var o = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
                throw new ArgumentException($"expected --flag value, got '{args[i]}'");
            o._values[args[i][2..]] = args[++i];
        }
        return o;
    }

    public string Str(string name, string? fallback = null) =>
        _values.TryGetValue(name, out var v) ? v : fallback ?? throw new ArgumentException($"--{name} is required");

    public int Int(string name, int? fallback = null) =>
        _values.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture)
            : fallback ?? throw new ArgumentException($"--{name} is required");

    public double Double(string name, double? fallback = null) =>
        _values.TryGetValue(name, out var v) ? double.Parse(v, CultureInfo.InvariantCulture)
            : fallback ?? throw new ArgumentException($"--{name} is required");

    public double Seconds(string name, double? fallback = null) =>
        _values.TryGetValue(name, out var v) ? double.Parse(v.TrimEnd('s'), CultureInfo.InvariantCulture)
            : fallback ?? throw new ArgumentException($"--{name} is required");
}
