using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Grains;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Identity;

/// <summary>The cluster's session-cookie key ring (KeyRingGrain) as Data Protection uses it through the gateways.</summary>
[Collection(IdentityCollection.Name)]
public sealed class KeyRingTests(IdentityFixture fixture)
{
    private IGrainFactory Grains => fixture.Harness.Gateway.Services.GetRequiredService<IGrainFactory>();

    private static string Key(Guid id, DateTimeOffset creation, DateTimeOffset activation) =>
        $"<key id=\"{id}\" version=\"1\"><creationDate>{creation:O}</creationDate><activationDate>{activation:O}</activationDate>" +
        $"<expirationDate>{activation.AddDays(90):O}</expirationDate><descriptor /></key>";

    [Fact]
    public async Task TheClusterKeyRing_HoldsOneActiveKey_StoredEncryptedWithTheConfiguredCertificate()
    {
        // Both gateways started (and made or read the key ring): one key, not one per gateway.
        var elements = await Grains.GetGrain<IKeyRingGrain>(KeyRingGrain.DefaultKey).GetAll();
        Assert.Single(elements, e => e.StartsWith("<key ", StringComparison.Ordinal));
        string key = elements.Single(e => e.StartsWith("<key ", StringComparison.Ordinal));
        Assert.Contains("EncryptedData", key);
        Assert.DoesNotContain("<value>", key);
    }

    [Fact]
    public async Task ASecondKeyActiveAtOnce_IsRefused_ButARotationKeyIsStored()
    {
        var ring = Grains.GetGrain<IKeyRingGrain>("test-" + Guid.NewGuid().ToString("N"));
        var now = DateTimeOffset.UtcNow;
        Guid first = Guid.NewGuid(), competing = Guid.NewGuid(), next = Guid.NewGuid();
        await ring.Store("key-" + first, Key(first, now, now));
        // Another gateway that started at the same moment made its own first key: refused, so both use the first.
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => ring.Store("key-" + competing, Key(competing, now, now)));
        Assert.Contains($"already holds key {first}", refused.Message);
        // A rotation key (made days before it becomes active) is stored.
        await ring.Store("key-" + next, Key(next, now, now.AddDays(2)));
        var stored = await ring.GetAll();
        Assert.Equal(2, stored.Length);
        Assert.Contains(stored, e => e.Contains(first.ToString()));
        Assert.Contains(stored, e => e.Contains(next.ToString()));
        // Once every key is revoked, a new first key is due again.
        await ring.Store("revocation-all", $"<revocation version=\"1\"><revocationDate>{now:O}</revocationDate><key id=\"*\" /><reason>test</reason></revocation>");
        await ring.Store("key-" + competing, Key(competing, now, now));
    }
}
