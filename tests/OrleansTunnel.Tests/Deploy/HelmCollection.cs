using Xunit;

namespace OrleansTunnel.Tests.Deploy;

/// <summary>The chart tests share one <see cref="HelmFixture"/>, so helm is installed once.</summary>
[CollectionDefinition(Name)]
public sealed class HelmCollection : ICollectionFixture<HelmFixture>
{
    public const string Name = "Helm";
}
