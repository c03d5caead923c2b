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

    /// <summary>
    /// The id of a stored key that is active now, when <paramref name="xml"/> is a key made to be active at once
    /// (a first key; rotation keys are made days before their activation and never compete); otherwise null.
    /// </summary>
    private string? CompetingFirstKey(string xml)
    {
        if (KeyDates(xml) is not { } incoming || incoming.Activation - incoming.Creation > TimeSpan.FromMinutes(1))
        {
            return null;
        }
        var now = DateTimeOffset.UtcNow;
        foreach (var element in state.State.Elements)
        {
            if (KeyDates(element.Xml) is { } key && key.Activation <= now && key.Expiration > now && !Revoked(key.Id))
            {
                return key.Id;
            }
        }
        return null;
    }

    // A revocation names one key (id="...") or all keys made before it (id="*"): then a new first key is due.
    private bool Revoked(string keyId) => state.State.Elements.Any(e => e.Xml.StartsWith("<revocation", StringComparison.Ordinal)
        && (e.Xml.Contains($"id=\"{keyId}\"", StringComparison.OrdinalIgnoreCase) || e.Xml.Contains("id=\"*\"", StringComparison.Ordinal)));

    private static (string Id, DateTimeOffset Creation, DateTimeOffset Activation, DateTimeOffset Expiration)? KeyDates(string xml)
    {
        try
        {
            var element = System.Xml.Linq.XElement.Parse(xml);
            if (element.Name.LocalName != "key")
            {
                return null;
            }
            DateTimeOffset Date(string name) => DateTimeOffset.Parse(element.Element(name)!.Value, System.Globalization.CultureInfo.InvariantCulture);
            return ((string?)element.Attribute("id") ?? "", Date("creationDate"), Date("activationDate"), Date("expirationDate"));
        }
        catch (Exception ex) when (ex is System.Xml.XmlException or FormatException or NullReferenceException)
        {
            return null;
        }
    }

    public Task<string[]> GetAll() => Task.FromResult(state.State.Elements.Select(e => e.Xml).ToArray());

    public async Task Store(string friendlyName, string xml)
    {
        if (CompetingFirstKey(xml) is { } existing)
        {
            // Gateways that start together on a new cluster each make a key that is active at once; keeping
            // both would leave each gateway refusing the other's cookies until its next key-ring refresh (24 h).
            // The first one stored wins; the refused gateway reads the key ring again and uses it.
            throw new InvalidOperationException(
                $"key {friendlyName} was not stored: the cluster's key ring already holds key {existing}, active now (another gateway made it at the same time); this gateway reads the key ring again and uses that key");
        }
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
