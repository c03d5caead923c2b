using Orleans.Concurrency;

namespace OrleansTunnel.Grains;

/// <summary>
/// The authoritative record of one in-flight request, keyed by its request_id. The gateway opens it,
/// marks it streaming for long responses, and completes it when the request ends; it then deactivates.
/// A request that is never completed (its gateway died) is marked timed out at its deadline.
/// </summary>
[Alias("OrleansTunnel.IRequestGrain")]
public interface IRequestGrain : IGrainWithStringKey
{
    /// <summary>One-way (no answer travels back): gateways never wait for the record.</summary>
    [Alias("Open"), OneWay]
    Task Open(RequestOpen request);

    [Alias("MarkStreaming"), OneWay]
    Task MarkStreaming(DateTimeOffset at);

    /// <summary>
    /// One-way <see cref="Complete"/> for gateways: it carries the open record too, so it may overtake
    /// the <see cref="Open"/> that was sent before it (one-way calls are not ordered).
    /// </summary>
    [Alias("End"), OneWay]
    Task End(RequestOpen request, RequestOutcome outcome);

    /// <summary>Ends the request; returns false when it had already ended (the first ending wins).</summary>
    [Alias("Complete")]
    Task<bool> Complete(RequestOutcome outcome);

    [Alias("GetSnapshot")]
    Task<RequestSnapshot> GetSnapshot();
}
