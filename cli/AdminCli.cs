using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;

namespace OrleansTunnel.Cli;

/// <summary>`otun admin ...`: a thin client of the gateway's admin API.</summary>
internal static class AdminCli
{
    private const string Usage = """
        otun admin: the admin API of a gateway (its admin port; never the public ingress).

        usage: otun admin [--url http://127.0.0.1:9090] [--token TOKEN] [--data DIR] <command>
          agents                              agents with their connections, services and in-flight requests
          services                            services with their routes, agents, unhealthy sessions and open circuits
          circuits                            circuits (agent session and service): the cluster's shared ones (opened by which
                                              gateway, until when, state, prober) and this gateway's own, with its counters
          routes                              the routing table
          requests                            requests this gateway is forwarding now
          request ID                          one request by id (from any gateway): owner, agent, phase, timings, bytes, outcome
          cancel ID [REASON]                  cancel a request wherever it runs (the visitor is told, the backend call is cancelled)
          tokens                              agents with a runtime token (ids and services only)
          route set HOST[/PATH] SERVICE       add or change a route (persisted, pushed to every gateway)
            [--access oidc|jwt --identity JSON|@FILE]   with OIDC sign-in or JWT access (README: OIDC and JWT access)
            [--rewrite JSON|@FILE] [--rate-limit JSON|@FILE]   rewrites and a cluster-wide rate limit (README: Rewrites, Rate limits)
            [--resilience JSON|@FILE]           the route's retry and circuit settings (README: Health checks, retries and circuit breaking)
          route rm HOST[/PATH]                remove a route
          token set AGENT_ID SVC[,SVC...]     create a fresh token for an agent and print it once
          token rm AGENT_ID                   revoke an agent's runtime token (its sessions close)
          l4                                  TCP/UDP listeners (configured and run-time) with their counters
          l4 set tcp|udp ADDR:PORT SERVICE [--allow CIDR]... [--max N] [--idle hh:mm:ss] [--proxy-protocol]
                                              add or change a run-time TCP/UDP listener (persisted, opened on every gateway)
          l4 rm tcp|udp ADDR:PORT             remove a run-time TCP/UDP listener

        The token comes from --token, else OTUN_ADMIN_TOKEN, else DIR/admin-token (--data, default .data: written by otun dev).
        """;

    /// <summary>The admin API client from --url/--token/--data (or OTUN_ADMIN_URL, OTUN_ADMIN_TOKEN, DIR/admin-token); the other words are returned.</summary>
    internal static (HttpClient? Http, List<string> Words) Connect(string[] argv)
    {
        string url = Environment.GetEnvironmentVariable("OTUN_ADMIN_URL") ?? "http://127.0.0.1:9090";
        string? token = Environment.GetEnvironmentVariable("OTUN_ADMIN_TOKEN");
        string dataDirectory = ".data";
        var words = new List<string>();
        for (int i = 0; i < argv.Length; i++)
        {
            switch (argv[i])
            {
                case "--url" when i + 1 < argv.Length:
                    url = argv[++i];
                    break;
                case "--token" when i + 1 < argv.Length:
                    token = argv[++i];
                    break;
                case "--data" when i + 1 < argv.Length:
                    dataDirectory = argv[++i];
                    break;
                default:
                    words.Add(argv[i]);
                    break;
            }
        }
        if (words.Count == 0 || words.Contains("-h") || words.Contains("--help"))
        {
            return (null, words);
        }
        string tokenFile = Path.Combine(dataDirectory, "admin-token");
        token ??= File.Exists(tokenFile) ? File.ReadAllText(tokenFile).Trim() : null;
        if (string.IsNullOrEmpty(token))
        {
            throw new CliException("no admin token: pass --token, set OTUN_ADMIN_TOKEN, or run from the directory where otun dev wrote .data/admin-token");
        }
        var http = new HttpClient { BaseAddress = new Uri(url.TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return (http, words);
    }

    public static async Task<int> RunAsync(string[] argv)
    {
        var (client, words) = Connect(argv);
        if (client is null)
        {
            Console.WriteLine(Usage);
            return words.Count == 0 ? 2 : 0;
        }
        using var http = client;

        HttpResponseMessage response;
        string? printAfter = null;
        switch (words)
        {
            case ["agents" or "services" or "routes" or "requests" or "tokens" or "circuits"]:
                response = await http.GetAsync("api/" + words[0]);
                break;
            case ["request", var id]:
                response = await http.GetAsync("api/requests/" + Uri.EscapeDataString(id));
                break;
            case ["cancel", var id, .. var why]:
                response = await http.DeleteAsync("api/requests/" + Uri.EscapeDataString(id) + (why.Count > 0 ? "?reason=" + Uri.EscapeDataString(string.Join(' ', why)) : ""));
                break;
            case ["route", "set", var target, var service]:
                var (host, prefix) = SplitTarget(target);
                response = await http.PutAsJsonAsync("api/routes", new { host, pathPrefix = prefix, service });
                break;
            case ["route", "set", var target, var service, .. var more]:
                var (idHost, idPrefix) = SplitTarget(target);
                var routeBody = RouteArguments(more);
                routeBody["host"] = idHost;
                routeBody["pathPrefix"] = idPrefix;
                routeBody["service"] = service;
                response = await http.PutAsJsonAsync("api/routes", routeBody);
                break;
            case ["route", "rm", var target]:
                var (rmHost, rmPrefix) = SplitTarget(target);
                response = await http.DeleteAsync($"api/routes?host={Uri.EscapeDataString(rmHost)}" + (rmPrefix is null ? "" : $"&pathPrefix={Uri.EscapeDataString(rmPrefix)}"));
                break;
            case ["token", "set", var agentId, var services]:
                string fresh = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
                response = await http.PutAsJsonAsync("api/tokens", new { agentId, token = fresh, services = services.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) });
                printAfter = $"token for agent '{agentId}' (shown once; the cluster keeps only its SHA-256):\n{fresh}";
                break;
            case ["l4"]:
                response = await http.GetAsync("api/l4/services");
                break;
            case ["l4", "set", var protocol, var listen, var service, .. var l4Flags]:
                response = await http.PutAsJsonAsync("api/l4/services", L4Body(protocol, listen, service, l4Flags));
                break;
            case ["l4", "rm", var protocol, var listen]:
                response = await http.DeleteAsync($"api/l4/services?protocol={Uri.EscapeDataString(protocol)}&listen={Uri.EscapeDataString(listen)}");
                break;
            case ["token", "rm", var agentId]:
                response = await http.DeleteAsync("api/tokens/" + Uri.EscapeDataString(agentId));
                break;
            default:
                throw new CliException($"unknown admin command '{string.Join(' ', words)}'; see otun admin --help");
        }
        string body = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode)
        {
            Console.Error.Write(body.Length > 0 ? body : $"otun admin: {(int)response.StatusCode} {response.ReasonPhrase}\n");
            return 1;
        }
        if (body.Length > 0 && response.Content.Headers.ContentType?.MediaType == "application/json")
        {
            using var doc = JsonDocument.Parse(body);
            Console.WriteLine(JsonSerializer.Serialize(doc.RootElement, new JsonSerializerOptions { WriteIndented = true }));
        }
        if (printAfter is not null)
        {
            Console.WriteLine(printAfter);
        }
        return 0;
    }

