using System.Globalization;
using OrleansTunnel.Grains;
using OrleansTunnel.Mux;

namespace OrleansTunnel.Gateway.Policy;

/// <summary>
/// Turns the rewrite and rate-limit settings of a route (configuration or admin API) into the route's
/// records, and says what is wrong with them: each message names the key and the fix.
/// </summary>
public static class PolicyConfig
{
    /// <summary>Headers a rule may not touch: framing and hop-by-hop ones (Host has HostRewrite).</summary>
    private static readonly HashSet<string> Forbidden = new(StringComparer.OrdinalIgnoreCase)
    {
        "Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
    };

    private const int MaxRules = 64, MaxValueLength = 4096;

    public static RouteRewrite? ToRewrite(RouteRewriteOptions? o)
    {
        if (o is null || (!o.StripPrefix && string.IsNullOrEmpty(o.AddPrefix) && string.IsNullOrEmpty(o.HostRewrite)
            && IsEmpty(o.RequestHeaders) && IsEmpty(o.ResponseHeaders)))
        {
            return null;
        }
        return new RouteRewrite(o.StripPrefix, string.IsNullOrEmpty(o.AddPrefix) ? null : o.AddPrefix,
            string.IsNullOrEmpty(o.HostRewrite) ? null : o.HostRewrite.Trim(), ToRules(o.RequestHeaders), ToRules(o.ResponseHeaders));
    }

    public static RouteRateLimit? ToRateLimit(RouteRateLimitOptions? o) =>
        o is null || (o.Requests == 0 && o.Per is null && o.Key is null) ? null
            : new RouteRateLimit(o.Requests, TryParsePer(o.Per, out var per) ? (long)per.TotalMilliseconds : 0, NormalizeKey(o.Key) ?? "ip");

    private static bool IsEmpty(HeaderRulesOptions? r) => r is null || (r.Set.Count == 0 && r.Append.Count == 0 && r.Remove.Count == 0);

    private static HeaderRules? ToRules(HeaderRulesOptions? r) => IsEmpty(r) ? null
        : new HeaderRules(r!.Set.Count > 0 ? new Dictionary<string, string>(r.Set, StringComparer.OrdinalIgnoreCase) : null,
            r.Append.Count > 0 ? new Dictionary<string, string>(r.Append, StringComparer.OrdinalIgnoreCase) : null,
            r.Remove.Count > 0 ? [.. r.Remove] : null);

    /// <summary>What is wrong with a route's rewrite (keys named relative to the route), or null.</summary>
    public static string? RewriteProblem(RouteRewriteOptions? o, string? pathPrefix)
    {
        if (o is null)
        {
            return null;
        }
        if (o.StripPrefix && (string.IsNullOrWhiteSpace(pathPrefix) || pathPrefix.Trim() == "/"))
        {
            return "Rewrite:StripPrefix is true but the route has no PathPrefix; set PathPrefix or remove StripPrefix";
        }
        if (!string.IsNullOrEmpty(o.AddPrefix))
        {
            string p = o.AddPrefix;
            if (p == "/" || !p.StartsWith('/') || p.EndsWith('/') || p.IndexOfAny(['?', '#', '{', '}', ' ']) >= 0 || p.Any(char.IsControl)
                || CanonicalPath.Problem(p) is not null)
            {
                return $"Rewrite:AddPrefix '{p}' must be a canonical path like /v1: starting with '/', without a trailing '/', '?', '#', "
                    + "spaces, '//', dot segments, encoded slashes or ';'" + (CanonicalPath.Problem(p) is { } why ? $" ({why})" : "");
            }
        }
        if (!string.IsNullOrEmpty(o.HostRewrite) && HostProblem(o.HostRewrite.Trim()) is { } host)
        {
            return $"Rewrite:HostRewrite '{o.HostRewrite}' {host}";
        }
        return RulesProblem(o.RequestHeaders, "Rewrite:RequestHeaders", request: true)
            ?? RulesProblem(o.ResponseHeaders, "Rewrite:ResponseHeaders", request: false);
    }

