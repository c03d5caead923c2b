namespace OrleansTunnel.Mux;

/// <summary>
/// One canonical path for routing, access checks and the backend. Kestrel hands the gateway a decoded
/// path with dot segments resolved, while the target forwarded to the backend is the raw one; the two
/// agree on every segment only when the raw path holds nothing a backend may read differently: empty
/// segments (<c>//</c>, merged by nginx), dot segments raw or percent-encoded (resolved by most
/// servers), encoded slashes and backslashes (decoded by some), backslashes, <c>;</c> path parameters
/// (stripped by Tomcat and Spring), NUL, and double-encoded forms of all of these. A route in the
/// default <c>Canonical</c> mode refuses such a target with 400 and a message naming what it holds; a
/// <c>Raw</c> route forwards it byte for byte, except on hosts where some route checks access (the
/// gateway cannot know which of its prefixes the backend will see there).
/// </summary>
public static class CanonicalPath
{
    /// <summary>Route path modes (Gateway:Routes:N:PathMode).</summary>
    public const string Canonical = "canonical";

    /// <inheritdoc cref="Canonical"/>
    public const string Raw = "raw";

    /// <summary>The normalised mode name, or null when <paramref name="mode"/> is not one.</summary>
    public static string? Mode(string? mode) => mode?.Trim().ToLowerInvariant() switch
    {
        null or "" or Canonical => Canonical,
        Raw => Raw,
        _ => null,
    };

    /// <summary>
    /// The path part (before any query) of a raw request target in origin form (<c>/a/b?q</c>) or
    /// absolute form (<c>http://host/a/b?q</c>); "/" for an absolute target without a path.
    /// </summary>
    public static ReadOnlySpan<char> PathOf(string rawTarget)
    {
        ReadOnlySpan<char> target = rawTarget;
        if (!target.StartsWith('/'))
        {
            int scheme = target.IndexOf("://", StringComparison.Ordinal);
            if (scheme < 0)
            {
                return target;
            }
            var rest = target[(scheme + 3)..];
            int slash = rest.IndexOfAny('/', '?');
            target = slash < 0 || rest[slash] == '?' ? "/" : rest[slash..];
        }
        int query = target.IndexOfAny('?', '#');
        return query < 0 ? target : target[..query];
    }

    /// <summary>What makes <paramref name="path"/> (raw, as sent) non-canonical, or null when it is canonical.</summary>
    public static string? Problem(ReadOnlySpan<char> path)
    {
        if (path.Length == 0 || path[0] != '/')
        {
            return "the path does not start with '/'";
        }
        int start = 1;
        while (start <= path.Length)
        {
            int end = path[start..].IndexOf('/');
            var segment = end < 0 ? path[start..] : path.Slice(start, end);
            bool last = end < 0;
            if (segment.Length == 0 && !last)
            {
                return "the path holds an empty segment ('//')";
            }
            if (SegmentProblem(segment) is { } problem)
            {
                return problem;
            }
            if (last)
            {
                break;
            }
            start += end + 1;
        }
        return null;
    }

    private static string? SegmentProblem(ReadOnlySpan<char> segment)
    {
        int dots = 0, other = 0;
        for (int i = 0; i < segment.Length; i++)
        {
            char c = segment[i];
            switch (c)
            {
                case '\\':
                    return "the path holds a backslash";
                case ';':
                    return "the path holds ';' (a path parameter)";
                case < ' ' or '\u007f':
                    return "the path holds a control character";
                case '.':
                    dots++;
                    continue;
                case '%':
                    if (Encoded(segment, i) is not { } decoded)
                    {
                        return "the path holds a '%' that does not start an escape (%XX)";
                    }
                    switch (decoded)
                    {
                        case '.':
                            dots++;
                            i += 2;
                            continue;
                        case '/':
                            return "the path holds an encoded slash (%2F)";
                        case '\\':
                            return "the path holds an encoded backslash (%5C)";
                        case '\0':
                            return "the path holds an encoded NUL (%00)";
                        case '%' when Pair(segment, i + 3) is '.' or '/' or '\\' or '\0' or ';' or '%':
                            return "the path holds a double-encoded character (%25XX)";
                    }
                    i += 2;
                    other++;
                    continue;
            }
            other++;
        }
        return other == 0 && dots is 1 or 2 ? "the path holds a dot segment ('.' or '..', raw or encoded)" : null;
    }

    /// <summary>The character a %XX escape at <paramref name="at"/> stands for, or null when it is not one.</summary>
    private static char? Encoded(ReadOnlySpan<char> s, int at)
    {
        return at >= 0 && at < s.Length && s[at] == '%' ? Pair(s, at + 1) : null;
    }

    /// <summary>The character two hex digits at <paramref name="at"/> stand for, or null.</summary>
    private static char? Pair(ReadOnlySpan<char> s, int at)
    {
        if (at < 0 || at + 1 >= s.Length)
        {
            return null;
        }
        int hi = Hex(s[at]), lo = Hex(s[at + 1]);
        return hi < 0 || lo < 0 ? null : (char)(hi * 16 + lo);
    }

    private static int Hex(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => -1,
    };
}
