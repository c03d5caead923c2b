using System.Net.Http.Json;
using System.Text.Json;

namespace OrleansTunnel.Cli;

/// <summary>`otun inspect ...`: the inspector in a terminal (a live tail, one request, a replay), through the admin API.</summary>
internal static class InspectCli
{
    private const string Usage = """
        otun inspect: the requests of every gateway of the cluster, through a gateway's admin API.

        usage: otun inspect [--url http://127.0.0.1:9090] [--token TOKEN] [--data DIR] [filters]   a live tail (Ctrl-C stops)
               otun inspect show ID                                                           one request: timings, headers, outcome
               otun inspect replay ID                                                         send it again; prints the new request's id
          filters: --service NAME  --host NAME  --status 2xx|4xx|5xx  --path TEXT  --min-ms N

        The page is at http://ADMIN/inspect/ (log in with the admin token).
        """;

    private static readonly JsonSerializerOptions Pretty = new() { WriteIndented = true };

    public static async Task<int> RunAsync(string[] argv)
    {
        // A bare `otun inspect` (filters only) is the live tail.
        if (!argv.Any(a => a is "show" or "replay" or "tail" or "-h" or "--help"))
        {
            argv = ["tail", .. argv];
        }
        var (client, words) = AdminCli.Connect(argv);
        if (client is null)
        {
            Console.WriteLine(Usage);
            return 0;
        }
        using var http = client;
        switch (words)
        {
            case ["show", var id]:
                return await PrintAsync(await http.GetAsync("api/requests/" + Uri.EscapeDataString(id)));
            case ["replay", var id]:
                return await PrintAsync(await http.PostAsync("api/requests/" + Uri.EscapeDataString(id) + "/replay", null));
            case ["tail", .. var filters]:
                return await TailAsync(http, filters);
            default:
                return await TailAsync(http, words);
        }
    }

    private static async Task<int> PrintAsync(HttpResponseMessage response)
    {
        string body = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode)
        {
            Console.Error.Write(body.Length > 0 ? body : $"otun inspect: {(int)response.StatusCode} {response.ReasonPhrase}\n");
            return 1;
        }
        using var doc = JsonDocument.Parse(body);
        Console.WriteLine(JsonSerializer.Serialize(doc.RootElement, Pretty));
        return 0;
    }

    private static async Task<int> TailAsync(HttpClient http, List<string> words)
    {
        var query = new List<string>();
        for (int i = 0; i < words.Count; i++)
        {
            string key = words[i] switch
            {
                "--service" => "service",
                "--host" => "host",
                "--status" => "status",
                "--path" => "path",
                "--min-ms" => "minDurationMs",
                _ => throw new CliException($"unknown inspect argument '{words[i]}'; see otun inspect --help"),
            };
            if (i + 1 >= words.Count)
            {
                throw new CliException($"{words[i]} needs a value");
            }
            query.Add(key + "=" + Uri.EscapeDataString(words[++i]));
        }
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
        // Requests already printed, and the ones printed while they were live (printed again when they end).
        var done = new HashSet<string>(StringComparer.Ordinal);
        var live = new HashSet<string>(StringComparer.Ordinal);
        Console.WriteLine($"{"time",-12} {"gateway",-12} {"status",6} {"ms",8} {"in",8} {"out",8}  {"method",-6} host path");
        while (!stop.IsCancellationRequested)
        {
            JsonElement page;
            try
            {
                page = await http.GetFromJsonAsync<JsonElement>("api/requests?limit=200&" + string.Join('&', query), stop.Token);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            foreach (var r in page.GetProperty("items").EnumerateArray().Reverse())
            {
                string id = r.GetProperty("requestId").GetString()!;
                string state = r.GetProperty("state").GetString()!;
                bool ended = state is not ("open" or "streaming");
                if (done.Contains(id) || (!ended && !live.Add(id)))
                {
                    continue;
                }
                if (ended)
                {
                    done.Add(id);
                    live.Remove(id);
                }
                int status = r.GetProperty("status").GetInt32();
                Console.WriteLine($"{r.GetProperty("openedAt").GetDateTimeOffset().ToLocalTime():HH:mm:ss.fff} {r.GetProperty("gatewayId").GetString(),-12} {(status > 0 ? status.ToString() : state),6} "
                    + $"{r.GetProperty("durationMs").GetDouble(),8:0.0} {r.GetProperty("bytesIn").GetInt64(),8} {r.GetProperty("bytesOut").GetInt64(),8}  {r.GetProperty("method").GetString(),-6} "
                    + $"{r.GetProperty("host").GetString()} {r.GetProperty("path").GetString()}  {id}");
            }
            try
            {
                await Task.Delay(500, stop.Token);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        return 0;
    }
}