    private static string? HostProblem(string value)
    {
        string host = value;
        int colon = value.LastIndexOf(':');
        if (colon > 0 && !value.EndsWith(']') && value.IndexOf(':') == colon)
        {
            if (!int.TryParse(value.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
            {
                return "has a port that is not 1..65535; give host or host:port (e.g. api.internal:8080)";
            }
            host = value[..colon];
        }
        return Uri.CheckHostName(host.Trim('[', ']')) == UriHostNameType.Unknown
            ? "is not a host name or address; give host or host:port (e.g. api.internal:8080; placeholders are not allowed here)"
            : null;
    }

    private static string? RulesProblem(HeaderRulesOptions? rules, string key, bool request)
    {
        if (rules is null)
        {
            return null;
        }
        if (rules.Set.Count + rules.Append.Count + rules.Remove.Count > MaxRules)
        {
            return $"{key} has more than {MaxRules} rules; merge or drop some";
        }
        foreach (var (kind, names) in new[] { ("Set", rules.Set.Keys.AsEnumerable()), ("Append", rules.Append.Keys), ("Remove", rules.Remove) })
        {
            foreach (var name in names)
            {
                if (HeaderNameProblem(name, request) is { } problem)
                {
                    return $"{key}:{kind} header '{name}' {problem}";
                }
            }
        }
        foreach (var (kind, map) in new[] { ("Set", rules.Set), ("Append", rules.Append) })
        {
            foreach (var (name, value) in map)
            {
                if (value is null || value.Length > MaxValueLength || value.Any(c => char.IsControl(c) && c != '\t'))
                {
                    return $"{key}:{kind}:{name} must be a value of at most {MaxValueLength} characters without control characters (CR, LF, NUL)";
                }
                if (Placeholders.Problem(value) is { } placeholder)
                {
                    return $"{key}:{kind}:{name} '{value}': {placeholder}";
                }
            }
        }
        return null;
    }

    private static string? HeaderNameProblem(string name, bool request)
    {
        if (string.IsNullOrEmpty(name) || !name.All(IsTokenChar))
        {
            return "is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)";
        }
        if (Forbidden.Contains(name))
        {
            return request && name.Equals("Host", StringComparison.OrdinalIgnoreCase)
                ? "cannot be edited here; use Rewrite:HostRewrite"
                : "frames the message or is hop-by-hop and cannot be edited; remove this rule";
        }
        if (!request && name.Equals(Ingress.TunnelExchange.RequestIdHeader, StringComparison.OrdinalIgnoreCase))
        {
            return "is the gateway's own request id and cannot be edited; remove this rule";
        }
        return null;
    }

    private static bool IsTokenChar(char c) => char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c);

    /// <summary>What is wrong with a route's rate limit, or null.</summary>
    public static string? RateLimitProblem(RouteRateLimitOptions? o)
    {
        if (o is null || (o.Requests == 0 && o.Per is null && o.Key is null))
        {
            return null;
        }
        if (o.Requests is < 1 or > 1_000_000)
        {
            return $"RateLimit:Requests {o.Requests} must be between 1 and 1000000";
        }
        if (!TryParsePer(o.Per, out var per))
        {
            return $"RateLimit:Per '{o.Per}' must be a duration like 10s, 1m, 1h or 00:01:00";
        }
        if (per < TimeSpan.FromSeconds(1) || per > TimeSpan.FromDays(1))
        {
            return $"RateLimit:Per '{o.Per}' must be between 1s and 1d";
        }
        if (NormalizeKey(o.Key) is null)
        {
            return $"RateLimit:Key '{o.Key}' must be ip, route, header:NAME (e.g. header:X-Api-Key) or claim:NAME (e.g. claim:sub)";
        }
        return null;
    }

    /// <summary>"ip", "route", "header:Name" or "claim:name"; null when not one of them.</summary>
    public static string? NormalizeKey(string? key)
    {
        string k = key?.Trim() ?? "";
        if (k.Length == 0 || k.Equals("ip", StringComparison.OrdinalIgnoreCase))
        {
            return "ip";
        }
        if (k.Equals("route", StringComparison.OrdinalIgnoreCase))
        {
            return "route";
        }
        int colon = k.IndexOf(':');
        if (colon < 0)
        {
            return null;
        }
        string kind = k[..colon].ToLowerInvariant(), name = k[(colon + 1)..].Trim();
        return kind switch
        {
            "header" when name.Length > 0 && name.All(IsTokenChar) => "header:" + name,
            "claim" when name.Length > 0 && !name.Any(char.IsControl) => "claim:" + name,
            _ => null,
        };
    }

    /// <summary>Parses "500ms", "10s", "1m", "2h", "1d" or a TimeSpan.</summary>
    public static bool TryParsePer(string? text, out TimeSpan per)
    {
        per = default;
        text = text?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }
        (string unit, double scale)[] units = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];
        foreach (var (unit, scale) in units)
        {
            if (text.EndsWith(unit, StringComparison.OrdinalIgnoreCase)
                && double.TryParse(text.AsSpan(0, text.Length - unit.Length), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double n)
                && (unit != "s" || !text.EndsWith("ms", StringComparison.OrdinalIgnoreCase)))
            {
                per = TimeSpan.FromMilliseconds(n * scale);
                return per > TimeSpan.Zero;
            }
        }
        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out per) && per > TimeSpan.Zero;
    }

    /// <summary>"10s", "1m"... for headers and messages.</summary>
    public static string FormatPer(long perMs) => perMs % 86_400_000 == 0 ? $"{perMs / 86_400_000}d"
        : perMs % 3_600_000 == 0 ? $"{perMs / 3_600_000}h" : perMs % 60_000 == 0 ? $"{perMs / 60_000}m"
        : perMs % 1000 == 0 ? $"{perMs / 1000}s" : $"{perMs}ms";
}
