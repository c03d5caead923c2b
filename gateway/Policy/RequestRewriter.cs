using Microsoft.AspNetCore.Http;
using OrleansTunnel.Grains;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.Policy;

/// <summary>
/// Applies a route's <see cref="RouteRewrite"/>: the forwarded target (StripPrefix, then AddPrefix), the
/// Host the backend sees, request header rules on the tunnel's request head, and response header rules
/// when the visitor's response starts. The rewritten target is checked like a visitor's: canonical, and
/// inside AddPrefix, or the request is refused before anything is forwarded.
/// </summary>
public static class RequestRewriter
{
    private const string TargetItem = "otun.rewrite.target";

    /// <summary>
    /// Computes the forwarded path-and-query for a rewriting route (kept for <see cref="ApplyToHead"/>);
    /// a message when the target cannot be rewritten safely (the caller answers 400).
    /// </summary>
    public static string? Prepare(HttpContext context, Route route, string pathAndQuery)
    {
        if (route.Rewrite is not { } rewrite || (!rewrite.StripPrefix && rewrite.AddPrefix is null))
        {
            return null;
        }
        int q = pathAndQuery.IndexOf('?');
        string path = q < 0 ? pathAndQuery : pathAndQuery[..q];
        string query = q < 0 ? "" : pathAndQuery[q..];
        if (!path.StartsWith('/') || CanonicalPath.Problem(path) is not null)
        {
            // Only a Raw route lets such a target through; its segments cannot be counted reliably.
            return "this route rewrites the path, which needs a canonical request target; send the path without empty or dot segments, encoded slashes or ';'";
        }
        string rest = path;
        if (rewrite.StripPrefix && route.PathPrefix is { Length: > 1 } prefix)
        {
            // Routing matched the prefix on the decoded path; a canonical raw path has the same segments.
            int segments = prefix.Count(c => c == '/');
            int at = 0;
            for (int i = 0; i < segments && at >= 0; i++)
            {
                at = path.IndexOf('/', at + 1);
            }
            rest = at < 0 ? "/" : path[at..];
        }
        string rewritten = (rewrite.AddPrefix ?? "") + rest;
        string? problem = CanonicalPath.Problem(rewritten)
            ?? (rewrite.AddPrefix is { } add && !rewritten.StartsWith(add + "/", StringComparison.Ordinal) ? "outside AddPrefix" : null);
        if (problem is not null)
        {
            return $"the rewritten target is not canonical ({problem}); the request was not forwarded";
        }
        context.Items[TargetItem] = rewritten + query;
        return null;
    }

    /// <summary>Rewrites the request head (target, Host, headers) and registers the response header rules.</summary>
    public static void ApplyToHead(HttpContext context, Route route, RequestHead head, string host, string requestId, Func<string?> clientIp)
    {
        if (route.Rewrite is not { } rewrite)
        {
            return;
        }
        if (context.Items[TargetItem] is string target)
        {
            head.PathAndQuery = target;
        }
        if (rewrite.HostRewrite is { } authority)
        {
            head.Authority = authority;
        }
        Func<string, string?> resolve = name => name switch
        {
            Placeholders.ClientIp => clientIp(),
            Placeholders.Host => host,
            Placeholders.RequestId => requestId,
            Placeholders.Identity => context.Items[Placeholders.IdentityItem] as string,
            _ => null,
        };
        if (rewrite.RequestHeaders is { } rules)
        {
            ApplyToHead(head, rules, resolve);
        }
        if (rewrite.ResponseHeaders is { } responseRules)
        {
            context.Response.OnStarting(() =>
            {
                ApplyToResponse(context.Response.Headers, responseRules, resolve);
                return Task.CompletedTask;
            });
        }
    }

    private static void ApplyToHead(RequestHead head, HeaderRules rules, Func<string, string?> resolve)
    {
        var headers = head.Headers;
        foreach (var name in (rules.Remove ?? []).Concat(rules.Set?.Keys ?? Enumerable.Empty<string>()))
        {
            for (int i = headers.Count - 1; i >= 0; i--)
            {
                if (headers[i].Name.Equals(name, StringComparison.OrdinalIgnoreCase))
                {
                    headers.RemoveAt(i);
                }
            }
        }
        foreach (var (name, value) in rules.Set ?? [])
        {
            headers.Add(new Header { Name = name, Value = Placeholders.Expand(value, resolve) });
        }
        foreach (var (name, value) in rules.Append ?? [])
        {
            headers.Add(new Header { Name = name, Value = Placeholders.Expand(value, resolve) });
        }
    }

    private static void ApplyToResponse(IHeaderDictionary headers, HeaderRules rules, Func<string, string?> resolve)
    {
        foreach (var name in rules.Remove ?? [])
        {
            headers.Remove(name);
        }
        foreach (var (name, value) in rules.Set ?? [])
        {
            headers[name] = Placeholders.Expand(value, resolve);
        }
        foreach (var (name, value) in rules.Append ?? [])
        {
            headers.Append(name, Placeholders.Expand(value, resolve));
        }
    }
}
