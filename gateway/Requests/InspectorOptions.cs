namespace OrleansTunnel.Gateway.Requests;

/// <summary>What the request journal captures for people looking at traffic (configuration section "Inspector").</summary>
public sealed class InspectorOptions
{
    public const string Section = "Inspector";

    /// <summary>
    /// Finished requests each gateway keeps (for the inspector and for look-ups by id), rounded up to a
    /// power of two, on top of the live ones; at most Gateway:RequestRetention old. Default 1000.
    /// </summary>
    public int Capacity { get; set; } = 1000;

    /// <summary>Keep each request's and response's header fields (redacted) with the request. Default true.</summary>
    public bool CaptureHeaders { get; set; } = true;

    /// <summary>
    /// Header fields whose values are replaced by "[redacted]" before anything is kept, on top of
    /// Authorization, Proxy-Authorization, Cookie and Set-Cookie (which are always redacted).
    /// </summary>
    public List<string> RedactHeaders { get; set; } = [];

    /// <summary>
    /// JSON fields (at any depth) whose values are replaced by "[redacted]" in captured JSON bodies
    /// before a capture can be read. A JSON body larger than the capture is then not kept at all.
    /// </summary>
    public List<string> RedactJsonFields { get; set; } = [];

    /// <summary>Most bytes of captured bodies one gateway keeps at once (over all requests in its journal). Default 16777216 (16 MiB).</summary>
    public long MaxBytes { get; set; } = 16L * 1024 * 1024;

    /// <summary>
    /// Let loopback visitors use the inspector page and the admin API without the admin token. Off by
    /// default; otun dev turns it on (its admin listener is on 127.0.0.1).
    /// </summary>
    public bool OpenOnLoopback { get; set; }

    /// <summary>How long an inspector login lasts. Default 12:00:00.</summary>
    public TimeSpan SessionLifetime { get; set; } = TimeSpan.FromHours(12);

    /// <summary>How often the inspector page's live list is refreshed from the cluster. Default 00:00:00.5.</summary>
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromMilliseconds(500);

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
