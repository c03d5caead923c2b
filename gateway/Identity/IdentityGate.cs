using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Identity;

/// <summary>
/// Access "oidc" and "jwt" on the ingress, after routing and the network/credential check: runs ASP.NET
/// Core's OpenID Connect, cookie and JWT bearer handlers for the route's run-time schemes, applies the
/// allow-lists and hands the identity to the backend in headers (and to later ingress steps in
/// HttpContext.Items). Routes without these kinds never reach it.
/// </summary>
public sealed class IdentityGate(IdentitySchemes schemes, IOptionsMonitor<IdentityAccessOptions> options, ClientSecrets secrets,
    IOptionsMonitor<Microsoft.AspNetCore.Authentication.OpenIdConnect.OpenIdConnectOptions> oidcOptions)
{
    /// <summary>What the gate did: let the request on, answered it itself (redirect, callback, logout), or refused it.</summary>
    public enum Outcome
    {
        Pass,
        Answered,
        Refused,
    }

    /// <summary>Removes Gateway:Identity:StripHeaders from a visitor's request, on every route.</summary>
    public void StripForgeable(IHeaderDictionary headers)
    {
        foreach (var name in options.CurrentValue.StripHeaders)
        {
            headers.Remove(name);
        }
    }

    public async Task<Outcome> AdmitAsync(HttpContext context, Route route)
    {
        string kind = VisitorAccess.Kind(route.Access)!;
        if (schemes.For(route) is not { } s)
        {
            // Fails closed: validation refuses such routes, so only a hand-made snapshot can get here.
            await GatewayErrors.WriteAsync(context, StatusCodes.Status403Forbidden, "this route's access settings are invalid (no Identity); ask its operator");
            return Outcome.Refused;
        }
        var identity = s.Identity;
        var headers = context.Request.Headers;
        headers.Remove(identity.UserHeaderName);
        headers.Remove(identity.EmailHeaderName);
        headers.Remove(identity.GroupsHeaderName);
        return kind == VisitorAccess.Oidc ? await OidcAsync(context, s) : await JwtAsync(context, s);
    }

    private async Task<Outcome> OidcAsync(HttpContext context, RouteSchemes s)
    {
        var request = context.Request;
        string path = request.Path.Value ?? "/";
        // The handler provider is per request (it caches the request's handlers).
        var handlers = context.RequestServices.GetRequiredService<IAuthenticationHandlerProvider>();
        if (path == s.CallbackPath && !await SecretReadyAsync(context, s))
        {
            return Outcome.Refused;
        }
        if (await handlers.GetHandlerAsync(context, s.Oidc!) is IAuthenticationRequestHandler remote && await remote.HandleRequestAsync())
        {
            // The callback: the code was exchanged and the session cookie set (or the handler answered the error).
            return Outcome.Answered;
        }
        if (path == s.LogoutPath)
        {
            return await SignOutAsync(context, s);
        }
        var result = await context.AuthenticateAsync(s.Cookie);
        if (result.Succeeded)
        {
            // The backend gets the identity, not the session cookie (it could replay it).
            RemoveCookie(request.Headers, s.CookieName!);
            return await AllowAsync(context, s, result.Principal!);
        }
        if (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method))
        {
            if (!await SecretReadyAsync(context, s))
            {
                return Outcome.Refused;
            }
            try
            {
                await context.ChallengeAsync(s.Oidc, new AuthenticationProperties { RedirectUri = request.PathBase + request.Path + request.QueryString });
            }
            catch (Exception ex) when (ex is Microsoft.IdentityModel.Protocols.OpenIdConnect.OpenIdConnectProtocolException or HttpRequestException or InvalidOperationException && !context.Response.HasStarted)
            {
                // The issuer could not be read or refused the sign-in request (e.g. an unregistered redirect URI).
                await GatewayErrors.WriteAsync(context, StatusCodes.Status502BadGateway,
                    $"cannot start the sign-in at {s.Identity.Issuer}: {ex.Message}; the operator should check the route's Identity:Issuer and ClientId and the redirect URI registered at the issuer");
                return Outcome.Refused;
            }
            return Outcome.Answered;
        }
        await GatewayErrors.WriteAsync(context, StatusCodes.Status401Unauthorized,
            "this route needs a signed-in session: open the site in a browser to sign in, then retry");
        return Outcome.Refused;
    }

    /// <summary>
    /// The logout path: clears the session cookie and, when the visitor had a session and the issuer advertises
    /// an end_session_endpoint, lets the OpenID Connect handler send them there (RP-initiated logout with
    /// id_token_hint and post_logout_redirect_uri = the route's signed-out path) so the issuer's session ends too.
    /// </summary>
    private async Task<Outcome> SignOutAsync(HttpContext context, RouteSchemes s)
    {
        var session = await context.AuthenticateAsync(s.Cookie);
        if (!session.Succeeded)
        {
            await context.SignOutAsync(s.Cookie);
            await GatewayErrors.WriteAsync(context, StatusCodes.Status200OK, "you are not signed in on this site; nothing to sign out of");
            return Outcome.Answered;
        }
        string? endSession = null, why = null;
        try
        {
            var manager = oidcOptions.Get(s.Oidc).ConfigurationManager;
            endSession = manager is null ? null : (await manager.GetConfigurationAsync(context.RequestAborted)).EndSessionEndpoint;
        }
        catch (Exception ex) when (ex is InvalidOperationException or HttpRequestException or IOException or Microsoft.IdentityModel.Protocols.OpenIdConnect.OpenIdConnectProtocolException)
        {
            why = ex.Message;
        }
        if (string.IsNullOrEmpty(endSession))
        {
            await context.SignOutAsync(s.Cookie);
            await GatewayErrors.WriteAsync(context, StatusCodes.Status200OK, why is null
                ? "signed out of this site (the issuer offers no end_session_endpoint: your session there, if any, stays)"
                : $"signed out of this site; the issuer could not be asked to end your session there ({why})");
            return Outcome.Answered;
        }
        // The handler reads the id token from the session first (id_token_hint), so the cookie goes after.
        await context.SignOutAsync(s.Oidc, new AuthenticationProperties { RedirectUri = s.Identity.PostLogoutRedirectUri });
        await context.SignOutAsync(s.Cookie);
        return Outcome.Answered;
    }

    /// <summary>
    /// Resolves a ClientSecretRef on this gateway before a sign-in needs the secret (challenge, code redemption):
    /// a rotated secret is used from the next sign-in; an unreadable reference answers 503 naming it.
    /// </summary>
    private async Task<bool> SecretReadyAsync(HttpContext context, RouteSchemes s)
    {
        if (s.Identity.ClientSecretRef is null)
        {
            return true;
        }
        if (secrets.Resolve(s.Identity, out string? problem) is not { } secret)
        {
            await GatewayErrors.WriteAsync(context, StatusCodes.Status503ServiceUnavailable,
                $"sign-in is unavailable on this gateway: Identity:ClientSecretRef {s.Identity.ClientSecretRef} cannot be resolved: {problem}");
            return false;
        }
        // The handler reads its options at each step; the options object is this scheme's, cached by the options system.
        oidcOptions.Get(s.Oidc).ClientSecret = secret;
        return true;
    }

    private async Task<Outcome> JwtAsync(HttpContext context, RouteSchemes s)
    {
        const string realm = "Bearer realm=\"otun\"";
        var result = await context.AuthenticateAsync(s.Jwt);
        if (result.None)
        {
            context.Response.Headers.WWWAuthenticate = realm;
            await GatewayErrors.WriteAsync(context, StatusCodes.Status401Unauthorized, "this route needs a bearer JWT (Authorization: Bearer <token>)");
            return Outcome.Refused;
        }
        if (!result.Succeeded)
        {
            string why = JwtProblems.Describe(result.Failure);
            context.Response.Headers.WWWAuthenticate = $"{realm}, error=\"invalid_token\", error_description=\"{why.Replace("\"", "'")}\"";
            await GatewayErrors.WriteAsync(context, StatusCodes.Status401Unauthorized, "the bearer JWT was refused: " + why);
            return Outcome.Refused;
        }
        foreach (var required in s.Identity.RequiredClaims ?? [])
        {
            int eq = required.IndexOf('=');
            string type = eq < 0 ? required : required[..eq];
            bool present = eq < 0
                ? result.Principal!.HasClaim(c => c.Type == type)
                : result.Principal!.HasClaim(c => c.Type == type && c.Value == required[(eq + 1)..]);
            if (!present)
            {
                string why = eq < 0 ? $"missing claim '{type}'" : $"claim '{type}' is not '{required[(eq + 1)..]}'";
                context.Response.Headers.WWWAuthenticate = $"{realm}, error=\"invalid_token\", error_description=\"{why.Replace("\"", "'")}\"";
                await GatewayErrors.WriteAsync(context, StatusCodes.Status401Unauthorized, "the bearer JWT was refused: " + why);
                return Outcome.Refused;
            }
        }
        // The backend gets the identity, not the token.
        context.Request.Headers.Remove("Authorization");
        return await AllowAsync(context, s, result.Principal!);
    }

    /// <summary>Removes the session cookie (and its chunks) from the Cookie header, keeping the others as sent.</summary>
    public static void RemoveCookie(IHeaderDictionary headers, string name)
    {
        var values = headers.Cookie;
        if (values.Count == 0)
        {
            return;
        }
        var kept = values.SelectMany(v => (v ?? "").Split(';')).Select(c => c.Trim())
            .Where(c => c.Length > 0 && !c.StartsWith(name, StringComparison.Ordinal)).ToArray();
        if (kept.Length == 0)
        {
            headers.Remove("Cookie");
        }
        else
        {
            headers.Cookie = string.Join("; ", kept);
        }
    }

    private static async Task<Outcome> AllowAsync(HttpContext context, RouteSchemes s, ClaimsPrincipal principal)
    {
        var visitor = VisitorIdentity.From(principal, s.Identity);
        if (visitor.Refusal(s.Identity) is { } refusal)
        {
            await GatewayErrors.WriteAsync(context, StatusCodes.Status403Forbidden, refusal);
            return Outcome.Refused;
        }
        visitor.Apply(context, s.Identity);
        return Outcome.Pass;
    }
}
