using Orleans.Runtime;

namespace OrleansTunnel.Grains;

/// <summary>Persisted Data Protection key ring elements.</summary>
[GenerateSerializer, Alias("OrleansTunnel.KeyRingState")]
public sealed class KeyRingState
{
    [Id(0)]
    public List<KeyRingElement> Elements { get; set; } = [];
}

/// <summary>One XML element of the key ring.</summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.KeyRingElement")]
public sealed record KeyRingElement([property: Id(0)] string FriendlyName, [property: Id(1)] string Xml);

/// <inheritdoc cref="IKeyRingGrain"/>
/// <remarks>Held in the same grain storage as the routes (Redis with Cluster:Redis), so keys outlive the silos.</remarks>
public sealed class KeyRingGrain(
    [PersistentState("keyring", RoutingGrain.StorageName)] IPersistentState<KeyRingState> state) : Grain, IKeyRingGrain
{
    /// <summary>The one key ring's key.</summary>
    public const string DefaultKey = "visitor-sessions";

    public Task<string[]> GetAll() => Task.FromResult(state.State.Elements.Select(e => e.Xml).ToArray());

    public async Task Store(string friendlyName, string xml)
    {
        var before = state.State.Elements.ToList();
        state.State.Elements.RemoveAll(e => e.FriendlyName == friendlyName);
        state.State.Elements.Add(new KeyRingElement(friendlyName, xml));
        try
        {
            await state.WriteStateAsync();
        }
        catch (Exception ex)
        {
            state.State.Elements = before;
            throw new DurableStateUnavailableException($"the session key ring was not saved: the grain storage refused the write ({ex.GetType().Name}: {ex.Message}); check Redis (Cluster:Redis)", ex);
        }
    }
}
