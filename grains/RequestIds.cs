namespace OrleansTunnel.Grains;

/// <summary>
/// Request ids name the gateway that owns the request: <c>{gatewayId}.{incarnation:x}.{sequence:x}</c>.
/// Any node can therefore find the owner of a request from its id alone, without a lookup table, and
/// tell a request of a gateway's earlier life (another incarnation) from one of its current life.
/// </summary>
public static class RequestIds
{
    /// <summary>Longest id accepted from a caller (longer input is refused before any grain is activated).</summary>
    public const int MaxLength = 160;

    public static string Format(string gatewayId, long incarnation, long sequence) =>
        string.Create(null, stackalloc char[128], $"{gatewayId}.{incarnation:x}.{sequence:x}");

    /// <summary>Splits an id; false (with a reason) for anything that is not an id this cluster makes.</summary>
    public static bool TryParse(string? id, out string gatewayId, out long incarnation, out long sequence, out string? problem)
    {
        gatewayId = "";
        incarnation = 0;
        sequence = 0;
        problem = null;
        if (string.IsNullOrEmpty(id) || id.Length > MaxLength)
        {
            problem = $"a request id has 1 to {MaxLength} characters";
            return false;
        }
        foreach (char c in id)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_'))
            {
                problem = "a request id holds only letters, digits, '.', '-' and '_'";
                return false;
            }
        }
        int last = id.LastIndexOf('.');
        int middle = last > 0 ? id.LastIndexOf('.', last - 1) : -1;
        if (middle <= 0
            || !long.TryParse(id.AsSpan(middle + 1, last - middle - 1), System.Globalization.NumberStyles.AllowHexSpecifier, null, out incarnation)
            || !long.TryParse(id.AsSpan(last + 1), System.Globalization.NumberStyles.AllowHexSpecifier, null, out sequence))
        {
            problem = "a request id has the form GATEWAY.INCARNATION.SEQUENCE (as in the X-Tunnel-Request-Id response header)";
            return false;
        }
        gatewayId = id[..middle];
        return true;
    }
}
