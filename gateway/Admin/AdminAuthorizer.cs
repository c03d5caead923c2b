using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace OrleansTunnel.Gateway.Admin;

/// <summary>Who made an admin call: the token's name and scope.</summary>
public sealed record AdminPrincipal(string Name, string Scope);

/// <summary>Checks the admin API's bearer tokens (Gateway:AdminTokenSha256, Gateway:AdminTokens) in constant time.</summary>
public sealed class AdminAuthorizer(IOptionsMonitor<GatewayOptions> options)
{
    /// <summary>Most source addresses whose failures are tracked at once (a bound on the memory an attacker can make us spend).</summary>
    private const int MaxTrackedSources = 10_000;

    private readonly ConcurrentDictionary<IPAddress, (long WindowStart, int Failures)> _failures = new();
    private readonly TimeProvider _time = TimeProvider.System;

    /// <summary>Null when allowed (then <paramref name="principal"/> names the token); otherwise the 401/403/429 answer to give.</summary>
    public IResult? Check(HttpContext context, out AdminPrincipal? principal)
    {
        principal = null;
        var source = context.Connection.RemoteIpAddress ?? IPAddress.None;
        long now = _time.GetTimestamp();
        int limit = options.CurrentValue.AdminFailuresPerMinute;
        if (limit > 0 && _failures.TryGetValue(source, out var entry))
        {
            var age = _time.GetElapsedTime(entry.WindowStart, now);
            if (age >= TimeSpan.FromMinutes(1))
            {
                _failures.TryRemove(KeyValuePair.Create(source, entry));
            }
            else if (entry.Failures >= limit)
            {
                int retry = (int)Math.Ceiling((TimeSpan.FromMinutes(1) - age).TotalSeconds);
                context.Response.Headers.RetryAfter = Math.Max(1, retry).ToString(CultureInfo.InvariantCulture);
                return Results.Text("otun admin: too many failed admin token attempts from this address; retry later\n", statusCode: StatusCodes.Status429TooManyRequests);
            }
        }
        var result = Verify(context, out principal);
        if (result is not null && limit > 0)
        {
            _failures.AddOrUpdate(source, (now, 1), (_, e) => (e.WindowStart, e.Failures + 1));
            if (_failures.Count > MaxTrackedSources)
            {
                Prune(now);
            }
        }
        return result;
    }

    /// <summary>Drops windows that ended; if the table is still full (failures from very many addresses), starts it afresh.</summary>
    private void Prune(long now)
    {
        foreach (var (address, entry) in _failures)
        {
            if (_time.GetElapsedTime(entry.WindowStart, now) >= TimeSpan.FromMinutes(1))
            {
                _failures.TryRemove(KeyValuePair.Create(address, entry));
            }
        }
        if (_failures.Count > MaxTrackedSources)
        {
            _failures.Clear();
        }
    }

    private IResult? Verify(HttpContext context, out AdminPrincipal? principal)
    {
        principal = null;
        var o = options.CurrentValue;
        if (string.IsNullOrEmpty(o.AdminTokenSha256) && o.AdminTokens.Count == 0)
        {
            return Results.Text("otun admin: the admin API is disabled; set Gateway:AdminTokenSha256 or Gateway:AdminTokens (otun hash-token prints a hash)\n", statusCode: StatusCodes.Status403Forbidden);
        }
        string header = context.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || header.Length <= 7)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            return Results.Text("otun admin: missing bearer token\n", statusCode: StatusCodes.Status401Unauthorized);
        }
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(header[7..].Trim()));
        // Every configured token is compared (constant time each), so timing tells nothing about which matched.
        foreach (var (name, hex, scope) in Tokens(o))
        {
            if (hex is { Length: 64 } && hex.All(Uri.IsHexDigit) && CryptographicOperations.FixedTimeEquals(presented, Convert.FromHexString(hex)))
            {
                principal ??= new AdminPrincipal(name, scope);
            }
        }
        if (principal is null)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer error=\"invalid_token\"";
            return Results.Text("otun admin: invalid admin token\n", statusCode: StatusCodes.Status401Unauthorized);
        }
        return null;
    }

    private static IEnumerable<(string Name, string? Sha256, string Scope)> Tokens(GatewayOptions o)
    {
        if (!string.IsNullOrEmpty(o.AdminTokenSha256))
        {
            yield return ("admin", o.AdminTokenSha256, AdminScopes.Full);
        }
        foreach (var t in o.AdminTokens)
        {
            yield return (t.Name, t.Sha256, t.Scope);
        }
    }
}
