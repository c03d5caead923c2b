using System.Text.RegularExpressions;

namespace OrleansTunnel.Tests.Deploy;

/// <summary>
/// Copies the repository as `docker build` would send it: without what the root .dockerignore
/// excludes. Supports the pattern forms Docker documents (`*`, `?`, `**`, leading `!`); a path is
/// left out when it or a parent folder is excluded.
/// </summary>
public static class DockerContext
{
    public static void CopyTo(string source, string destination)
    {
        var rules = File.ReadAllLines(Path.Combine(source, ".dockerignore"))
            .Select(l => l.Trim())
            .Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => l.StartsWith('!') ? (Include: true, Regex: ToRegex(l[1..])) : (Include: false, Regex: ToRegex(l)))
            .ToList();
        Copy(new DirectoryInfo(source), destination, "", rules);
    }

    private static void Copy(DirectoryInfo dir, string destination, string relative, List<(bool Include, Regex Regex)> rules)
    {
        Directory.CreateDirectory(destination);
        foreach (var entry in dir.EnumerateFileSystemInfos())
        {
            string path = relative.Length == 0 ? entry.Name : relative + "/" + entry.Name;
            if (Excluded(path, rules))
            {
                continue;
            }
            string target = Path.Combine(destination, entry.Name);
            if (entry is DirectoryInfo sub)
            {
                if (sub.LinkTarget is null)
                {
                    Copy(sub, target, path, rules);
                }
            }
            else
            {
                File.Copy(entry.FullName, target);
            }
        }
    }

    private static bool Excluded(string path, List<(bool Include, Regex Regex)> rules)
    {
        bool excluded = false;
        foreach (var (include, regex) in rules)
        {
            if (regex.IsMatch(path))
            {
                excluded = !include;
            }
        }
        return excluded;
    }

    private static Regex ToRegex(string pattern)
    {
        pattern = pattern.Trim('/');
        if (pattern.StartsWith("./", StringComparison.Ordinal))
        {
            pattern = pattern[2..];
        }
        var sb = new System.Text.StringBuilder("^");
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            if (c == '*' && i + 1 < pattern.Length && pattern[i + 1] == '*')
            {
                i++;
                if (i + 1 < pattern.Length && pattern[i + 1] == '/')
                {
                    i++;
                    sb.Append("(.*/)?");
                }
                else
                {
                    sb.Append(".*");
                }
            }
            else if (c == '*')
            {
                sb.Append("[^/]*");
            }
            else if (c == '?')
            {
                sb.Append("[^/]");
            }
            else
            {
                sb.Append(Regex.Escape(c.ToString()));
            }
        }
        sb.Append('$');
        return new Regex(sb.ToString(), RegexOptions.CultureInvariant);
    }
}
