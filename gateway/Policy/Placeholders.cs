using System.Text;

namespace OrleansTunnel.Gateway.Policy;

/// <summary>
/// Placeholders in rewrite header values: {client_ip} (the visitor's address, through trusted proxies),
/// {host} (the matched host, lower-case, no port), {request_id} (the gateway's request id) and {identity}
/// (HttpContext.Items["otun.identity"] when an access policy set it as a string, else empty). Any other
/// <c>{...}</c> is refused at validation; values never carry control characters.
/// </summary>
public static class Placeholders
{
    public const string ClientIp = "client_ip", Host = "host", RequestId = "request_id", Identity = "identity";

    /// <summary>HttpContext.Items key of the visitor's identity (a string), set by an access policy.</summary>
    public const string IdentityItem = "otun.identity";

    /// <summary>HttpContext.Items key of the visitor's claims (IReadOnlyDictionary&lt;string, string&gt;), set by an access policy.</summary>
    public const string ClaimsItem = "otun.claims";

    private static readonly string[] Known = [ClientIp, Host, RequestId, Identity];

    /// <summary>What is wrong with a template, or null.</summary>
    public static string? Problem(string template)
    {
        int i = 0;
        while ((i = template.IndexOf('{', i)) >= 0)
        {
            int end = template.IndexOf('}', i);
            if (end < 0)
            {
                return $"'{{' without '}}' at position {i}; placeholders are {Names}";
            }
            string name = template[(i + 1)..end];
            if (Array.IndexOf(Known, name) < 0)
            {
                return $"unknown placeholder '{{{name}}}'; placeholders are {Names}";
            }
            i = end + 1;
        }
        return null;
    }

    public static string Names => string.Join(", ", Known.Select(k => "{" + k + "}"));

    /// <summary>Expands a (validated) template; <paramref name="resolve"/> gives a placeholder's value.</summary>
    public static string Expand(string template, Func<string, string?> resolve)
    {
        if (!template.Contains('{'))
        {
            return template;
        }
        var builder = new StringBuilder(template.Length + 32);
        int at = 0;
        int i;
        while ((i = template.IndexOf('{', at)) >= 0)
        {
            int end = template.IndexOf('}', i);
            if (end < 0)
            {
                break;
            }
            builder.Append(template, at, i - at);
            AppendSafe(builder, resolve(template[(i + 1)..end]));
            at = end + 1;
        }
        builder.Append(template, at, template.Length - at);
        return builder.ToString();
    }

    /// <summary>Appends a value without control characters (a placeholder can never split a header).</summary>
    private static void AppendSafe(StringBuilder builder, string? value)
    {
        foreach (char c in value ?? "")
        {
            if (!char.IsControl(c))
            {
                builder.Append(c);
            }
        }
    }
}
