using OrleansTunnel.Agent;
using Xunit;

namespace OrleansTunnel.Tests.Security;

/// <summary>
/// An agent pins what it learns (issue 12, sections 2 and 3): cleartext tunnels only to loopback unless
/// Agent:AllowCleartext, and an announced gateway never downgrades an https:// agent to http://.
/// </summary>
public sealed class AgentPinningTests
{
    private static AgentOptions Options(string gateway, bool allowCleartext = false) => new()
    {
        AgentId = "a",
        Token = "t",
        Gateways = [gateway],
        AllowCleartext = allowCleartext,
        Services = [new AgentServiceOptions { Name = "s", Url = "http://127.0.0.1:8080" }],
    };

    [Theory]
    [InlineData("http://gateway.example.com:7070", false, "Agent:Gateways entry 'http://gateway.example.com:7070' is cleartext to a host other than loopback")]
    [InlineData("http://10.0.0.5:7070", false, "is cleartext to a host other than loopback")]
    [InlineData("http://10.0.0.5:7070", true, null)]
    [InlineData("http://127.0.0.1:7070", false, null)]
    [InlineData("http://localhost:7070", false, null)]
    [InlineData("http://[::1]:7070", false, null)]
    [InlineData("https://gateway.example.com:7070", false, null)]
    public void ConfiguredCleartextGateway_OffLoopback_NeedsAllowCleartext(string gateway, bool allow, string? failure)
    {
        var result = new AgentOptionsValidator().Validate(null, Options(gateway, allow));
        if (failure is null)
        {
            Assert.True(result.Succeeded, result.FailureMessage);
        }
        else
        {
            Assert.True(result.Failed);
            Assert.Contains(failure, result.FailureMessage);
            Assert.Contains("Agent:AllowCleartext=true", result.FailureMessage);
        }
    }

    [Fact]
    public void AnHttpsAgent_NeverLearnsACleartextOrMalformedGateway()
    {
        var book = new GatewayBook(["https://gw.example.com:7070"], TimeSpan.FromSeconds(30));
        var refused = book.Learn(["https://gw-1.example.com:7070", "http://gw-2.example.com:7070", "http://127.0.0.1:7070",
            "https://user:pw@gw-3.example.com:7070", "https://gw-4.example.com:7070/path", "ftp://gw-5.example.com"]);
        Assert.Equal(["https://gw.example.com:7070", "https://gw-1.example.com:7070"], book.Known);
        Assert.Equal(5, refused.Count);
        Assert.Contains(refused, r => r.StartsWith("http://gw-2.example.com:7070: it is cleartext while this agent's configured gateways use https://"));
        Assert.Contains(refused, r => r.StartsWith("http://127.0.0.1:7070: it is cleartext while"));
        Assert.Contains(refused, r => r.EndsWith("it is not a bare http(s)://host:port URL"));
        // The same refusal is reported once, not on every announcement.
        Assert.Empty(book.Learn(["https://gw-1.example.com:7070", "http://gw-2.example.com:7070"]));
    }

    [Fact]
    public void ACleartextLoopbackAgent_LearnsLoopbackPeers_ButNotRemoteCleartextOnes()
    {
        var book = new GatewayBook(["http://127.0.0.1:7070"], TimeSpan.FromSeconds(30));
        var refused = book.Learn(["http://127.0.0.1:7071", "http://10.0.0.7:7070", "https://10.0.0.8:7070"]);
        Assert.Equal(["http://127.0.0.1:7070", "http://127.0.0.1:7071", "https://10.0.0.8:7070"], book.Known);
        var only = Assert.Single(refused);
        Assert.Equal("http://10.0.0.7:7070: it is cleartext to a host other than loopback (set Agent:AllowCleartext=true to allow)", only);
        var permissive = new GatewayBook(["http://127.0.0.1:7070"], TimeSpan.FromSeconds(30), allowCleartext: true);
        Assert.Empty(permissive.Learn(["http://10.0.0.7:7070"]));
    }
}