    /// <summary>
    /// The options of `route set`: `--access KIND`, and JSON objects (inline or @FILE) for `--identity` (oidc/jwt,
    /// README "OIDC and JWT access"), `--rewrite` (README "Rewrites"), `--rate-limit` (README "Rate limits") and
    /// `--resilience` (README "Health checks, retries and circuit breaking").
    /// </summary>
    private static System.Text.Json.Nodes.JsonObject RouteArguments(IReadOnlyList<string> more)
    {
        var body = new System.Text.Json.Nodes.JsonObject();
        for (int i = 0; i < more.Count; i++)
        {
            string? field = more[i] switch
            {
                "--identity" => "identity",
                "--rewrite" => "rewrite",
                "--rate-limit" => "rateLimit",
                "--resilience" => "resilience",
                _ => null,
            };
            if (more[i] == "--access" && i + 1 < more.Count)
            {
                body["access"] = more[++i];
            }
            else if (field is not null && i + 1 < more.Count)
            {
                string flag = more[i];
                string text = more[++i];
                text = text.StartsWith('@') ? File.ReadAllText(text[1..]) : text;
                try
                {
                    body[field] = System.Text.Json.Nodes.JsonNode.Parse(text);
                }
                catch (JsonException ex)
                {
                    throw new CliException($"{flag} is not valid JSON ({ex.Message}); give an object such as {Example(flag)} or @file.json");
                }
            }
            else
            {
                throw new CliException($"route set: unknown argument '{more[i]}'; use --access none|basic|bearer|oidc|jwt, --identity JSON|@FILE, --rewrite JSON|@FILE, --rate-limit JSON|@FILE, --resilience JSON|@FILE");
            }
        }
        return body;

        static string Example(string flag) => flag switch
        {
            "--rewrite" => "{\"stripPrefix\":true}",
            "--rate-limit" => "{\"requests\":100,\"per\":\"1m\",\"key\":\"ip\"}",
            "--resilience" => "{\"retry\":false,\"circuitFailures\":2,\"circuitCooldown\":\"30s\"}",
            _ => "{\"issuer\":\"https://id.example.com\",\"clientId\":\"...\"}",
        };
    }

    private static object L4Body(string protocol, string listen, string service, List<string> flags)
    {
        var allowed = new List<string>();
        int? max = null;
        string? idle = null;
        bool proxy = false;
        for (int i = 0; i < flags.Count; i++)
        {
            string Next() => i + 1 < flags.Count ? flags[++i] : throw new CliException($"{flags[i]} needs a value");
            switch (flags[i])
            {
                case "--allow":
                    allowed.Add(Next());
                    break;
                case "--max":
                    string m = Next();
                    max = int.TryParse(m, System.Globalization.CultureInfo.InvariantCulture, out int n) ? n : throw new CliException($"--max takes a number, not '{m}'");
                    break;
                case "--idle":
                    idle = Next();
                    break;
                case "--proxy-protocol":
                    proxy = true;
                    break;
                default:
                    throw new CliException($"unknown l4 set flag {flags[i]}; see otun admin --help");
            }
        }
        return new { protocol, listen, service, allowedNetworks = allowed.Count > 0 ? allowed : null, maxConnections = max, proxyProtocol = proxy, idleTimeout = idle };
    }

    private static (string Host, string? Prefix) SplitTarget(string target)
    {
        int slash = target.IndexOf('/');
        return slash < 0 ? (target, null) : (target[..slash], target[slash..]);
    }

    /// <summary>The dev admin token file (created with a random token, owner-only, when missing).</summary>
    public static string EnsureDevAdminToken(string dataDirectory)
    {
        Directory.CreateDirectory(dataDirectory);
        string path = Path.Combine(dataDirectory, "admin-token");
        if (!File.Exists(path))
        {
            File.WriteAllText(path, Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_') + "\n");
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
        }
        return path;
    }
}
