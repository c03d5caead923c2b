namespace OrleansTunnel.Grains;

/// <summary>
/// The authoritative record of one in-flight request, keyed by its request_id. The gateway opens it,
/// marks it streaming for long responses, and completes it when the request ends; it then deactivates.
/// A request that is never completed (its gateway died) is marked timed out at its deadline.
/// </summary>
[Alias("OrleansTunnel.IRequestGrain")]
public interface IRequestGrain : IGrainWithStringKey
{
    [Alias("Open")]
    Task Open(RequestOpen request);

    [Alias("MarkStreaming")]
    Task MarkStreaming(DateTimeOffset at);

    /// <summary>Ends the request; returns false when it had already ended (the first ending wins).</summary>
    [Alias("Complete")]
    Task<bool> Complete(RequestOutcome outcome);

    [Alias("GetSnapshot")]
    Task<RequestSnapshot> GetSnapshot();
}
