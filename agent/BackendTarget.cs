using OrleansTunnel.Mux;

namespace OrleansTunnel.Agent;

/// <summary>
/// The backend URL of a request: the configured backend's scheme, authority and base path, then the
/// request's path and query exactly as the visitor sent them. Whatever a gateway sends, the result
/// stays on the configured backend: the target must be origin-form (start with '/'), the built URL
/// must keep the backend's scheme, host and port (a target such as <c>@10.0.0.5:8500/</c> would
/// otherwise turn the backend's address into user-info and reach another host), and under a base
/// path (<c>http://127.0.0.1:8080/app</c>) the target must be canonical, so <c>/../</c> or an encoded
/// slash cannot leave it.
/// </summary>
public static class BackendTarget
{
    /// <summary>The URL to call, or the reason the target was refused.</summary>
    public static (Uri? Uri, string? Problem) Build(Uri backend, string pathAndQuery)
    {
        if (pathAndQuery.Length == 0 || pathAndQuery[0] != '/')
        {
            return (null, "the request target is not origin-form (it must start with '/')");
        }
        string basePath = backend.AbsolutePath.TrimEnd('/');
        if (basePath.Length > 0 && CanonicalPath.Problem(CanonicalPath.PathOf(pathAndQuery)) is { } problem)
        {
            return (null, $"the request target could leave the service's base path {basePath}: {problem}");
        }
        Uri uri;
        try
        {
            uri = new Uri(backend.GetLeftPart(UriPartial.Authority) + basePath + pathAndQuery,
                new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true });
        }
        catch (UriFormatException)
        {
            return (null, "the request target is not a valid URL path");
        }
        if (!string.Equals(uri.Scheme, backend.Scheme, StringComparison.OrdinalIgnoreCase)
            || !string.Equals(uri.IdnHost, backend.IdnHost, StringComparison.OrdinalIgnoreCase)
            || uri.Port != backend.Port || uri.UserInfo.Length > 0)
        {
            return (null, "the request target would leave the service's backend");
        }
        return (uri, null);
    }
}
