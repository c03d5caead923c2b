using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Routing;

/// <summary>
/// Routes compiled for matching: an exact host beats a wildcard (the longer suffix first), and within
/// a host the longest path prefix wins. Prefixes match on segment boundaries ("/api" matches "/api"
/// and "/api/x", not "/apix"; case-insensitively, with ';' and encoded slashes ending a segment too).
/// </summary>
public sealed class RouteTable
{
    private readonly Dictionary<string, Route[]> _exact = new(StringComparer.Ordinal);
    private readonly (string Suffix, Route[] Routes)[] _wildcards;

    public RouteTable(IEnumerable<Route> routes)
    {
        var normalized = routes.Select(RoutingGrain.Normalize).ToList();
        foreach (var group in normalized.Where(r => !r.Host.StartsWith("*.", StringComparison.Ordinal)).GroupBy(r => r.Host, StringComparer.Ordinal))
        {
            _exact[group.Key] = Order(group);
        }
        _wildcards = [.. normalized.Where(r => r.Host.StartsWith("*.", StringComparison.Ordinal))
            .GroupBy(r => r.Host[1..], StringComparer.Ordinal)
            .Select(g => (g.Key, Order(g)))
            .OrderByDescending(w => w.Key.Length)];
        Count = normalized.Count;
    }

    public int Count { get; }

    /// <summary>The route for a normalised host (lower case, no port) and a path, or null.</summary>
    public Route? Match(string host, string path)
    {
        if (_exact.TryGetValue(host, out var routes) && MatchPath(routes, path) is { } exact)
        {
            return exact;
        }
        foreach (var (suffix, wildcardRoutes) in _wildcards)
        {
            if (host.Length > suffix.Length && host.EndsWith(suffix, StringComparison.Ordinal) && MatchPath(wildcardRoutes, path) is { } wild)
            {
                return wild;
            }
        }
        return null;
    }

    /// <summary>
    /// True when a route that can serve <paramref name="host"/> demands a credential or limits networks:
    /// on such a host a target the gateway cannot read canonically may not be forwarded, whatever route matched.
    /// </summary>
    public bool HostChecksAccess(string host)
    {
        if (_exact.TryGetValue(host, out var routes) && routes.Any(Guarded))
        {
            return true;
        }
        return _wildcards.Any(w => host.Length > w.Suffix.Length && host.EndsWith(w.Suffix, StringComparison.Ordinal) && w.Routes.Any(Guarded));
    }

    private static bool Guarded(Route route) =>
        (route.Access is not null && !route.Access.Equals("none", StringComparison.OrdinalIgnoreCase)) || route.AllowedNetworks is { Length: > 0 };

    private static Route[] Order(IEnumerable<Route> routes) => [.. routes.OrderByDescending(r => r.PathPrefix?.Length ?? 0)];

    private static bool IsSegmentEnd(string path, int at) =>
        at == path.Length || path[at] is '/' or ';' or '\\'
        || (path.Length >= at + 3 && path[at] == '%' && (string.Compare(path, at, "%2F", 0, 3, StringComparison.OrdinalIgnoreCase) == 0
            || string.Compare(path, at, "%5C", 0, 3, StringComparison.OrdinalIgnoreCase) == 0));

    private static Route? MatchPath(Route[] routes, string path)
    {
        foreach (var route in routes)
        {
            var prefix = route.PathPrefix;
            // Case-insensitive, and ';' or an encoded slash also end a segment: a backend that ignores case,
            // strips path parameters or decodes %2F must not see a protected prefix through an open route.
            if (prefix is null || (path.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) && IsSegmentEnd(path, prefix.Length)))
            {
                return route;
            }
        }
        return null;
    }
}
