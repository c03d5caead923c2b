using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Identity;

/// <summary>What is wrong with a route's identity settings, naming the key and the fix (shared by the configuration validator and the admin API).</summary>
public static class IdentityValidation
{
    /// <summary>Null when fine; <paramref name="kind"/> is the route's normalised access kind.</summary>
    public static string? Problem(string kind, RouteIdentity? identity)
    {
        bool oidc = kind == Ingress.VisitorAccess.Oidc, jwt = kind == Ingress.VisitorAccess.Jwt;
        if (!oidc && !jwt)
        {
            return identity is null ? null : $"Identity is set but Access is '{kind}'; set Access to oidc or jwt, or remove Identity";
        }
        if (identity is null)
        {
            return $"Access '{kind}' needs Identity (at least Identity:Issuer{(oidc ? ", Identity:ClientId and Identity:ClientSecret" : " and Identity:Audiences")})";
        }
        if (!Uri.TryCreate(identity.Issuer, UriKind.Absolute, out var issuer) || issuer.Scheme is not ("https" or "http"))
        {
            return $"Identity:Issuer '{identity.Issuer}' must be an absolute https:// URL (the issuer named in its tokens)";
        }
        if (issuer.Scheme == "http" && identity.RequireHttpsMetadata)
        {
            return $"Identity:Issuer '{identity.Issuer}' is plain http; use https, or set Identity:RequireHttpsMetadata false (loopback test issuers only)";
        }
        if (identity.JwksUri is { Length: > 0 } jwks && (!Uri.TryCreate(jwks, UriKind.Absolute, out var jwksUri) || (jwksUri.Scheme != "https" && (jwksUri.Scheme != "http" || identity.RequireHttpsMetadata))))
        {
            return $"Identity:JwksUri '{jwks}' must be an absolute https:// URL (http only with Identity:RequireHttpsMetadata false)";
        }
        if (oidc && string.IsNullOrWhiteSpace(identity.ClientId))
        {
            return "Access 'oidc' needs Identity:ClientId (the client registered at the issuer)";
        }
        bool secret = !string.IsNullOrWhiteSpace(identity.ClientSecret), reference = !string.IsNullOrWhiteSpace(identity.ClientSecretRef);
        if (oidc && secret && reference)
        {
            return "Identity:ClientSecret and Identity:ClientSecretRef are both set; keep only one (ClientSecretRef is recommended on clusters: the secret then stays out of the cluster's state)";
        }
        if (oidc && !secret && !reference)
        {
            return "Access 'oidc' needs Identity:ClientSecretRef (env:NAME or file:/path, read by each gateway; recommended) or Identity:ClientSecret (the gateway is a confidential client; it is never logged nor shown)";
        }
        if (reference && !oidc)
        {
            return $"Identity:ClientSecretRef is only used by Access 'oidc'; remove it from this '{kind}' route";
        }
        if (reference && ClientSecrets.FormProblem(identity.ClientSecretRef!.Trim()) is { } form)
        {
            return form;
        }
        if (identity.PostLogoutRedirectUri is { Length: > 0 } after && !after.StartsWith('/') && !(Uri.TryCreate(after, UriKind.Absolute, out var afterUri) && afterUri.Scheme is "https" or "http"))
        {
            return $"Identity:PostLogoutRedirectUri '{after}' must be a path of this site (starting with /) or an absolute http(s) URL";
        }
        if (jwt && identity.Audiences is not { Length: > 0 })
        {
            return "Access 'jwt' needs Identity:Audiences (the aud values a token must carry one of; e.g. [\"api://my-service\"])";
        }
        if (identity.SessionLifetime is { } lifetime && (lifetime < TimeSpan.FromMinutes(1) || lifetime > TimeSpan.FromDays(30)))
        {
            return $"Identity:SessionLifetime {lifetime} must be between 00:01:00 and 30.00:00:00";
        }
        if (identity.ClockSkew is { } skew && (skew < TimeSpan.Zero || skew > TimeSpan.FromMinutes(10)))
        {
            return $"Identity:ClockSkew {skew} must be between 00:00:00 and 00:10:00";
        }
        foreach (var (name, value) in new[] { ("UserHeader", identity.UserHeader), ("EmailHeader", identity.EmailHeader), ("GroupsHeader", identity.GroupsHeader) })
        {
            if (value is { Length: > 0 } && !IsToken(value))
            {
                return $"Identity:{name} '{value}' is not a valid header name (letters, digits and -)";
            }
        }
        foreach (var claim in identity.RequiredClaims ?? [])
        {
            if (string.IsNullOrWhiteSpace(claim) || claim.StartsWith('='))
            {
                return $"Identity:RequiredClaims entry '{claim}' must be \"name\" or \"name=value\"";
            }
        }
        foreach (var domain in identity.AllowedDomains ?? [])
        {
            if (string.IsNullOrWhiteSpace(domain) || domain.Contains('@'))
            {
                return $"Identity:AllowedDomains entry '{domain}' must be a domain such as example.com (without @)";
            }
        }
        return null;
    }

    private static bool IsToken(string name) => name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');
}
