namespace OrleansTunnel.Grains;

/// <summary>
/// A gateway's journal of its live and recently finished requests, reached from the cluster as an
/// observer (the gateway is an Orleans client and holds no grains).
/// </summary>
[Alias("OrleansTunnel.IRequestJournalObserver")]
public interface IRequestJournalObserver : IGrainObserver
{
    /// <summary>The request's state, or null when this gateway does not know (or no longer retains) it.</summary>
    [Alias("Lookup")]
    Task<RequestSnapshot?> Lookup(string requestId);

    [Alias("Cancel")]
    Task<CancelResult> Cancel(string requestId, string reason);

    /// <summary>The gateway's live and retained requests that match, newest first, at most the query's limit.</summary>
    [Alias("List")]
    Task<RequestSummary[]> List(RequestQuery query);
}

/// <summary>
/// Where the journal of one gateway (keyed by gateway id) can be reached: the gateway registers its
/// observer here at start and renews it; request grains ask it on demand. Kept in memory: a
/// re-activated grain is filled again by the next renewal.
/// </summary>
[Alias("OrleansTunnel.IGatewayJournalGrain")]
public interface IGatewayJournalGrain : IGrainWithStringKey
{
    [Alias("Register")]
    Task Register(long incarnation, IRequestJournalObserver journal);

    /// <summary>Removes the registration if it is still this incarnation's (a stopping gateway).</summary>
    [Alias("Unregister")]
    Task Unregister(long incarnation);

    /// <summary>Asks the owner what it knows of a request of the given incarnation.</summary>
    [Alias("Lookup")]
    Task<OwnerAnswer> Lookup(string requestId, long incarnation);

    [Alias("Cancel")]
    Task<CancelResult> Cancel(string requestId, long incarnation, string reason);

    /// <summary>The gateway's requests that match; null when the gateway cannot be asked.</summary>
    [Alias("List")]
    Task<RequestSummary[]?> List(RequestQuery query);
}

/// <summary>What the owner of a request said, or why it could not be asked.</summary>
/// <param name="Reachable">False when the owner is not registered, is in another incarnation, or did not answer in time.</param>
/// <param name="Problem">Why the owner could not be asked, for people.</param>
/// <param name="Snapshot">The owner's view; null when it does not know (or no longer retains) the request.</param>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.OwnerAnswer")]
public sealed record OwnerAnswer(
    [property: Id(0)] bool Reachable,
    [property: Id(1)] string? Problem,
    [property: Id(2)] RequestSnapshot? Snapshot);

/// <summary>Settings of request grains (silo configuration section "Requests").</summary>
public sealed class RequestRecordOptions
{
    public const string Section = "Requests";

    /// <summary>How long a request grain waits for the owning gateway to answer a look-up or a cancel before it reports the owner unreachable. Default 00:00:05.</summary>
    public TimeSpan OwnerTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a grain activated by a look-up stays active after its last use (later look-ups are then answered from it). Default 00:00:30.</summary>
    public TimeSpan LookupLinger { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a promoted request's grain stays active after the request ended (look-ups after that reach the
    /// owner's journal through a fresh activation). Zero (the default): the activation goes as soon as the
    /// request ended. With RequestGrains=always every request lingers this long: 1 s cost 24 % of that mode's
    /// throughput and 100 ms cost 29 % against zero (measured, bench/README.md).
    /// </summary>
    public TimeSpan EndedLinger { get; set; } = TimeSpan.Zero;
}
