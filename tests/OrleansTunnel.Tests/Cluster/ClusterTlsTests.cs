using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using Orleans.Hosting;
using OrleansTunnel.Demo;
using OrleansTunnel.Grains;
using OrleansTunnel.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit;

namespace OrleansTunnel.Tests.Cluster;

/// <summary>
/// Mutual TLS on the Orleans connections (issue 12, section 2): a cluster whose silos and gateway
/// present certificates from the cluster CA serves requests; an Orleans client without a certificate,
/// or with one from another CA, cannot join and so cannot call a grain.
/// </summary>
public sealed class ClusterTlsTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("otun-cluster-tls-").FullName;
    private ClusterRig _rig = null!;

    private string[] TlsArgs(string name) =>
    [
        "--set", $"Cluster:Tls:CertificatePath={Path.Combine(_dir, name + ".pem")}",
        "--set", $"Cluster:Tls:KeyPath={Path.Combine(_dir, name + ".key")}",
        "--set", $"Cluster:Tls:CaPath={Path.Combine(_dir, "ca.pem")}",
    ];

    public async Task InitializeAsync()
    {
        var (caPem, ca, caKey) = TestPki.CreateCa("otun cluster CA");
        File.WriteAllText(Path.Combine(_dir, "ca.pem"), caPem);
        TestPki.WriteLeaf(_dir, "silo", "otun-silo", ca, caKey, TestPki.ServerAuth, TestPki.ClientAuth);
        TestPki.WriteLeaf(_dir, "gateway", "otun-gateway", ca, caKey, TestPki.ClientAuth);
        TestPki.WriteLeaf(_dir, "client", "otun-operator", ca, caKey, TestPki.ClientAuth);
        var (_, rogueCa, rogueKey) = TestPki.CreateCa("otun cluster CA");
        TestPki.WriteLeaf(_dir, "rogue", "otun-gateway", rogueCa, rogueKey, TestPki.ClientAuth, TestPki.ServerAuth);
        _rig = await ClusterRig.StartAsync(new ClusterRigOptions
        {
            Silos = 2,
            Gateways = 1,
            Agents = 1,
            SeededHosts = ["tls.test"],
            SiloArgs = [.. TlsArgs("silo")],
            GatewayArgs = [.. TlsArgs("gateway")],
        });
    }

    public async Task DisposeAsync()
    {
        await _rig.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task WithMutualTls_TheClusterServes_AndOnlyClientsWithACertificateFromTheClusterCaJoin()
    {
        const long size = 300_000;
        await _rig.WaitForStatusAsync(0, "tls.test", "/hello", HttpStatusCode.OK, TimeSpan.FromSeconds(60));
        using (var response = await _rig.GetAsync(0, "tls.test", $"/download?size={size}"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(DemoBackend.DownloadHash(size), Hashing.Sha256(await response.Content.ReadAsByteArrayAsync()));
        }
        Assert.Contains(_rig.Silo(0).Lines, l => l.Contains("tls=mutual", StringComparison.Ordinal));

        // The control: an operator's client with a certificate from the cluster CA joins and reads the routing.
        var snapshot = await WithClientAsync("client", client => client.GetGrain<IRoutingGrain>(RoutingGrain.DefaultKey).GetSnapshot());
        Assert.Contains(snapshot.Routes, r => r.Host == "tls.test");

        // No certificate, or one from another CA (same subject): the silos refuse the connection.
        foreach (var certificate in new string?[] { null, "rogue" })
        {
            var refused = await Assert.ThrowsAnyAsync<Exception>(() => WithClientAsync(certificate, client => client.GetGrain<IRoutingGrain>(RoutingGrain.DefaultKey).GetSnapshot()));
            // Refused at the connection (no gateway of the cluster would talk to it), not by anything else.
            Assert.True(refused is Orleans.Runtime.SiloUnavailableException or Orleans.Runtime.Messaging.ConnectionFailedException or Orleans.Runtime.OrleansMessageRejectionException,
                $"{certificate ?? "no certificate"}: {refused.GetType().FullName}: {refused.Message}");
        }

        // The cluster is unharmed.
        using var after = await _rig.GetAsync(0, "tls.test", "/hello");
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }

    /// <summary>Joins the rig's cluster as a bare Orleans client (with the named certificate, or without TLS) and runs one call.</summary>
    private async Task<T> WithClientAsync<T>(string? certificate, Func<IClusterClient, Task<T>> call)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.UseOrleansClient(client =>
        {
            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = _rig.Options.ClusterId;
                o.ServiceId = _rig.Options.ServiceId;
            });
            client.UseRedisClustering(o => o.ConfigurationOptions = ConfigurationOptions.Parse(_rig.Redis.ConnectionString));
            client.UseConnectionRetryFilter((_, _) => Task.FromResult(false));
            if (certificate is not null)
            {
                var cert = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(
                    Path.Combine(_dir, certificate + ".pem"), Path.Combine(_dir, certificate + ".key"));
                // The client checks nothing here: what is tested is whether the silos accept it.
                client.UseTls(cert, o => o.AllowAnyRemoteCertificate());
            }
        });
        using var host = builder.Build();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await host.StartAsync(cts.Token);
        try
        {
            return await call(host.Services.GetRequiredService<IClusterClient>()).WaitAsync(TimeSpan.FromSeconds(30));
        }
        finally
        {
            await host.StopAsync(TimeSpan.FromSeconds(10).ToCancellationToken());
        }
    }
}
