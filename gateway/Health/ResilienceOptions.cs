using Microsoft.Extensions.Options;

namespace OrleansTunnel.Gateway.Health;

/// <summary>
/// Retries and circuit breaking on the gateway (configuration section "Resilience"). See README,
/// "Health checks, retries and circuit breaking".
/// </summary>
public sealed class ResilienceOptions
{
    public const string Section = "Resilience";

    /// <summary>Retry a request once on another agent session when its path failed before the backend could have acted.</summary>
    public bool Retry { get; set; } = true;

    /// <summary>
    /// An idempotent request (PUT, DELETE) with a body of at most this many bytes (known Content-Length) is
    /// read whole before it is forwarded so it can be sent again; 0: requests with a body are never retried.
    /// </summary>
    public int RetryBufferBytes { get; set; } = 64 * 1024;

    /// <summary>Consecutive failures of one agent session for one service that open its circuit (0: off).</summary>
    public int CircuitFailures { get; set; } = 5;

    /// <summary>Failure ratio over CircuitWindow (with at least CircuitMinimumRequests) that opens the circuit (0: off).</summary>
    public double CircuitFailureRatio { get; set; } = 0.5;

    /// <summary>Window over which CircuitFailureRatio is measured.</summary>
    public TimeSpan CircuitWindow { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Requests a session must have seen in the window before the ratio counts.</summary>
    public int CircuitMinimumRequests { get; set; } = 20;

    /// <summary>How long an open circuit skips its session; then one request probes it (half-open).</summary>
    public TimeSpan CircuitCooldown { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Share circuits with every gateway of the cluster (through the routing grain): a circuit one gateway
    /// opens is skipped by all, and only one gateway probes it. false: each gateway keeps its own circuits.
    /// </summary>
    public bool SharedCircuits { get; set; } = true;

    /// <summary>Most circuits the cluster shares at once; beyond it the ones closest to their end are dropped.</summary>
    public int SharedCircuitMaxEntries { get; set; } = 1000;

    /// <summary>A shared circuit with no verdict (its prober or opener died) is dropped this long after its open time ended.</summary>
    public TimeSpan SharedCircuitLinger { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How long a gateway's claim of a shared circuit's probe keeps other gateways from probing it.</summary>
    public TimeSpan SharedProbeLease { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Longest wait for the routing grain on a shared-circuit call (open, probe claim, close); then the gateway decides alone.</summary>
    public TimeSpan SharedCallTimeout { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>Checks <see cref="ResilienceOptions"/> at start; each message names the key and the fix.</summary>
public sealed class ResilienceOptionsValidator : IValidateOptions<ResilienceOptions>
{
    public ValidateOptionsResult Validate(string? name, ResilienceOptions o)
    {
        var failures = new List<string>();
        if (o.RetryBufferBytes is < 0 or > 16 * 1024 * 1024)
        {
            failures.Add($"Resilience:RetryBufferBytes {o.RetryBufferBytes} must be between 0 and 16777216 (e.g. 65536)");
        }
        if (o.CircuitFailures is < 0 or > 10_000)
        {
            failures.Add($"Resilience:CircuitFailures {o.CircuitFailures} must be between 0 (off) and 10000 (e.g. 5)");
        }
        if (o.CircuitFailureRatio is < 0 or > 1)
        {
            failures.Add($"Resilience:CircuitFailureRatio {o.CircuitFailureRatio} must be between 0 (off) and 1 (e.g. 0.5)");
        }
        if (o.CircuitWindow <= TimeSpan.Zero || o.CircuitCooldown <= TimeSpan.Zero)
        {
            failures.Add("Resilience:CircuitWindow and Resilience:CircuitCooldown must be positive (e.g. 00:00:10)");
        }
        if (o.CircuitMinimumRequests < 1)
        {
            failures.Add($"Resilience:CircuitMinimumRequests {o.CircuitMinimumRequests} must be at least 1 (e.g. 20)");
        }
        if (o.SharedCircuitMaxEntries is < 1 or > 1_000_000)
        {
            failures.Add($"Resilience:SharedCircuitMaxEntries {o.SharedCircuitMaxEntries} must be between 1 and 1000000 (e.g. 1000)");
        }
        if (o.SharedCircuitLinger <= TimeSpan.Zero || o.SharedProbeLease <= TimeSpan.Zero || o.SharedCallTimeout <= TimeSpan.Zero)
        {
            failures.Add("Resilience:SharedCircuitLinger, Resilience:SharedProbeLease and Resilience:SharedCallTimeout must be positive (e.g. 00:01:00, 00:00:30, 00:00:05)");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
