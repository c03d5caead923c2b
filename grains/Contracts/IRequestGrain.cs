using Orleans.Concurrency;

namespace OrleansTunnel.Grains;

/// <summary>
/// One request, addressable by its request_id from any node. The grain is activated only when
/// something needs it: the owning gateway promotes a request that lives long or streams (one-way
/// <see cref="Open"/> ... <see cref="End"/>), or a tool addresses it (<see cref="GetSnapshot"/>,
/// <see cref="Cancel"/>), and then the grain asks the owning gateway, which the id names, for what it
/// knows. With Gateway:RequestGrains=always every request is opened and ended here.
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

    /// <summary>
    /// The request's state: fresh from the owning gateway while it can answer, else what this grain
    /// recorded (marked <see cref="RequestState.Lost"/> when the owner is gone before the request ended).
    /// </summary>
    [Alias("GetSnapshot")]
    Task<RequestSnapshot> GetSnapshot();

    /// <summary>Cancels the request wherever it runs (through the gateway that owns the visitor's connection).</summary>
    [Alias("Cancel")]
    Task<CancelResult> Cancel(string reason);
}
