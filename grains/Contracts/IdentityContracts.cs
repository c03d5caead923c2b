namespace OrleansTunnel.Grains;

/// <summary>
/// Identity settings of a route whose <see cref="Route.Access"/> is "oidc" (the gateway signs visitors in
/// with the OpenID Connect code flow and keeps the session in a cookie) or "jwt" (visitors send a bearer
/// JWT). Who may pass: <see cref="AllowedEmails"/>, <see cref="AllowedDomains"/> (of the email claim) and
/// <see cref="AllowedGroups"/> (of <see cref="GroupsClaim"/>); all empty: anyone the issuer vouches for.
/// The backend receives the identity in <see cref="UserHeader"/>, <see cref="EmailHeader"/> and
/// <see cref="GroupsHeader"/>; whatever a visitor sends under those names is removed first.
/// <see cref="ClientSecret"/> is never logged nor answered by the admin API; <see cref="ClientSecretRef"/>
/// (env:NAME or file:/path) keeps the secret out of grain state altogether: each gateway resolves it locally.
/// </summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.RouteIdentity")]
public sealed record RouteIdentity(
    [property: Id(0)] string Issuer,
    [property: Id(1)] string? ClientId = null,
    [property: Id(2)] string? ClientSecret = null,
    [property: Id(3)] string[]? Scopes = null,
    [property: Id(4)] string[]? AllowedEmails = null,
    [property: Id(5)] string[]? AllowedDomains = null,
    [property: Id(6)] string[]? AllowedGroups = null,
    [property: Id(7)] string? GroupsClaim = null,
    [property: Id(8)] string? UserClaim = null,
    [property: Id(9)] string? UserHeader = null,
    [property: Id(10)] string? EmailHeader = null,
    [property: Id(11)] string? GroupsHeader = null,
    [property: Id(12)] TimeSpan? SessionLifetime = null,
    [property: Id(13)] string[]? Audiences = null,
    [property: Id(14)] string? JwksUri = null,
    [property: Id(15)] TimeSpan? ClockSkew = null,
    [property: Id(16)] string[]? RequiredClaims = null,
    [property: Id(17)] bool RequireHttpsMetadata = true,
    [property: Id(18)] string? ClientSecretRef = null,
    [property: Id(19)] string? PostLogoutRedirectUri = null)
{
    /// <summary>Defaults of the identity header names and of the claims read.</summary>
    public const string DefaultUserHeader = "X-Otun-User", DefaultEmailHeader = "X-Otun-Email", DefaultGroupsHeader = "X-Otun-Groups",
        DefaultGroupsClaim = "groups", DefaultUserClaim = "sub";

    public string UserHeaderName => string.IsNullOrWhiteSpace(UserHeader) ? DefaultUserHeader : UserHeader;
    public string EmailHeaderName => string.IsNullOrWhiteSpace(EmailHeader) ? DefaultEmailHeader : EmailHeader;
    public string GroupsHeaderName => string.IsNullOrWhiteSpace(GroupsHeader) ? DefaultGroupsHeader : GroupsHeader;
    public string GroupsClaimName => string.IsNullOrWhiteSpace(GroupsClaim) ? DefaultGroupsClaim : GroupsClaim;
    public string UserClaimName => string.IsNullOrWhiteSpace(UserClaim) ? DefaultUserClaim : UserClaim;

    /// <summary>The same settings with the client secret replaced by "(set)" (for the admin API and logs).</summary>
    public RouteIdentity Redacted() => ClientSecret is null ? this : this with { ClientSecret = "(set)" };
}

/// <summary>
/// The cluster's Data Protection key ring (XML elements as ASP.NET Core writes them): every gateway reads
/// and writes the same keys, so a session cookie made by one gateway is accepted by all.
/// </summary>
[Alias("OrleansTunnel.IKeyRingGrain")]
public interface IKeyRingGrain : IGrainWithStringKey
{
    /// <summary>Every stored element, oldest first.</summary>
    [Alias("GetAll")]
    Task<string[]> GetAll();

    /// <summary>Stores an element under its friendly name (a key id); storing the same name again replaces it.</summary>
    [Alias("Store")]
    Task Store(string friendlyName, string xml);
}
