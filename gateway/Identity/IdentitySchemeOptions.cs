using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authentication.OpenIdConnect;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace OrleansTunnel.Gateway.Identity;

/// <summary>
/// Builds the options of the run-time schemes of <see cref="IdentitySchemes"/> from the route settings
/// behind their names (ASP.NET Core's post-configure steps then add Data Protection, the backchannel and
/// the discovery document manager).
/// </summary>
public sealed class IdentitySchemeOptions(IdentitySchemes schemes, IOptions<IdentityAccessOptions> gateway) :
    IConfigureNamedOptions<OpenIdConnectOptions>, IConfigureNamedOptions<CookieAuthenticationOptions>, IConfigureNamedOptions<JwtBearerOptions>
{
    public void Configure(OpenIdConnectOptions options) { }

    public void Configure(CookieAuthenticationOptions options) { }

    public void Configure(JwtBearerOptions options) { }

    public void Configure(string? name, CookieAuthenticationOptions options)
    {
        if (name is null || schemes.Lookup(name) is not { } s || s.Cookie != name)
        {
            return;
        }
        options.Cookie.Name = s.CookieName;
        options.Cookie.Path = s.CookiePath;
        options.Cookie.HttpOnly = true;
        options.Cookie.SameSite = SameSiteMode.Lax;
        options.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
        options.ExpireTimeSpan = s.Identity.SessionLifetime ?? TimeSpan.FromHours(8);
        options.SlidingExpiration = false;
    }

    public void Configure(string? name, OpenIdConnectOptions options)
    {
        if (name is null || schemes.Lookup(name) is not { } s || s.Oidc != name)
        {
            return;
        }
        var identity = s.Identity;
        options.Authority = identity.Issuer;
        options.ClientId = identity.ClientId;
        // A ClientSecretRef is read again by the gate at each sign-in (IdentityGate.SecretReady).
        options.ClientSecret = identity.ClientSecretRef is { } reference ? ClientSecrets.Read(reference, Environment.GetEnvironmentVariable, out _) : identity.ClientSecret;
        options.RequireHttpsMetadata = identity.RequireHttpsMetadata;
        options.ResponseType = OpenIdConnectResponseType.Code;
        // The code comes back in the query (a top-level GET), so the correlation cookies can stay SameSite=Lax.
        options.ResponseMode = OpenIdConnectResponseMode.Query;
        options.UsePkce = true;
        options.SignInScheme = s.Cookie;
        options.CallbackPath = s.CallbackPath;
        // RP-initiated logout: the issuer sends the visitor back here (with the state naming where to go next).
        options.SignedOutCallbackPath = s.SignedOutPath;
        options.SignedOutRedirectUri = s.SignedOutPath;
        // The handler's front-channel sign-out path (default /signout-oidc) would shadow a backend path: moved under .otun.
        options.RemoteSignOutPath = s.Prefix + "/.otun/oidc/frontchannel-logout";
        // Only the id token is kept in the session (OnTokenValidated below), as the id_token_hint of the sign-out.
        options.SaveTokens = false;
        options.MapInboundClaims = false;
        options.GetClaimsFromUserInfoEndpoint = true;
        options.ClaimActions.MapJsonKey(identity.GroupsClaimName, identity.GroupsClaimName);
        options.ClaimActions.MapUniqueJsonKey("email_verified", "email_verified");
        options.ClaimActions.MapUniqueJsonKey("preferred_username", "preferred_username");
        options.Scope.Clear();
        foreach (var scope in identity.Scopes is { Length: > 0 } scopes ? scopes : ["openid", "email", "profile"])
        {
            options.Scope.Add(scope);
        }
        if (!options.Scope.Contains("openid"))
        {
            options.Scope.Add("openid");
        }
        foreach (var cookie in new[] { options.CorrelationCookie, options.NonceCookie })
        {
            cookie.SameSite = SameSiteMode.Lax;
            cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            cookie.Path = s.CallbackPath;
        }
        options.TokenValidationParameters.NameClaimType = identity.UserClaimName;
        options.TokenValidationParameters.RoleClaimType = identity.GroupsClaimName;
        options.Events = new OpenIdConnectEvents
        {
            // A failed callback (the provider said no, a stale or replayed callback, a code that does not
            // redeem) is the visitor's answer, not a 500.
            OnRemoteFailure = async context =>
            {
                context.HandleResponse();
                await Ingress.GatewayErrors.WriteAsync(context.HttpContext, StatusCodes.Status401Unauthorized,
                    $"sign-in failed: {context.Failure?.Message ?? "unknown reason"}; open the site again to retry");
            },
            OnTokenValidated = context =>
            {
                string? idToken = context.TokenEndpointResponse?.IdToken ?? context.ProtocolMessage?.IdToken ?? context.SecurityToken?.RawData;
                if (idToken is { Length: > 0 } && context.Properties is { } properties)
                {
                    properties.StoreTokens([new AuthenticationToken { Name = "id_token", Value = idToken }]);
                }
                return Task.CompletedTask;
            },
            // Back from the issuer's end_session_endpoint: on to Identity:PostLogoutRedirectUri, else the gateway's page.
            OnSignedOutCallbackRedirect = async context =>
            {
                string? next = context.Properties?.RedirectUri;
                if (string.IsNullOrEmpty(next) || (Uri.TryCreate(next, UriKind.Absolute, out var uri) && uri.AbsolutePath == s.SignedOutPath) || next == s.SignedOutPath)
                {
                    context.HandleResponse();
                    await Ingress.GatewayErrors.WriteAsync(context.HttpContext, StatusCodes.Status200OK, "signed out of this site and of the issuer");
                }
            },
        };
        options.RefreshInterval = gateway.Value.JwksRefreshInterval;
        options.AutomaticRefreshInterval = gateway.Value.JwksCacheLifetime;
    }

    public void Configure(string? name, JwtBearerOptions options)
    {
        if (name is null || schemes.Lookup(name) is not { } s || s.Jwt != name)
        {
            return;
        }
        var identity = s.Identity;
        var http = new HttpDocumentRetriever { RequireHttps = identity.RequireHttpsMetadata };
        options.ConfigurationManager = identity.JwksUri is { Length: > 0 } jwks
            ? new ConfigurationManager<OpenIdConnectConfiguration>(jwks, new JwksRetriever(), http)
            : new ConfigurationManager<OpenIdConnectConfiguration>(identity.Issuer.TrimEnd('/') + "/.well-known/openid-configuration", new OpenIdConnectConfigurationRetriever(), http);
        if (options.ConfigurationManager is ConfigurationManager<OpenIdConnectConfiguration> manager)
        {
            manager.RefreshInterval = gateway.Value.JwksRefreshInterval;
            manager.AutomaticRefreshInterval = gateway.Value.JwksCacheLifetime;
        }
        options.RequireHttpsMetadata = identity.RequireHttpsMetadata;
        options.MapInboundClaims = false;
        options.RefreshOnIssuerKeyNotFound = true;
        options.TokenValidationParameters = new TokenValidationParameters
        {
            ValidIssuer = identity.Issuer,
            ValidateIssuer = true,
            ValidAudiences = identity.Audiences ?? [],
            ValidateAudience = true,
            ValidateLifetime = true,
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            ValidateIssuerSigningKey = true,
            ClockSkew = identity.ClockSkew ?? TimeSpan.FromMinutes(1),
            NameClaimType = identity.UserClaimName,
            RoleClaimType = identity.GroupsClaimName,
        };
    }

    /// <summary>Reads a bare JWKS (Identity:JwksUri) as a configuration holding only signing keys.</summary>
    private sealed class JwksRetriever : IConfigurationRetriever<OpenIdConnectConfiguration>
    {
        public async Task<OpenIdConnectConfiguration> GetConfigurationAsync(string address, IDocumentRetriever retriever, CancellationToken cancel)
        {
            var set = new JsonWebKeySet(await retriever.GetDocumentAsync(address, cancel));
            var configuration = new OpenIdConnectConfiguration { JwksUri = address, JsonWebKeySet = set };
            foreach (var key in set.GetSigningKeys())
            {
                configuration.SigningKeys.Add(key);
            }
            return configuration;
        }
    }
}
