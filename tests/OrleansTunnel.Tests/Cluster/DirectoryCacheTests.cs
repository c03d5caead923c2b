using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using OrleansTunnel.Silo;
using Xunit;

namespace OrleansTunnel.Tests.Cluster;

/// <summary>
/// The silo's grain directory cache is bounded by Cluster:DirectoryCacheSize (100,000 by default, not
/// Orleans' 1,000,000): request grains have unique ids, and with RequestGrains=always their locations
/// filled the cache without ever being looked up again.
/// </summary>
public sealed class DirectoryCacheTests
{
    private static HostApplicationBuilder Builder(string? cacheSize)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        if (cacheSize is not null)
        {
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Cluster:DirectoryCacheSize"] = cacheSize });
        }
        return builder;
    }

    [Theory]
    [InlineData(null, 100_000)]
    [InlineData("5000", 5000)]
    public void TheDirectoryCache_IsBoundedByTheOption(string? configured, int expected)
    {
        var builder = Builder(configured);
        builder.AddTunnelSilo();
        using var host = builder.Build();
        Assert.Equal(expected, host.Services.GetRequiredService<IOptions<GrainDirectoryOptions>>().Value.CacheSize);
    }

    [Fact]
    public void AnEmptyDirectoryCache_IsRefusedWithTheOptionsName()
    {
        var error = Assert.Throws<InvalidOperationException>(() => Builder("0").AddTunnelSilo());
        Assert.Equal("Cluster:DirectoryCacheSize must be at least 1 (got 0).", error.Message);
    }
}
