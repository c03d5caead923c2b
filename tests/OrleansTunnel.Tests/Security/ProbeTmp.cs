using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;
namespace OrleansTunnel.Tests.Security;
public sealed class ProbeTmp(DefaultSecurityHarness fixture, ITestOutputHelper output) : IClassFixture<DefaultSecurityHarness>
{
    [Fact]
    public async Task Probe()
    {
        foreach (var req in new[] {
            "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /echo/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            "GET http://backend.test/echo HTTP/1.1\r\nHost: backend.test\r\nConnection: close\r\n\r\n",
            "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
            "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close, X-Secret\r\nX-Secret: s\r\n\r\n",
        })
        {
            var r = await SecurityKit.ExchangeAsync(fixture.Harness.Ingress.Port, req, TimeSpan.FromSeconds(8));
            output.WriteLine("=== closed=" + r.ServerClosed + "\n" + r.Text);
        }
    }
}
