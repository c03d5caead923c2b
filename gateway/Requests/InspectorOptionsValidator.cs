using Microsoft.Extensions.Options;

namespace OrleansTunnel.Gateway.Requests;

/// <summary>Checks the Inspector settings at start and names each problem with its fix.</summary>
public sealed class InspectorOptionsValidator : IValidateOptions<InspectorOptions>
{
    public ValidateOptionsResult Validate(string? name, InspectorOptions o)
    {
        var failures = new List<string>();
        if (o.Capacity is < 16 or > 1 << 22)
        {
            failures.Add($"Inspector:Capacity {o.Capacity} must be between 16 and 4194304 requests");
        }
        if (o.MaxBytes < 0)
        {
            failures.Add("Inspector:MaxBytes must not be negative (0 turns body capture off everywhere)");
        }
        if (o.RefreshInterval < TimeSpan.FromMilliseconds(100))
        {
            failures.Add("Inspector:RefreshInterval must be at least 100 ms (e.g. 00:00:00.5)");
        }
        if (o.SessionLifetime <= TimeSpan.Zero)
        {
            failures.Add("Inspector:SessionLifetime must be positive (e.g. 12:00:00)");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
