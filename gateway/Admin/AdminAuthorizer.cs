using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace OrleansTunnel.Gateway.Admin;

/// <summary>Checks the admin API's bearer token (Gateway:AdminTokenSha256) in constant time.</summary>
public sealed class AdminAuthorizer(IOptionsMonitor<GatewayOptions> options)
{
    /// <summary>Null when allowed; otherwise the 401/403 answer to give.</summary>
    public IResult? Check(HttpContext context)
    {
        var expectedHex = options.CurrentValue.AdminTokenSha256;
        if (string.IsNullOrEmpty(expectedHex))
        {
            return Results.Text("otun admin: the admin API is disabled; set Gateway:AdminTokenSha256 (otun hash-token prints it)\n", statusCode: StatusCodes.Status403Forbidden);
        }
        string header = context.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || header.Length <= 7)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            return Results.Text("otun admin: missing bearer token\n", statusCode: StatusCodes.Status401Unauthorized);
        }
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(header[7..].Trim()));
        byte[] expected;
        try
        {
            expected = Convert.FromHexString(expectedHex);
        }
        catch (FormatException)
        {
            return Results.Text("otun admin: Gateway:AdminTokenSha256 is not hex\n", statusCode: StatusCodes.Status500InternalServerError);
        }
        if (!CryptographicOperations.FixedTimeEquals(presented, expected))
        {
            context.Response.Headers.WWWAuthenticate = "Bearer error=\"invalid_token\"";
            return Results.Text("otun admin: invalid admin token\n", statusCode: StatusCodes.Status401Unauthorized);
        }
        return null;
    }
}
