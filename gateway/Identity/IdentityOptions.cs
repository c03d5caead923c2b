using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Identity;

/// <summary>
/// Gateway:Routes:N:Identity: the settings of a route whose Access is "oidc" or "jwt" (see README,
/// "OIDC and JWT access"). Turned into the <see cref="RouteIdentity"/> that travels with the route.
/// </summary>
public sealed class RouteIdentityOptions
{
    /// <summary>The issuer (OpenID Connect authority): its discovery document is at ISSUER/.well-known/openid-configuration.</summary>
    public string Issuer { get; set; } = "";

    /// <summary>OIDC: the client id registered at the issuer (redirect URI: https://HOST[PREFIX]/.otun/oidc/callback).</summary>
    public string? ClientId { get; set; }

    /// <summary>OIDC: the client secret. Never logged, never answered by the admin API; it is stored in the cluster's route state (use ClientSecretRef on clusters).</summary>
    public string? ClientSecret { get; set; }

    /// <summary>
    /// OIDC (recommended instead of ClientSecret): where each gateway reads the client secret itself, "env:NAME"
    /// (an environment variable of the gateway) or "file:/path" (e.g. a mounted Kubernetes Secret; a trailing
    /// newline is trimmed; re-read at each sign-in). The secret never enters the cluster's state.
    /// </summary>
    public string? ClientSecretRef { get; set; }

    /// <summary>
    /// OIDC: where the visitor lands after signing out at the issuer (a path of this site or an absolute URL);
    /// default the gateway's own "signed out" page. The issuer must know https://HOST[PREFIX]/.otun/oidc/signed-out
    /// as a post-logout redirect URI of the client.
    /// </summary>
    public string? PostLogoutRedirectUri { get; set; }

    /// <summary>OIDC: scopes asked for; default openid, email, profile.</summary>
    public List<string> Scopes { get; set; } = [];

    /// <summary>Visitors allowed by email (exact, case-insensitive); all three lists empty: anyone the issuer vouches for.</summary>
    public List<string> AllowedEmails { get; set; } = [];

    /// <summary>Visitors allowed by the domain of their email (e.g. example.com).</summary>
    public List<string> AllowedDomains { get; set; } = [];

    /// <summary>Visitors allowed by a value of the groups claim.</summary>
    public List<string> AllowedGroups { get; set; } = [];

    /// <summary>Claim holding the groups; default "groups".</summary>
    public string? GroupsClaim { get; set; }

    /// <summary>Claim sent as the user; default "sub".</summary>
    public string? UserClaim { get; set; }

    /// <summary>Header names the backend receives; defaults X-Otun-User, X-Otun-Email, X-Otun-Groups.</summary>
    public string? UserHeader { get; set; }

    public string? EmailHeader { get; set; }

    public string? GroupsHeader { get; set; }

    /// <summary>OIDC: how long a session cookie is valid (not sliding); default 8 hours.</summary>
    public TimeSpan? SessionLifetime { get; set; }

    /// <summary>JWT: accepted audiences (one must match); required for jwt.</summary>
    public List<string> Audiences { get; set; } = [];

    /// <summary>JWT: the JWKS URL; default: the jwks_uri of the issuer's discovery document.</summary>
    public string? JwksUri { get; set; }

    /// <summary>JWT: tolerance on exp and nbf; default 1 minute.</summary>
    public TimeSpan? ClockSkew { get; set; }

    /// <summary>JWT: claims the token must carry: "name" (any value) or "name=value".</summary>
    public List<string> RequiredClaims { get; set; } = [];

    /// <summary>Refuse an issuer or JWKS served over plain http (default true; false only for a loopback test issuer).</summary>
    public bool RequireHttpsMetadata { get; set; } = true;

    public RouteIdentity ToRecord() => new(Issuer.Trim(), ClientId, ClientSecret, OrNull(Scopes), OrNull(AllowedEmails), OrNull(AllowedDomains),
        OrNull(AllowedGroups), GroupsClaim, UserClaim, UserHeader, EmailHeader, GroupsHeader, SessionLifetime, OrNull(Audiences), JwksUri,
        ClockSkew, OrNull(RequiredClaims), RequireHttpsMetadata, NullIfBlank(ClientSecretRef), NullIfBlank(PostLogoutRedirectUri));

    private static string? NullIfBlank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private static string[]? OrNull(List<string> list) => list.Count == 0 ? null : [.. list];
}

/// <summary>Gateway:Identity: gateway-wide settings of OIDC and JWT access.</summary>
public sealed class IdentityAccessOptions
{
    public const string Section = "Gateway:Identity";

    /// <summary>
    /// Lifetime of a session-cookie key of the cluster's key ring before a new one takes over (Data
    /// Protection's key rotation; old keys still read cookies until they expire). Default 90 days; at least 7.
    /// </summary>
    public TimeSpan KeyLifetime { get; set; } = TimeSpan.FromDays(90);

    /// <summary>
    /// Header names removed from every visitor request on every route (not only oidc/jwt ones), so a
    /// backend served by several routes cannot be fooled through a route without access. Default the three identity headers.
    /// </summary>
    public List<string> StripHeaders { get; set; } = [RouteIdentity.DefaultUserHeader, RouteIdentity.DefaultEmailHeader, RouteIdentity.DefaultGroupsHeader];

    /// <summary>
    /// PEM certificate (RSA) whose public key encrypts the session-cookie keys before they are stored in the
    /// cluster (grain storage, Redis); every gateway needs it with <see cref="KeyCertificateKeyPath"/> to read them.
    /// Empty (default): keys are stored unencrypted, readable by whoever reads the grain storage.
    /// </summary>
    public string? KeyCertificatePath { get; set; }

    /// <summary>PEM private key of <see cref="KeyCertificatePath"/>.</summary>
    public string? KeyCertificateKeyPath { get; set; }

    /// <summary>How often a cached JWKS / discovery document is re-read at most when a token names an unknown key id. Default 30 s.</summary>
    public TimeSpan JwksRefreshInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a JWKS / discovery document is cached before it is re-read anyway. Default 12 hours.</summary>
    public TimeSpan JwksCacheLifetime { get; set; } = TimeSpan.FromHours(12);
}
