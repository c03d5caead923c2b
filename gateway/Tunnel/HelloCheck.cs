using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.Tunnel;

/// <summary>
/// Bounds on what a hello may claim, checked before anything else reads it: an unauthenticated
/// dialler must not be able to write megabytes into logs, make the gateway emit unbounded metric
/// labels, or lock the real agent out of its slot with an epoch from the far future.
/// </summary>
public static class HelloCheck
{
    /// <summary>Longest agent id, service name, or agent version string.</summary>
    public const int MaxNameLength = 128;

    /// <summary>Longest token (bytes of UTF-8 text).</summary>
    public const int MaxTokenLength = 4096;

    /// <summary>What is wrong with the hello's shape (before authentication), or null.</summary>
    public static string? ShapeProblem(Hello hello, GatewayOptions o)
    {
        if (NameProblem(hello.AgentId) is { } id)
        {
            return $"agent_id {id}";
        }
        if (hello.Token.Length > MaxTokenLength)
        {
            return $"the token is longer than {MaxTokenLength} characters";
        }
        if (hello.Proof.Length is not (0 or OrleansTunnel.Mux.HelloProof.Length))
        {
            return $"the proof is {hello.Proof.Length} bytes, not {OrleansTunnel.Mux.HelloProof.Length}";
        }
        if (hello.AgentVersion.Length > MaxNameLength)
        {
            return $"agent_version is longer than {MaxNameLength} characters";
        }
        if (hello.Services.Count > o.MaxHelloServices)
        {
            return $"the hello offers {hello.Services.Count} services; at most {o.MaxHelloServices} (Gateway:MaxHelloServices)";
        }
        foreach (var service in hello.Services)
        {
            if (NameProblem(service.Name) is { } name)
            {
                return $"a service name {name}";
            }
        }
        if (hello.Slot >= o.MaxAgentSlots)
        {
            return $"slot {hello.Slot} is not below Gateway:MaxAgentSlots ({o.MaxAgentSlots})";
        }
        return null;
    }

    /// <summary>
    /// An agent's epoch is its clock in Unix milliseconds: one beyond this gateway's clock plus
    /// Gateway:EpochClockSkew would supersede every later session of the slot, so it is refused.
    /// </summary>
    public static string? EpochProblem(ulong epoch, GatewayOptions o, DateTimeOffset now)
    {
        ulong limit = (ulong)(now + o.EpochClockSkew).ToUnixTimeMilliseconds();
        return epoch > limit
            ? $"epoch {epoch} is later than this gateway's clock plus Gateway:EpochClockSkew ({limit}); check the agent's clock"
            : null;
    }

    /// <summary>Null when <paramref name="value"/> is a usable id or name: 1..128 visible ASCII characters.</summary>
    public static string? NameProblem(string value)
    {
        if (value.Length == 0)
        {
            return "is empty";
        }
        if (value.Length > MaxNameLength)
        {
            return $"is longer than {MaxNameLength} characters";
        }
        foreach (char c in value)
        {
            if (c is <= ' ' or > '~')
            {
                return "holds a character outside visible ASCII (no spaces or control characters)";
            }
        }
        return null;
    }
}
