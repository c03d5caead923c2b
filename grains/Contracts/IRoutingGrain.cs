namespace OrleansTunnel.Grains;

/// <summary>Receives routing snapshots pushed by <see cref="IRoutingGrain"/>.</summary>
[Alias("OrleansTunnel.IRoutingObserver")]
public interface IRoutingObserver : IGrainObserver
{
    /// <remarks>
    /// One-way: the grain never waits for a gateway, so a gateway that stopped (or whose client was
    /// disposed) cannot hold up the push to the others, and nothing has to answer for a dead observer.
    /// </remarks>
    [Alias("OnRoutingChanged"), Orleans.Concurrency.OneWay]
    Task OnRoutingChanged(RoutingSnapshot snapshot);
}

/// <summary>
/// The routing table of the cluster (a single activation, key "default"): routes (persisted) and
/// which agent sessions serve which service. Gateways subscribe and cache what it pushes, so
/// matching a route and choosing an agent are local reads.
/// </summary>
[Alias("OrleansTunnel.IRoutingGrain")]
public interface IRoutingGrain : IGrainWithStringKey
{
    [Alias("GetSnapshot")]
    Task<RoutingSnapshot> GetSnapshot();

    /// <summary>Adds or replaces the route for (host, path prefix).</summary>
    [Alias("UpsertRoute")]
    Task<RoutingSnapshot> UpsertRoute(Route route);

    /// <summary>Removes the route for (host, path prefix); false if there was none.</summary>
    [Alias("RemoveRoute")]
    Task<bool> RemoveRoute(string host, string? pathPrefix);

    /// <summary>
    /// A gateway's periodic report (and its report after any change of its tunnels): it is alive and
    /// holds these agent sessions. The endpoints gateways route to are the union of live gateways' reports.
    /// </summary>
    [Alias("ReportGateway")]
    Task<GatewayReportResult> ReportGateway(GatewayReport report);

    /// <summary>A gateway leaves (shutdown): its sessions leave the routing at once.</summary>
    [Alias("LeaveGateway")]
    Task LeaveGateway(string gatewayId, long incarnation);

    /// <summary>Sessions superseded by a newer epoch: never routed to again, whatever their gateway still reports.</summary>
    [Alias("FenceSessions")]
    Task FenceSessions(string[] sessionIds);

    /// <summary>Adds or replaces an agent's runtime credential (persisted).</summary>
    [Alias("UpsertCredential")]
    Task UpsertCredential(AgentCredential credential);

    /// <summary>Removes an agent's runtime credential; its live sessions are closed by the gateways.</summary>
    [Alias("RemoveCredential")]
    Task<bool> RemoveCredential(string agentId);

    /// <summary>
    /// Revokes token hashes on every gateway (persisted), e.g. a configured agent credential, which no API
    /// can remove from the gateways' files. Returns how many were new.
    /// </summary>
    [Alias("RevokeTokens")]
    Task<int> RevokeTokens(string[] tokenSha256s);

    /// <summary>Adds or replaces a run-time TCP/UDP listener (key: protocol and listen address); persisted and pushed to every gateway.</summary>
    [Alias("UpsertL4Service")]
    Task<RoutingSnapshot> UpsertL4Service(L4Mapping mapping);

    /// <summary>Removes a run-time TCP/UDP listener; false when there was none.</summary>
    [Alias("RemoveL4Service")]
    Task<bool> RemoveL4Service(string protocol, string listen);

    /// <summary>
    /// A gateway opened (or reopened) a circuit: stored and pushed to every gateway. The table keeps at most
    /// <paramref name="maxEntries"/> circuits (the ones closest to their end go first).
    /// </summary>
    [Alias("OpenCircuit")]
    Task OpenCircuit(SharedCircuit circuit, int maxEntries);

    /// <summary>
    /// Claims the one probe of a circuit whose open time is over, for <paramref name="lease"/>: true for the
    /// first gateway (or the same one again), false while another holds it or the circuit is still open;
    /// true when no such circuit is shared (the gateway decides alone).
    /// </summary>
    [Alias("ClaimCircuitProbe")]
    Task<bool> ClaimCircuitProbe(string sessionId, string service, string gatewayId, TimeSpan lease);

    /// <summary>A probe (or any request) succeeded on the session: the shared circuit goes, on every gateway.</summary>
    [Alias("CloseCircuit")]
    Task CloseCircuit(string sessionId, string service, string gatewayId);

    [Alias("Subscribe")]
    Task<RoutingSnapshot> Subscribe(IRoutingObserver observer);

    [Alias("Unsubscribe")]
    Task Unsubscribe(IRoutingObserver observer);
}
