using System.Net;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>
/// Per-route visitor access (basic auth, bearer token, network allow-list) and trusted-proxy checks.
/// The caller passes the route that routing matched, so access is decided for exactly the host and
/// path that chose the route.
/// </summary>
public static class VisitorAccess
{
    /// <summary>Access kinds of <see cref="Route.Access"/>.</summary>
    public const string None = "none", Basic = "basic", Bearer = "bearer", Oidc = "oidc", Jwt = "jwt";

    private static readonly ConditionalWeakTable<Route, IPNetwork[]> AllowedCache = new();

    /// <summary>The outcome of an access check: 0 allowed, otherwise 401 or 403 with a message.</summary>
    public readonly record struct Decision(int Status, string? Message, string? Challenge)
    {
        public bool Allowed => Status == 0;
    }

    /// <summary>Parses "10.0.0.0/8" or "192.0.2.7" (a single address); false when neither.</summary>
    public static bool TryParseNetwork(string? text, out IPNetwork network)
    {
        network = default;
        text = text?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }
        if (text.Contains('/'))
        {
            return IPNetwork.TryParse(text, out network);
        }
        if (IPAddress.TryParse(text, out var address))
        {
            network = new IPNetwork(address, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128);
            return true;
        }
        return false;
    }

    /// <summary>Parses a list of networks, skipping invalid entries (the validator reports them at start).</summary>
    public static IPNetwork[] ParseNetworks(IEnumerable<string>? texts) =>
        texts is null ? [] : [.. texts.Select(t => TryParseNetwork(t, out var n) ? (IPNetwork?)n : null).OfType<IPNetwork>()];

    /// <summary>True when the address (IPv4-mapped IPv6 counts as IPv4) lies in one of the networks.</summary>
    public static bool Contains(IPNetwork[] networks, IPAddress? address)
    {
        if (address is null)
        {
            return false;
        }
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }
        foreach (var network in networks)
        {
            if (network.Contains(address))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>True when the route's access is oidc or jwt (decided by Identity.IdentityGate).</summary>
    public static bool IsIdentity(string? access) =>
        access is { Length: 3 or 4 } a && (a.Equals(Oidc, StringComparison.OrdinalIgnoreCase) || a.Equals(Jwt, StringComparison.OrdinalIgnoreCase));

    /// <summary>Normalised access kind of a route: none, basic, bearer, oidc or jwt; null when unknown.</summary>
    public static string? Kind(string? access) => access?.Trim().ToLowerInvariant() switch
    {
        null or "" or None => None,
        Basic => Basic,
        Bearer => Bearer,
        Oidc => Oidc,
        Jwt => Jwt,
        _ => null,
    };

    /// <summary>
    /// Checks the visitor against the route's allow-list and credential. On success with a credential,
    /// the Authorization header is removed so the backend never sees the tunnel's credential.
    /// </summary>
    public static Decision Check(HttpContext context, Route route, TrustedProxies proxies, GatewayOptions options)
    {
        if (route.AllowedNetworks is { Length: > 0 } texts)
        {
            var networks = AllowedCache.GetValue(route, r => ParseNetworks(r.AllowedNetworks));
            if (!Contains(networks, proxies.VisitorAddress(context, options)))
            {
                return new Decision(StatusCodes.Status403Forbidden, "your address is not allowed on this route", null);
            }
        }
        var kind = Kind(route.Access);
        if (kind is None or Oidc or Jwt)
        {
            // oidc and jwt are decided by Identity.IdentityGate after this check.
            return default;
        }
        string realm = "otun";
        string challenge = kind == Basic ? $"Basic realm=\"{realm}\", charset=\"UTF-8\"" : $"Bearer realm=\"{realm}\"";
        if (kind is null || route.CredentialSha256 is not { Length: 64 } expectedHex || !IsHex(expectedHex))
        {
            // A misconfigured route fails closed.
            return new Decision(StatusCodes.Status403Forbidden, "this route's access settings are invalid; ask its operator", null);
        }
        var headers = context.Request.Headers;
        StringValues authorization = headers.Authorization;
        if (authorization.Count != 1 || authorization[0] is not { } value)
        {
            return new Decision(StatusCodes.Status401Unauthorized, "this route needs credentials", challenge);
        }
        string scheme = kind == Basic ? "Basic " : "Bearer ";
        if (!value.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            return new Decision(StatusCodes.Status401Unauthorized, "this route needs credentials", challenge);
        }
        byte[] secret;
        if (kind == Basic)
        {
            try
            {
                secret = Convert.FromBase64String(value[scheme.Length..].Trim());
            }
            catch (FormatException)
            {
                return new Decision(StatusCodes.Status401Unauthorized, "the credentials are wrong", challenge);
            }
        }
        else
        {
            secret = Encoding.UTF8.GetBytes(value[scheme.Length..].Trim());
        }
        Span<byte> actual = stackalloc byte[32];
        SHA256.HashData(secret, actual);
        Span<byte> expected = stackalloc byte[32];
        Convert.FromHexString(expectedHex, expected, out _, out _);
        if (!CryptographicOperations.FixedTimeEquals(actual, expected))
        {
            return new Decision(StatusCodes.Status401Unauthorized, "the credentials are wrong", challenge);
        }
        headers.Remove("Authorization");
        return default;
    }

    private static bool IsHex(string s) => s.All(Uri.IsHexDigit);

    /// <summary>Lower-case hex SHA-256 of a credential ("user:password" or a token).</summary>
    public static string Hash(string credential) => OrleansTunnel.Gateway.Auth.AgentCredentialStore.Hash(credential);
}
