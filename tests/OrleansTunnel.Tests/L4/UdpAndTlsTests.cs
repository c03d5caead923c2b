using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.L4;

/// <summary>UDP services (dig to dnsmasq, datagram boundaries) and TLS passthrough by SNI.</summary>
[Collection("L4")]
public sealed class UdpAndTlsTests(L4Rig rig)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Dig_gets_1000_correct_answers_from_dnsmasq_through_a_udp_service()
    {
        string dig = Tool.Require("dig", "bind9-dnsutils");
        string batch = Path.GetTempFileName();
        try
        {
            // One query per line (each from its own socket: a flow each); h{i%10} resolves to 10.0.0.{i%10}.
            await File.WriteAllLinesAsync(batch, Enumerable.Range(0, 1000).Select(i => $"h{i % 10}.l4.test A"));
            var run = await Tool.RunAsync(dig, ["@127.0.0.1", "-p", rig.Port["dns"].ToString(), "+short", "+time=5", "+tries=3", "-f", batch], TimeSpan.FromMinutes(3));
            Assert.True(run.Exit == 0, $"dig failed ({run.Exit}): {run.Err}");
            // A query whose datagram was lost is retried by dig (+tries=3), which notes the timeout on
            // stdout (";; communications error ..."); every query must still get its right answer.
            var lines = run.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var answers = lines.Where(l => !l.StartsWith(";;", StringComparison.Ordinal)).ToArray();
            Assert.Equal(1000, answers.Length);
            for (int i = 0; i < answers.Length; i++)
            {
                Assert.Equal($"10.0.0.{i % 10}", answers[i]);
            }
            // dig queries from a fresh port each time (a few ports repeat): nearly a flow per query, each holding
            // one of the agent's permits until it idles out (1 s here). The other tests need those permits back.
            var stats = rig.Telemetry.Stats("udp", "dns");
            Assert.True(Interlocked.Read(ref stats.Connections) >= 500, $"expected about a flow per query, saw {stats.Connections}");
            await Eventually.TrueAsync(() => Interlocked.Read(ref stats.Active) == 0, Deadline, "the DNS flows never idled out");
        }
        finally
        {
            File.Delete(batch);
        }
    }

    [Fact]
    public async Task Datagrams_of_1_B_1400_B_and_60_KiB_keep_their_boundaries()
    {
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        client.Connect(IPAddress.Loopback, rig.Port["udp-echo"]);
        var buffer = new byte[65536];
        foreach (int size in new[] { 1, 1400, 60 * 1024 })
        {
            var datagram = RandomNumberGenerator.GetBytes(size);
            // UDP may lose a datagram; resend until the echo comes back (each echo is exactly one datagram).
            int received = -1;
            for (int attempt = 0; attempt < 10 && received < 0; attempt++)
            {
                await client.SendAsync(datagram);
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(6));
                try
                {
                    received = await client.ReceiveAsync(buffer, SocketFlags.None, wait.Token);
                }
                catch (OperationCanceledException)
                {
                }
            }
            Assert.Equal(size, received);
            Assert.Equal(Hashing.Sha256(datagram), Hashing.Sha256(buffer.AsSpan(0, received)));
        }
        var stats = rig.Telemetry.Stats("udp", "udp-echo");
        // The visitor may read an answer before the gateway's counter moved: wait for the count.
        await Eventually.TrueAsync(() => Interlocked.Read(ref stats.DatagramsOut) >= 3, TimeSpan.FromSeconds(10), "the answers were counted");
    }

    [Theory]
    [InlineData("a.tls.test", "a")]
    [InlineData("x.b.tls.test", "b")]
    public async Task Tls_passthrough_routes_by_sni_and_the_visitor_sees_the_backends_own_certificate(string sni, string backend)
    {
        var expected = backend == "a" ? rig.CertA : rig.CertB;
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, rig.PassthroughPort).Within(Deadline);
        X509Certificate? seen = null;
        await using var ssl = new SslStream(new NetworkStream(socket, ownsSocket: false), false, (_, cert, _, _) =>
        {
            seen = cert is null ? null : X509CertificateLoader.LoadCertificate(cert.GetRawCertData());
            return true;
        });
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = sni }).Within(Deadline);
        Assert.NotNull(seen);
        Assert.Equal(expected.Thumbprint, ((X509Certificate2)seen!).Thumbprint);
        var reader = new StreamReader(ssl, Encoding.ASCII);
        Assert.Equal($"hello from {backend}", await reader.ReadLineAsync().Within(Deadline));
    }

    [Fact]
    public async Task A_udp_visitor_outside_AllowedNetworks_gets_no_flow_and_is_counted()
    {
        var stats = rig.Telemetry.Stats("udp", "udp-denied");
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        client.Connect(IPAddress.Loopback, rig.Port["udp-denied"]);
        await client.SendAsync("denied"u8.ToArray());
        // The gate counts the refusal first and the datagram's drop right after it: wait for both.
        await Eventually.TrueAsync(() => Interlocked.Read(ref stats.Refused) >= 1 && Interlocked.Read(ref stats.DatagramsDropped) >= 1, Deadline,
            $"the refused datagram was not counted (refused {Interlocked.Read(ref stats.Refused)}, dropped {Interlocked.Read(ref stats.DatagramsDropped)})");
        Assert.Equal(0, Interlocked.Read(ref stats.Connections));
    }

    [Theory]
    [InlineData("nowhere.test")]     // no route
    [InlineData("denied.tls.test")]  // the route allows 10.0.0.0/8 only
    public async Task Tls_passthrough_closes_a_connection_without_a_route_or_outside_the_routes_networks(string sni)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, rig.PassthroughPort).Within(Deadline);
        await using var ssl = new SslStream(new NetworkStream(socket, ownsSocket: false), false, (_, _, _, _) => true);
        var error = await Record.ExceptionAsync(() => ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = sni }).Within(Deadline));
        Assert.True(error is IOException or AuthenticationException, $"expected the handshake to fail on a closed connection, got {error}");
        if (sni == "denied.tls.test")
        {
            Assert.True(Interlocked.Read(ref rig.Telemetry.Stats("tcp", "tls-a").Refused) >= 1, "the refusal was not counted on the route's service");
        }
    }
}
