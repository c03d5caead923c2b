using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authentication.OpenIdConnect;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Identity;

/// <summary>The authentication schemes that serve one route: a cookie and an OIDC scheme, or a JWT bearer scheme.</summary>
public sealed record RouteSchemes(string? Cookie, string? Oidc, string? Jwt, string CallbackPath, string LogoutPath, string CookiePath, RouteIdentity Identity, string Prefix)
{
    /// <summary>Name of the session cookie (chunks of a large one add "C1", "C2"...).</summary>
    public string? CookieName => Cookie is null ? null : "otun_session_" + Cookie["otun-cookie-".Length..][..8];

    /// <summary>Where the issuer sends the visitor back after signing out (the post_logout_redirect_uri, to register at the issuer).</summary>
    public string SignedOutPath => Prefix + IdentitySchemes.SignedOutSuffix;
}

/// <summary>
/// ASP.NET Core authentication schemes made at run time, one per distinct identity configuration: routes
/// arrive and change with the routing snapshot, so the schemes cannot be fixed at start. A scheme's name is
/// a hash of every setting its handler reads, so one name always means one configuration: its options
/// (built by <see cref="IdentitySchemeOptions"/> on first use and cached by the options system) never go stale,
/// and every gateway of the cluster derives the same names, hence the same Data Protection purposes:
/// a cookie made by one gateway is read by all.
/// </summary>
public sealed class IdentitySchemes
{
    private readonly IAuthenticationSchemeProvider _provider;
    // Cached so that the per-request lookup allocates nothing.
    private readonly ConditionalWeakTable<Route, RouteSchemes>.CreateValueCallback _make;

    public IdentitySchemes(IAuthenticationSchemeProvider provider)
    {
        _provider = provider;
        _make = Make;
    }

    /// <summary>Paths under a route's prefix that the gateway answers itself on oidc routes.</summary>
    public const string CallbackSuffix = "/.otun/oidc/callback", LogoutSuffix = "/.otun/oidc/logout", SignedOutSuffix = "/.otun/oidc/signed-out";

    private readonly ConditionalWeakTable<Route, RouteSchemes> _byRoute = new();
    private readonly ConcurrentDictionary<string, RouteSchemes> _byName = new(StringComparer.Ordinal);

    /// <summary>The schemes of an oidc or jwt route (made and registered on first use), or null when the route has no identity settings.</summary>
    public RouteSchemes? For(Route route) => route.Identity is null ? null : _byRoute.GetValue(route, _make);

    /// <summary>The configuration behind a scheme name (for <see cref="IdentitySchemeOptions"/>).</summary>
    public RouteSchemes? Lookup(string name) => _byName.GetValueOrDefault(name);

    private RouteSchemes Make(Route route)
    {
        string? kind = Ingress.VisitorAccess.Kind(route.Access);
        var identity = route.Identity!;
        string prefix = route.PathPrefix ?? "";
        string cookiePath = prefix.Length == 0 ? "/" : prefix;
        RouteSchemes schemes;
        if (kind == Ingress.VisitorAccess.Oidc)
        {
            // The cookie's name (and so its Data Protection purpose) does not change with the secret or the allow-lists.
            string cookie = "otun-cookie-" + Hash(identity.Issuer, identity.ClientId, cookiePath, identity.SessionLifetime?.ToString());
            string oidc = "otun-oidc-" + Hash(identity.Issuer, identity.ClientId, identity.ClientSecret, string.Join(' ', identity.Scopes ?? []),
                prefix, identity.RequireHttpsMetadata.ToString(), identity.GroupsClaimName, cookie, identity.ClientSecretRef, identity.PostLogoutRedirectUri);
            schemes = new RouteSchemes(cookie, oidc, null, prefix + CallbackSuffix, prefix + LogoutSuffix, cookiePath, identity, prefix);
        }
        else
        {
            string jwt = "otun-jwt-" + Hash(identity.Issuer, identity.JwksUri, string.Join(' ', identity.Audiences ?? []), identity.ClockSkew?.ToString(),
                identity.RequireHttpsMetadata.ToString());
            schemes = new RouteSchemes(null, null, jwt, prefix + CallbackSuffix, prefix + LogoutSuffix, cookiePath, identity, prefix);
        }
        foreach (var (name, handler) in new[] { (schemes.Cookie, typeof(CookieAuthenticationHandler)), (schemes.Oidc, typeof(OpenIdConnectHandler)), (schemes.Jwt, typeof(JwtBearerHandler)) })
        {
            if (name is not null && _byName.TryAdd(name, schemes))
            {
                _provider.TryAddScheme(new AuthenticationScheme(name, name, handler));
            }
        }
        return schemes;
    }

    private static string Hash(params string?[] parts)
    {
        var text = string.Join("\u001f", parts.Select(p => p ?? "\u0000"));
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16];
    }
}
