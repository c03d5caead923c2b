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
    private static readonly byte[] Decoy = SHA256.HashData("decoy"u8);

    /// <summary>Hex SHA-256 of a token, as configured in TokenSha256.</summary>
    public static string Hash(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    /// <summary>
    /// Checks a hello's proof (HelloProof) for the challenge <paramref name="nonce"/> against the agent's
    /// stored SHA-256; on success <paramref name="tokenHash"/> is that hash (kept to re-check the live
    /// session after a revocation).
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
            return new(false, $"agent '{hello.AgentId}' sent its token in the hello; this gateway takes only a proof (protocol version {OrleansTunnel.Protocol.MuxSettings.ProtocolVersion}): upgrade the agent, and rotate that token, which crossed the wire", null);
        }
        if (hello.Proof.Length == 0)
        {
            return new(false, $"agent '{hello.AgentId}' presented no token proof", null);
        }
        var (hash, services) = Find(hello.AgentId);
        byte[] key = Decoy;
        if (hash is { Length: 64 })
        {
            try
            {
                key = Convert.FromHexString(hash);
            }
            catch (FormatException)
            {
                key = Decoy;
            }
        }
        // Computed even for unknown agents, so timing does not tell which agent ids exist.
        var expected = OrleansTunnel.Protocol.HelloProof.FromKey(key, nonce, hello);
        bool match = CryptographicOperations.FixedTimeEquals(hello.Proof.Span, expected) && services is not null;
        if (!match)
        {
            return new(false, $"the token is not valid for agent '{hello.AgentId}'", null);
        }
        tokenHash = key;
        return new(true, null, new HashSet<string>(services!, StringComparer.Ordinal));
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
        var (hash, services) = Find(agentId);
        byte[] expected = Decoy;
        if (hash is { Length: 64 })
        {
            try
            {
                expected = Convert.FromHexString(hash);
            }
            catch (FormatException)
            {
                expected = Decoy;
            }
        }
        // Compare even for unknown agents, so timing does not tell which agent ids exist.
        bool match = CryptographicOperations.FixedTimeEquals(presented, expected) && services is not null;
        if (!match)
        {
            return new(false, $"the token is not valid for agent '{agentId}'", null);
        }
        return new(true, null, new HashSet<string>(services!, StringComparer.Ordinal));
    }

    private (string? Hash, IEnumerable<string>? Services) Find(string agentId)
    {
        var configured = options.CurrentValue.Agents.FirstOrDefault(a => string.Equals(a.Id, agentId, StringComparison.Ordinal));
        if (configured is not null)
        {
            return (configured.TokenSha256, configured.Services);
        }
        var managed = routing.Current.Snapshot.Credentials.FirstOrDefault(c => string.Equals(c.AgentId, agentId, StringComparison.Ordinal));
        return managed is null ? (null, null) : (managed.TokenSha256, managed.Services);
    }
}
