using Microsoft.IdentityModel.Tokens;

namespace OrleansTunnel.Gateway.Identity;

/// <summary>Names what was wrong with a refused JWT, for the visitor (never the token itself).</summary>
public static class JwtProblems
{
    public static string Describe(Exception? failure) => failure switch
    {
        SecurityTokenExpiredException e => $"expired at {e.Expires:u}",
        SecurityTokenNotYetValidException e => $"not valid before {e.NotBefore:u}",
        SecurityTokenNoExpirationException => "it has no expiry (exp)",
        SecurityTokenSignatureKeyNotFoundException => "bad signature: signed by a key the issuer's JWKS does not have",
        SecurityTokenInvalidSignatureException => "bad signature",
        SecurityTokenInvalidAudienceException => "wrong audience",
        SecurityTokenInvalidIssuerException => "wrong issuer",
        SecurityTokenMalformedException or ArgumentException => "not a well-formed JWT",
        InvalidOperationException => "the issuer's keys could not be read; try again later",
        null => "unknown reason",
        _ => failure.GetType().Name.Replace("SecurityToken", "").Replace("Exception", ""),
    };
}
