namespace OrleansTunnel.Tests.Deploy;

/// <summary>The repository root: the first folder above the test binaries that holds OrleansTunnel.sln.</summary>
public static class RepoRoot
{
    private static readonly Lazy<string> Root = new(Find);

    public static string Path => Root.Value;

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "OrleansTunnel.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"no OrleansTunnel.sln above {AppContext.BaseDirectory}");
    }
}
