using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Grains;
using Xunit;

namespace OrleansTunnel.Tests.Routing;

/// <summary>Route matching: exact host over wildcard, longest prefix, and segment boundaries.</summary>
public sealed class RouteTableTests
{
    private static readonly RouteTable Table = new(
    [
        new Route("app.example.com", null, "web"),
        new Route("app.example.com", "/admin", "admin"),
        new Route("app.example.com", "/admin/reports", "reports"),
        new Route("*.example.com", null, "wild"),
        new Route("*.eu.example.com", null, "eu"),
    ]);

    [Theory]
    [InlineData("app.example.com", "/", "web")]
    [InlineData("app.example.com", "/admin", "admin")]
    [InlineData("app.example.com", "/admin/users", "admin")]
    [InlineData("app.example.com", "/admin/reports/2026", "reports")]
    [InlineData("app.example.com", "/administrator", "web")]
    [InlineData("other.example.com", "/admin", "wild")]
    [InlineData("x.eu.example.com", "/", "eu")]
    public void TheMostSpecificRouteWins(string host, string path, string service) =>
        Assert.Equal(service, Table.Match(host, path)?.Service);

    [Theory]
    [InlineData("/Admin/users")]
    [InlineData("/ADMIN")]
    [InlineData("/admin;jsessionid=1/users")]
    [InlineData("/admin%2Fusers")]
    [InlineData("/admin%2fusers")]
    [InlineData("/admin%5Cusers")]
    public void ProtectedPrefixes_CannotBeSidesteppedByCaseOrSegmentTricks(string path) =>
        Assert.Equal("admin", Table.Match("app.example.com", path)?.Service);

    [Theory]
    [InlineData("example.com")]
    [InlineData("nope.test")]
    public void UnknownHosts_MatchNothing(string host) => Assert.Null(Table.Match(host, "/"));
}
