using Microsoft.AspNetCore.Http;

namespace OrleansTunnel.Gateway.Admin;

/// <summary>
/// Host allow-list of the admin and dashboard listeners (DNS rebinding): a page the operator opens
/// under an attacker's name that resolves to the admin address must not be able to read it. Allowed:
/// IP literals (a rebinding attack needs a name), "localhost" and "*.localhost", and the names in
/// Gateway:AdminHosts.
/// </summary>
public static class AdminHostCheck
{
    /// <summary>Null when the Host is allowed; otherwise the 421 answer to give.</summary>
    public static IResult? Check(HttpContext context, IReadOnlyCollection<string> configured)
    {
        string host = context.Request.Host.Host;
        if (IsAllowed(host, configured))
        {
            return null;
        }
        return Results.Text(
            "otun admin: Host not allowed on the admin listener; add the name to Gateway:AdminHosts\n",
            statusCode: StatusCodes.Status421MisdirectedRequest);
    }

    public static bool IsAllowed(string host, IReadOnlyCollection<string> configured) =>
        OrleansTunnel.Silo.HostAllowList.IsAllowed(host, configured);
}
