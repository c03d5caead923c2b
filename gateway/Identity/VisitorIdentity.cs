using System.Security.Claims;
using Microsoft.AspNetCore.Http;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Identity;

/// <summary>
/// Who a signed-in visitor is (user, verified email, groups, all claims), whether the route's allow-lists
/// let them in, and how the backend and later ingress steps learn it.
/// </summary>
public sealed record VisitorIdentity(string User, string? Email, string[] Groups, IReadOnlyDictionary<string, string> Claims)
{
    /// <summary>HttpContext.Items keys: the user (string) and the claims (IReadOnlyDictionary&lt;string, string&gt;, several values joined by ",").</summary>
    public const string ItemIdentity = "otun.identity", ItemClaims = "otun.claims";

    public static VisitorIdentity From(ClaimsPrincipal principal, RouteIdentity settings)
    {
        var claims = principal.Claims.GroupBy(c => c.Type, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => string.Join(",", g.Select(c => c.Value)), StringComparer.Ordinal);
        string user = principal.FindFirst(settings.UserClaimName)?.Value ?? principal.FindFirst("sub")?.Value ?? "";
        // An email the issuer says it has not verified is no email for the allow-list.
        string? email = principal.FindFirst("email")?.Value;
        if (string.Equals(principal.FindFirst("email_verified")?.Value, "false", StringComparison.OrdinalIgnoreCase))
        {
            email = null;
        }
        string[] groups = [.. principal.FindAll(settings.GroupsClaimName).SelectMany(c => SplitGroups(c.Value)).Distinct(StringComparer.Ordinal)];
        return new VisitorIdentity(user, email, groups, claims);
    }

    /// <summary>Null when the route lets this visitor in; otherwise the 403 message.</summary>
    public string? Refusal(RouteIdentity settings)
    {
        var emails = settings.AllowedEmails ?? [];
        var domains = settings.AllowedDomains ?? [];
        var groups = settings.AllowedGroups ?? [];
        if (emails.Length == 0 && domains.Length == 0 && groups.Length == 0)
        {
            return null;
        }
        if (Email is { } email)
        {
            if (emails.Any(e => e.Trim().Equals(email, StringComparison.OrdinalIgnoreCase)))
            {
                return null;
            }
            int at = email.LastIndexOf('@');
            if (at > 0 && domains.Any(d => d.Trim().TrimStart('@').Equals(email[(at + 1)..], StringComparison.OrdinalIgnoreCase)))
            {
                return null;
            }
        }
        if (Groups.Any(g => groups.Contains(g, StringComparer.Ordinal)))
        {
            return null;
        }
        string who = Email ?? (User.Length > 0 ? User : "this identity");
        return $"{who} is signed in but not allowed on this route (not in its allowed emails, domains or groups); ask its operator";
    }

    /// <summary>Sets the identity headers (after the visitor's own were removed) and HttpContext.Items.</summary>
    public void Apply(HttpContext context, RouteIdentity settings)
    {
        var headers = context.Request.Headers;
        if (User.Length > 0)
        {
            headers[settings.UserHeaderName] = Clean(User);
        }
        if (Email is not null)
        {
            headers[settings.EmailHeaderName] = Clean(Email);
        }
        if (Groups.Length > 0)
        {
            headers[settings.GroupsHeaderName] = Clean(string.Join(",", Groups));
        }
        context.Items[ItemIdentity] = User;
        context.Items[ItemClaims] = Claims;
    }

    // A groups claim is an array (one claim per value) or, from some issuers, one JSON array string.
    private static IEnumerable<string> SplitGroups(string value)
    {
        if (value.StartsWith('['))
        {
            try
            {
                return System.Text.Json.JsonSerializer.Deserialize<string[]>(value) ?? [];
            }
            catch (System.Text.Json.JsonException)
            {
                return [value];
            }
        }
        return [value];
    }

    // Header values may not carry control characters (a claim could, and must not split the head).
    private static string Clean(string value) => string.Create(value.Length, value, (span, v) =>
    {
        for (int i = 0; i < v.Length; i++)
        {
            span[i] = char.IsControl(v[i]) ? ' ' : v[i];
        }
    });
}
