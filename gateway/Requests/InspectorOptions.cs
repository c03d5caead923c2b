namespace OrleansTunnel.Gateway.Requests;

/// <summary>What the request journal captures for people looking at traffic (configuration section "Inspector").</summary>
public sealed class InspectorOptions
{
    public const string Section = "Inspector";

    /// <summary>Keep each request's and response's header fields (redacted) with the request. Default true.</summary>
    public bool CaptureHeaders { get; set; } = true;

    /// <summary>
    /// Header fields whose values are replaced by "[redacted]" before anything is kept, on top of
    /// Authorization, Proxy-Authorization, Cookie and Set-Cookie (which are always redacted).
    /// </summary>
    public List<string> RedactHeaders { get; set; } = [];

    /// <summary>The value kept in place of a redacted field.</summary>
    public const string Redacted = "[redacted]";

    private static readonly string[] Always = ["Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie"];

    private HashSet<string>? _redacted;
    private List<string>? _redactedSource;

    /// <summary>Whether a field's value must not be kept.</summary>
    public bool IsRedacted(string name)
    {
        if (!ReferenceEquals(_redactedSource, RedactHeaders))
        {
            var set = new HashSet<string>(Always, StringComparer.OrdinalIgnoreCase);
            set.UnionWith(RedactHeaders);
            _redacted = set;
            _redactedSource = RedactHeaders;
        }
        return _redacted!.Contains(name);
    }
}
