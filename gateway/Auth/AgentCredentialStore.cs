using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace OrleansTunnel.Gateway.Auth;

/// <summary>Outcome of checking an agent's hello credential.</summary>
public readonly record struct CredentialCheck(bool Ok, string? Failure, IReadOnlySet<string>? AllowedServices)
{
    public bool AllowsService(string service) => AllowedServices is { } s && (s.Contains("*") || s.Contains(service));
}

/// <summary>
/// Verifies agent tokens against configured SHA-256 hashes in constant time. The gateway never holds
/// a token; only its hash. Failures name the cause but never echo the token.
/// </summary>
public sealed class AgentCredentialStore(IOptionsMonitor<GatewayOptions> options, Routing.RoutingCache routing)
{
    // Random per process: no token hashes to it, so comparing against it (unknown agents, no second hash) never matches.
    private static readonly byte[] Decoy = RandomNumberGenerator.GetBytes(32);

    /// <summary>Hex SHA-256 of a token, as configured in TokenSha256.</summary>
    public static string Hash(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    /// <summary>
    /// Checks a hello's proof (HelloProof) for the challenge <paramref name="nonce"/> against the agent's
    /// stored SHA-256 hashes (two during a rotation); on success <paramref name="tokenHash"/> is the hash that
    /// matched (kept to re-check the live session after a revocation).
    /// </summary>
    public CredentialCheck CheckProof(OrleansTunnel.Protocol.V1.Hello hello, ReadOnlySpan<byte> nonce, out byte[] tokenHash)
    {
        tokenHash = [];
        if (string.IsNullOrEmpty(hello.AgentId))
        {
            return new(false, "the hello names no agent id", null);
        }
        if (hello.Token.Length > 0)
        {
            return new(false, $"agent '{hello.AgentId}' sent its token in the hello; this gateway takes only a proof (protocol version {OrleansTunnel.Mux.MuxSettings.ProtocolVersion}): upgrade the agent, and rotate that token, which crossed the wire", null);
        }
        if (hello.Proof.Length == 0)
        {
            return new(false, $"agent '{hello.AgentId}' presented no token proof", null);
        }
        var (keys, services) = Find(hello.AgentId);
        bool match = false;
        // Both keys are always tried (a decoy for unknown agents), so timing tells nothing about ids or rotations.
        foreach (var key in keys)
        {
            if (CryptographicOperations.FixedTimeEquals(hello.Proof.Span, OrleansTunnel.Mux.HelloProof.FromKey(key, nonce, hello)) && !match)
            {
                match = true;
                tokenHash = key;
            }
        }
        if (!match || services is null)
        {
            tokenHash = [];
            return new(false, $"the token is not valid for agent '{hello.AgentId}'", null);
        }
        return new(true, null, new HashSet<string>(services, StringComparer.Ordinal));
    }

    public CredentialCheck Check(string agentId, string? token)
    {
        if (string.IsNullOrEmpty(agentId))
        {
            return new(false, "the hello names no agent id", null);
        }
        if (string.IsNullOrEmpty(token))
        {
            return new(false, $"agent '{agentId}' presented no token", null);
        }
        return CheckHash(agentId, SHA256.HashData(Encoding.UTF8.GetBytes(token)));
    }

    /// <summary>Checks a presented token's hash (also used to re-check live sessions after a revocation).</summary>
    public CredentialCheck CheckHash(string agentId, byte[] presented)
    {
        // Configured credentials first, then the ones managed at runtime through the admin API.
        var (keys, services) = Find(agentId);
        bool match = false;
        foreach (var key in keys)
        {
            match |= CryptographicOperations.FixedTimeEquals(presented, key);
        }
        if (!match || services is null)
        {
            return new(false, $"the token is not valid for agent '{agentId}'", null);
        }
        return new(true, null, new HashSet<string>(services, StringComparer.Ordinal));
    }

    /// <summary>The agent's accepted token hashes (always two: decoys fill in) and its services (null: unknown agent).</summary>
    private (byte[][] Keys, IEnumerable<string>? Services) Find(string agentId)
    {
        var snapshot = routing.Current.Snapshot;
        var revoked = snapshot.RevokedTokens ?? [];
        var configured = options.CurrentValue.Agents.FirstOrDefault(a => string.Equals(a.Id, agentId, StringComparison.Ordinal));
        if (configured is not null)
        {
            return ([Key(configured.TokenSha256, revoked), Key(configured.NextTokenSha256, revoked)], configured.Services);
        }
        var managed = snapshot.Credentials.FirstOrDefault(c => string.Equals(c.AgentId, agentId, StringComparison.Ordinal));
        return managed is null ? ([Decoy, Decoy], null) : ([Key(managed.TokenSha256, revoked), Decoy], managed.Services);
    }

    /// <summary>The configured hashes of an agent (to revoke them), or null when the agent is not configured here.</summary>
    public string[]? ConfiguredHashes(string agentId) =>
        options.CurrentValue.Agents.FirstOrDefault(a => string.Equals(a.Id, agentId, StringComparison.Ordinal)) is { } a
            ? [.. new[] { a.TokenSha256, a.NextTokenSha256 }.Where(h => !string.IsNullOrEmpty(h)).Select(h => h!.ToLowerInvariant())]
            : null;

    /// <summary>A hash as a key; a revoked or malformed one becomes the decoy (it can never match).</summary>
    private static byte[] Key(string? hex, string[] revoked)
    {
        if (hex is { Length: 64 } && hex.All(Uri.IsHexDigit) && !revoked.Contains(hex, StringComparer.OrdinalIgnoreCase))
        {
            return Convert.FromHexString(hex);
        }
        return Decoy;
    }
}
