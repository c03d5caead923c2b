using System.Net;
using OrleansTunnel.Demo;
using OrleansTunnel.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit;

namespace OrleansTunnel.Tests.Cluster;

/// <summary>
/// Redis with a password and TLS (issue 12, section 2): silos and gateways reach a redis-server that
/// listens for them on a TLS port only (a private CA, client certificates required: Redis's
/// tls-auth-clients default) and asks for a password; the cluster serves, the password never reaches
/// a log, and a client without the CA's trust or without the password gets nothing.
/// </summary>
public sealed class RedisTlsTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("otun-redis-tls-").FullName;
    private readonly string _password = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(20));
    private readonly int _tlsPort = Ports.Free();
    private ClusterRig _rig = null!;

    private string Pem(string name) => Path.Combine(_dir, name + ".pem");

    private string Key(string name) => Path.Combine(_dir, name + ".key");

    private string[] RedisTlsArgs =>
    [
        "--set", $"Cluster:RedisTls:CaPath={Pem("ca")}",
        "--set", $"Cluster:RedisTls:CertificatePath={Pem("node")}",
        "--set", $"Cluster:RedisTls:KeyPath={Key("node")}",
    ];

    public async Task InitializeAsync()
    {
        var (caPem, ca, caKey) = TestPki.CreateCa("otun redis CA");
        File.WriteAllText(Pem("ca"), caPem);
        TestPki.WriteLoopbackServer(_dir, "redis", ca, caKey);
        TestPki.WriteLeaf(_dir, "node", "otun-node", ca, caKey, TestPki.ClientAuth);
        _rig = await ClusterRig.StartAsync(new ClusterRigOptions
        {
            Silos = 1,
            Gateways = 1,
            Agents = 1,
            SeededHosts = ["redis-tls.test"],
            RedisArgs = ["--tls-port", _tlsPort.ToString(), "--tls-cert-file", Pem("redis"), "--tls-key-file", Key("redis"), "--tls-ca-cert-file", Pem("ca")],
            RedisPassword = _password,
            RedisConnectionString = $"127.0.0.1:{_tlsPort},password={_password}",
            SiloArgs = [.. RedisTlsArgs],
            GatewayArgs = [.. RedisTlsArgs],
        });
    }

    public async Task DisposeAsync()
    {
        await _rig.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task NodesReachRedisOverTlsWithThePassword_AndNothingLogsIt()
    {
        await _rig.WaitForStatusAsync(0, "redis-tls.test", "/hello", HttpStatusCode.OK, TimeSpan.FromSeconds(60));
        const long size = 100_000;
        using (var response = await _rig.GetAsync(0, "redis-tls.test", $"/download?size={size}"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(DemoBackend.DownloadHash(size), Hashing.Sha256(await response.Content.ReadAsByteArrayAsync()));
        }

        // The routes the gateway seeded went through Redis (grain storage) over TLS: read them back the same way.
        var options = ConfigurationOptions.Parse($"127.0.0.1:{_tlsPort},password={_password},abortConnect=false,connectTimeout=5000");
        options.Ssl = true;
        options.TrustIssuer(Pem("ca"));
        var certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(Pem("node"), Key("node"));
        options.CertificateSelection += (_, _, _, _, _) => certificate;
        using (var redis = await ConnectionMultiplexer.ConnectAsync(options))
        {
            var keys = redis.GetServer(redis.GetEndPoints()[0]).Keys(pattern: "*").Select(k => k.ToString()).ToList();
            Assert.NotEmpty(keys);
        }

        // Without the password, or without TLS, the same port gives nothing.
        // A long connect timeout: on a loaded machine a 3 s TLS handshake timed out before the server could
        // refuse the missing password (the failure this checks), once in a full suite run.
        var noPassword = ConfigurationOptions.Parse($"127.0.0.1:{_tlsPort},abortConnect=false,connectTimeout=15000");
        noPassword.Ssl = true;
        noPassword.TrustIssuer(Pem("ca"));
        noPassword.CertificateSelection += (_, _, _, _, _) => certificate;
        using (var redis = await ConnectionMultiplexer.ConnectAsync(noPassword))
        {
            var refused = await Assert.ThrowsAnyAsync<RedisException>(() => redis.GetDatabase().PingAsync());
            // Refused for the password (NOAUTH / AuthenticationFailure), the only difference from the control above.
            Assert.True(refused.ToString().Contains("auth", StringComparison.OrdinalIgnoreCase), "expected an authentication failure, got: " + refused);
        }
        using (var redis = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{_tlsPort},password={_password},abortConnect=false,connectTimeout=3000"))
        {
            Assert.False(redis.IsConnected);
        }

        // The password is redacted wherever a node reports its settings.
        Assert.Contains(_rig.Silo(0).Lines, l => l.Contains("password=***", StringComparison.Ordinal));
        Assert.All(_rig.Silo(0).Lines.Concat(_rig.Gateway(0).Lines), l => Assert.DoesNotContain(_password, l, StringComparison.Ordinal));
    }
}
