using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Requests;

namespace OrleansTunnel.Gateway.Admin.Inspector;

/// <summary>
/// The request inspector on the admin listener: /inspect/ (the page, or a login form), /inspect/login,
/// /inspect/logout and /inspect/events (Server-Sent Events: the cluster's recent requests, filtered, each
/// time they change). The page reads details and replays through the admin API with its session cookie.
/// </summary>
public sealed partial class InspectorEndpoint(
    InspectorSessions sessions,
    AdminAuthorizer authorizer,
    RequestListing listing,
    IOptionsMonitor<InspectorOptions> options,
    ILogger<InspectorEndpoint> logger) : IAdminEndpoint
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter(JsonNamingPolicy.CamelCase) } };
    private static readonly Lazy<string> Page = new(() =>
    {
        using var stream = typeof(InspectorEndpoint).Assembly.GetManifestResourceStream("OrleansTunnel.Gateway.inspect.html")
            ?? throw new InvalidOperationException("the inspector page is missing from the gateway assembly");
        return new StreamReader(stream).ReadToEnd();
    });

    public string Path => "/inspect/";

    public bool RequiresToken => false;

    public Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        string path = request.Path.Value!;
        return (request.Method, path) switch
        {
            ("GET", "/inspect/") => sessions.Allows(context) ? WritePageAsync(context) : WriteLoginAsync(context, null),
            ("POST", "/inspect/login") => LoginAsync(context),
            ("POST", "/inspect/logout") => LogoutAsync(context),
            ("GET", "/inspect/events") => sessions.Allows(context) ? EventsAsync(context) : Results.Text("otun inspector: log in first\n", statusCode: 401).ExecuteAsync(context),
            _ => Results.Text("otun inspector: unknown path\n", statusCode: 404).ExecuteAsync(context),
        };
    }

    private static Task WritePageAsync(HttpContext context) => WriteHtmlAsync(context, Page.Value, StatusCodes.Status200OK);

    private static Task WriteLoginAsync(HttpContext context, string? problem, int status = StatusCodes.Status200OK)
    {
        string message = problem is null ? "" : $"<p class=\"err\">{WebUtility.HtmlEncode(problem)}</p>";
        string html = $$"""
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>otun inspector: log in</title>
            <style nonce="__NONCE__">body{margin:0;display:grid;place-items:center;height:100vh;background:#0f1115;color:#d7dae0;font:14px system-ui,sans-serif}
            form{background:#171a21;border:1px solid #262b36;border-radius:8px;padding:24px;display:grid;gap:10px;width:340px}
            h1{font-size:16px;margin:0}input,button{font:inherit;padding:6px 8px;border-radius:4px;border:1px solid #262b36;background:#0b0d11;color:#d7dae0}
            button{background:#1d3b5e;border-color:#2a5a8f;cursor:pointer}.dim{color:#8a91a0;font-size:12px}.err{color:#f85149;margin:0}</style></head>
            <body><form method="post" action="/inspect/login"><h1>otun inspector</h1>
            <label class="dim" for="token">admin token (the gateway keeps only its SHA-256)</label>
            <input id="token" name="token" type="password" autocomplete="current-password" autofocus>
            {{message}}<button type="submit">Log in</button>
            <span class="dim">otun dev writes it to .data/admin-token</span></form></body></html>
            """;
        return WriteHtmlAsync(context, html, status);
    }

    private static async Task WriteHtmlAsync(HttpContext context, string html, int status)
    {
        string nonce = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = "text/html; charset=utf-8";
        response.Headers.CacheControl = "no-store";
        response.Headers["X-Frame-Options"] = "DENY";
        response.Headers["X-Content-Type-Options"] = "nosniff";
        response.Headers["Referrer-Policy"] = "no-referrer";
        // Only the page's own nonce-tagged script and style run; what requests contain is shown as text.
        response.Headers.ContentSecurityPolicy = $"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
        await response.WriteAsync(html.Replace("__NONCE__", nonce, StringComparison.Ordinal), context.RequestAborted);
    }

    private async Task LoginAsync(HttpContext context)
    {
        var form = context.Request.HasFormContentType ? await context.Request.ReadFormAsync(context.RequestAborted) : null;
        string token = form?["token"].ToString() ?? "";
        // The admin API's own check decides (the same tokens, the same refusals).
        context.Request.Headers.Authorization = "Bearer " + token;
        if (token.Length == 0 || authorizer.Check(context, out var who) is not null || who is null)
        {
            context.Request.Headers.Authorization = default;
            context.Response.Headers.Remove("WWW-Authenticate");
            LogLoginRefused(logger, context.Connection.RemoteIpAddress?.ToString() ?? "?");
            await WriteLoginAsync(context, "That is not this gateway's admin token.", StatusCodes.Status401Unauthorized);
            return;
        }
        context.Response.Cookies.Append(InspectorSessions.Cookie, sessions.Create(who), new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Strict,
            Secure = context.Request.IsHttps,
            Path = "/",
            MaxAge = options.CurrentValue.SessionLifetime,
        });
        LogLoggedIn(logger, context.Connection.RemoteIpAddress?.ToString() ?? "?");
        context.Response.Redirect("/inspect/", permanent: false);
        context.Response.StatusCode = StatusCodes.Status303SeeOther;
    }

    private Task LogoutAsync(HttpContext context)
    {
        sessions.End(context);
        context.Response.Cookies.Delete(InspectorSessions.Cookie, new CookieOptions { Path = "/" });
        context.Response.Redirect("/inspect/", permanent: false);
        context.Response.StatusCode = StatusCodes.Status303SeeOther;
        return Task.CompletedTask;
    }

    /// <summary>Server-Sent Events: the filtered list each time it changes (checked every Inspector:RefreshInterval).</summary>
    private async Task EventsAsync(HttpContext context)
    {
        var (query, problem) = RequestListing.Parse(context.Request.Query);
        if (query is null)
        {
            await Results.Text($"otun inspector: {problem}\n", statusCode: 400).ExecuteAsync(context);
            return;
        }
        query = query with { Limit = Math.Min(query.Limit, 200) };
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-store";
        var aborted = context.RequestAborted;
        string? last = null;
        try
        {
            await response.StartAsync(aborted);
            while (!aborted.IsCancellationRequested)
            {
                var page = await listing.ListAsync(query, clusterWide: true);
                string json = JsonSerializer.Serialize(page, Json);
                if (json != last)
                {
                    last = json;
                    await response.WriteAsync("data: " + json + "\n\n", aborted);
                    await response.Body.FlushAsync(aborted);
                }
                await Task.Delay(options.CurrentValue.RefreshInterval, aborted);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The page was closed.
        }
    }

    [LoggerMessage(EventId = 530, EventName = "InspectorLoginRefused", Level = LogLevel.Warning,
        Message = "Inspector login from {Remote} refused: wrong admin token.")]
    private static partial void LogLoginRefused(ILogger logger, string remote);

    [LoggerMessage(EventId = 531, EventName = "InspectorLoggedIn", Level = LogLevel.Information,
        Message = "Inspector login from {Remote}.")]
    private static partial void LogLoggedIn(ILogger logger, string remote);
}

/// <summary>/inspect without the slash: to the page.</summary>
public sealed class InspectorRedirect : IAdminEndpoint
{
    public string Path => "/inspect";

    public bool RequiresToken => false;

    public Task HandleAsync(HttpContext context)
    {
        context.Response.Redirect("/inspect/", permanent: false);
        return Task.CompletedTask;
    }
}
