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

    private readonly ConcurrentDictionary<string, DateTimeOffset> _sessions = new(StringComparer.Ordinal);

    public string Create()
    {
        if (_sessions.Count >= MaxSessions)
        {
            foreach (var (id, _) in _sessions.OrderBy(s => s.Value).Take(_sessions.Count - MaxSessions + 1))
            {
                _sessions.TryRemove(id, out _);
            }
        }
        string session = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        _sessions[session] = DateTimeOffset.UtcNow + options.CurrentValue.SessionLifetime;
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
    public bool Allows(HttpContext context)
    {
        var request = context.Request;
        bool changes = !HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method);
        if (changes && !request.Headers.ContainsKey(Header))
        {
            return false;
        }
        if (options.CurrentValue.OpenOnLoopback && context.Connection.RemoteIpAddress is { } remote && IPAddress.IsLoopback(remote))
        {
            return true;
        }
        if (request.Cookies[Cookie] is not { Length: 64 } session || !_sessions.TryGetValue(session, out var expires))
        {
            return false;
        }
        if (expires < DateTimeOffset.UtcNow)
        {
            _sessions.TryRemove(session, out _);
            return false;
        }
        return true;
    }
}
