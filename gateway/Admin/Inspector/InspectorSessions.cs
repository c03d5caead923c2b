using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Requests;

namespace OrleansTunnel.Gateway.Admin.Inspector;

/// <summary>
/// Sessions of the inspector page. Logging in with the admin token gives a random session id in an
/// HttpOnly, SameSite=Strict cookie (the token itself is never stored in the browser); the page's
/// calls to the admin API then carry the cookie. Calls that change something (cancel, replay) must
/// also carry the X-Otun-Inspect header, which a cross-site form cannot send.
/// </summary>
public sealed class InspectorSessions(IOptionsMonitor<InspectorOptions> options)
{
    public const string Cookie = "otun_inspect";
    public const string Header = "X-Otun-Inspect";

    /// <summary>Most sessions kept at once; the oldest goes first.</summary>
    private const int MaxSessions = 1000;

    private readonly ConcurrentDictionary<string, (DateTimeOffset Expires, AdminPrincipal Who)> _sessions = new(StringComparer.Ordinal);

    private static readonly AdminPrincipal Loopback = new("loopback (Inspector:OpenOnLoopback)", AdminScopes.Full);

    /// <summary>A new session for the holder of an admin token: it has that token's name and scope.</summary>
    public string Create(AdminPrincipal who)
    {
        if (_sessions.Count >= MaxSessions)
        {
            foreach (var (id, _) in _sessions.OrderBy(s => s.Value.Expires).Take(_sessions.Count - MaxSessions + 1))
            {
                _sessions.TryRemove(id, out _);
            }
        }
        string session = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        _sessions[session] = (DateTimeOffset.UtcNow + options.CurrentValue.SessionLifetime, who);
        return session;
    }

    public void End(HttpContext context)
    {
        if (context.Request.Cookies[Cookie] is { } session)
        {
            _sessions.TryRemove(session, out _);
        }
    }

    /// <summary>
    /// Whether the request may use the inspector and the admin API without a bearer token: a live session
    /// cookie (plus the X-Otun-Inspect header for anything but GET), or a loopback visitor when
    /// Inspector:OpenOnLoopback is on (otun dev).
    /// </summary>
    public bool Allows(HttpContext context) => Allows(context, out _);

    /// <inheritdoc cref="Allows(HttpContext)"/>
    /// <param name="who">The session's token name and scope (a read-scope session may not change anything).</param>
    public bool Allows(HttpContext context, out AdminPrincipal? who)
    {
        who = null;
        var request = context.Request;
        bool changes = !HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method);
        if (changes && !request.Headers.ContainsKey(Header))
        {
            return false;
        }
        if (options.CurrentValue.OpenOnLoopback && context.Connection.RemoteIpAddress is { } remote && IPAddress.IsLoopback(remote))
        {
            who = Loopback;
            return true;
        }
        if (request.Cookies[Cookie] is not { Length: 64 } session || !_sessions.TryGetValue(session, out var entry))
        {
            return false;
        }
        if (entry.Expires < DateTimeOffset.UtcNow)
        {
            _sessions.TryRemove(session, out _);
            return false;
        }
        if (changes && entry.Who.Scope != AdminScopes.Full)
        {
            return false;
        }
        who = entry.Who;
        return true;
    }
}
