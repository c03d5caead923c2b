using System.Diagnostics;

namespace OrleansTunnel.Tests.Churn;

/// <summary>
/// Measures what the cluster serves through one address: a short closed-loop burst of small GETs
/// (each worker sends its next request when the last one answered), in requests per second.
/// </summary>
public static class ChurnCapacity
{
    public sealed record Result(double PerSecond, int Requests, int Workers, TimeSpan Duration);

    /// <summary>
    /// <paramref name="workers"/> loops of GET /hello for <paramref name="duration"/> after a one-second
    /// warm-up that is not counted. Nothing restarts meanwhile, so any answer but 200 "hello" fails the
    /// measurement with what came back.
    /// </summary>
    public static async Task<Result> MeasureAsync(Uri http, int workers, TimeSpan duration)
    {
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(30) };
        var url = new Uri(http, "/hello");
        var clock = Stopwatch.StartNew();
        var warm = TimeSpan.FromSeconds(1);
        var end = warm + duration;
        int counted = 0;

        async Task WorkerAsync()
        {
            while (clock.Elapsed < end)
            {
                using var response = await client.GetAsync(url);
                string body = await response.Content.ReadAsStringAsync();
                if ((int)response.StatusCode != 200 || body != "hello")
                {
                    throw new InvalidOperationException($"measuring capacity: GET /hello answered {(int)response.StatusCode}: {(body.Length > 200 ? body[..200] : body)}");
                }
                var now = clock.Elapsed;
                if (now >= warm && now < end)
                {
                    Interlocked.Increment(ref counted);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, workers).Select(_ => Task.Run(WorkerAsync)));
        return new Result(counted / duration.TotalSeconds, counted, workers, duration);
    }
}
