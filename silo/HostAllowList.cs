using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace OrleansTunnel.Silo;

/// <summary>
/// Host allow-list of operator listeners (admin, metrics, dashboard) against DNS rebinding: a page the
/// operator opens under an attacker's name that resolves to the listener's address must not be able to
/// read it. Allowed: IP literals (a rebinding attack needs a name), "localhost" and "*.localhost", and the
/// configured names. Anything else gets 421 naming the option that admits it.
/// </summary>
public static class HostAllowList
{
    public static bool IsAllowed(string host, IReadOnlyCollection<string> configured)
    {
        if (string.IsNullOrEmpty(host))
        {
            return false;
        }
        string bare = host.Trim('[', ']');
        if (IPAddress.TryParse(bare, out _))
        {
            return true;
        }
        host = host.TrimEnd('.');
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
            || host.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }
        return configured.Any(name => name.Equals(host, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>The 421 answer for a Host that is not allowed on <paramref name="listener"/>.</summary>
    public static string Refusal(string listener, string key) =>
        $"otun: Host not allowed on the {listener} listener; add the name to {key}\n";

    /// <summary>
    /// Refuses, with 421, requests whose Host is not allowed (only those <paramref name="applies"/> to,
    /// when given).
    /// </summary>
    public static WebApplication UseHostAllowList(this WebApplication app, IReadOnlyCollection<string> configured, string listener, string key,
        Func<HttpContext, bool>? applies = null)
    {
        string refusal = Refusal(listener, key);
        app.Use((context, next) =>
        {
            if ((applies is null || applies(context)) && !IsAllowed(context.Request.Host.Host, configured))
            {
                context.Response.StatusCode = StatusCodes.Status421MisdirectedRequest;
                context.Response.ContentType = "text/plain; charset=utf-8";
                return context.Response.WriteAsync(refusal);
            }
            return next(context);
        });
        return app;
    }
}
