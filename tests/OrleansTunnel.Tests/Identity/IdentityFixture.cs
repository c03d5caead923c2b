using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using OrleansTunnel.Tests.Deploy;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Identity;

[CollectionDefinition(Name)]
public sealed class IdentityCollection : ICollectionFixture<IdentityFixture>
{
    public const string Name = "identity";
}

/// <summary>
/// One harness (gateway A with its silo, agent, echo backend) plus a second gateway B of the same
/// cluster, a real OpenID Provider (npm oidc-provider on a loopback port) and a JWKS endpoint (Kestrel)
/// whose keys the JWT tests sign with. Routes: oidc.test (oidc, example.com emails allowed),
/// denied.test (oidc, only bob@example.org or group admins), fileref.test / envref.test (oidc, the client
/// secret read from a file / an environment variable through ClientSecretRef), badref.test (a ClientSecretRef
/// to a missing file), jwt.test (jwt, audience otun-api, claim tenant required).
/// </summary>
public sealed class IdentityFixture : IAsyncLifetime
{
    public const string ClientId = "otun-test", OkHost = "oidc.test", DeniedHost = "denied.test", JwtHost = "jwt.test",
        FileRefHost = "fileref.test", EnvRefHost = "envref.test", BadRefHost = "badref.test", NoLogoutHost = "nologout.test",
        JwtIssuer = "https://issuer.test", Audience = "otun-api";

    public string ClientSecret { get; } = "client-secret-" + Guid.NewGuid().ToString("N");

    /// <summary>The environment variable of the envref.test route's ClientSecretRef (the gateways run in this process).</summary>
    public string SecretVariable { get; } = "OTUN_TEST_OIDC_SECRET_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();

    /// <summary>The file of the fileref.test route's ClientSecretRef (the secret and a trailing newline, as a mounted Secret may have).</summary>
    public string SecretFile { get; private set; } = "";

    /// <summary>The reference of badref.test: a file no gateway has.</summary>
    public string MissingSecretFile { get; } = Path.Combine(Path.GetTempPath(), "otun-no-such-secret-" + Guid.NewGuid().ToString("N")[..8]);
    public TunnelHarness Harness { get; private set; } = null!;
    public PeerGateway B { get; private set; } = null!;
    public string Issuer { get; private set; } = "";
    public string JwksUri { get; private set; } = "";

    /// <summary>How often the JWKS endpoint was read (the gateways cache it).</summary>
    public int JwksReads => Volatile.Read(ref _jwksReads);
    private int _jwksReads;
    public RsaSecurityKey SigningKey { get; } = NewKey("k1");
    private readonly List<RsaSecurityKey> _published = [];
    private WebApplication? _jwks;
    private Process? _provider;
    private readonly System.Text.StringBuilder _providerLog = new();

    public static RsaSecurityKey NewKey(string kid) => new(RSA.Create(2048)) { KeyId = kid };

    /// <summary>Adds a key to the JWKS the gateway reads (a key rotation at the issuer).</summary>
    public void Publish(RsaSecurityKey key)
    {
        lock (_published)
        {
            _published.Add(key);
        }
    }

    /// <summary>A JWT as the issuer would mint it (override anything through the arguments).</summary>
    public string Mint(RsaSecurityKey? key = null, string? audience = Audience, DateTime? expires = null, Dictionary<string, object>? claims = null, string issuer = JwtIssuer)
    {
        var now = DateTime.UtcNow;
        var exp = expires ?? now.AddMinutes(10);
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer,
            Audience = audience,
            IssuedAt = exp.AddMinutes(-20),
            NotBefore = exp.AddMinutes(-20),
            Expires = exp,
            Claims = claims ?? new Dictionary<string, object> { ["sub"] = "svc-42", ["email"] = "svc@example.com", ["tenant"] = "t1", ["groups"] = new[] { "robots" } },
            SigningCredentials = new SigningCredentials(key ?? SigningKey, SecurityAlgorithms.RsaSha256),
        });
    }

    public async Task InitializeAsync()
    {
        var install = await ProcessRunner.RunAsync("bash", [Path.Combine(RepoRoot.Path, "scripts", "install-oidc-provider.sh")], RepoRoot.Path, TimeSpan.FromMinutes(5));
        Assert.True(install.ExitCode == 0, "scripts/install-oidc-provider.sh failed: " + install.Describe());
        string providerDir = install.StandardOutput.Trim().Split('\n')[^1].Trim();

        Publish(SigningKey);
        int jwksPort = Ports.Free();
        JwksUri = $"http://127.0.0.1:{jwksPort}/jwks";
        var jwksBuilder = WebApplication.CreateSlimBuilder();
        jwksBuilder.Logging.SetMinimumLevel(LogLevel.Warning);
        jwksBuilder.WebHost.UseUrls($"http://127.0.0.1:{jwksPort}");
        _jwks = jwksBuilder.Build();
        _jwks.MapGet("/jwks", () =>
        {
            Interlocked.Increment(ref _jwksReads);
            lock (_published)
            {
                return Results.Json(new { keys = _published.Select(Jwk).ToArray() });
            }
        });
        // An issuer whose discovery document advertises no end_session_endpoint (for the logout path's fallback).
        _jwks.MapGet("/no-logout/.well-known/openid-configuration", () => Results.Json(new
        {
            issuer = $"http://127.0.0.1:{jwksPort}/no-logout",
            authorization_endpoint = $"http://127.0.0.1:{jwksPort}/no-logout/auth",
            token_endpoint = $"http://127.0.0.1:{jwksPort}/no-logout/token",
        }));
        await _jwks.StartAsync();

        // The session-cookie keys are stored encrypted with this certificate (both gateways have it).
        var (keyCert, keyKey) = KeyEncryptionCertificate();
        SecretFile = Path.Combine(Path.GetDirectoryName(keyCert)!, "client-secret");
        File.WriteAllText(SecretFile, ClientSecret + "\n");
        Environment.SetEnvironmentVariable(SecretVariable, ClientSecret);
        var keyEncryption = new Dictionary<string, string?> { ["Gateway:Identity:KeyCertificatePath"] = keyCert, ["Gateway:Identity:KeyCertificateKeyPath"] = keyKey };

        int providerPort = Ports.Free();
        Issuer = $"http://127.0.0.1:{providerPort}";
        Harness = await TunnelHarness.StartAsync(o =>
        {
            var g = o.Gateway;
            g["Gateway:Identity:JwksRefreshInterval"] = "00:00:01";
            foreach (var (k, v) in keyEncryption)
            {
                g[k] = v;
            }
            OidcRoute(g, 40, OkHost, ("AllowedDomains:0", "example.com"));
            OidcRoute(g, 41, DeniedHost, ("AllowedEmails:0", "bob@example.org"), ("AllowedGroups:0", "admins"));
            OidcRoute(g, 43, FileRefHost, ("ClientSecretRef", "file:" + SecretFile));
            OidcRoute(g, 44, EnvRefHost, ("ClientSecretRef", "env:" + SecretVariable));
            OidcRoute(g, 45, BadRefHost, ("ClientSecretRef", "file:" + MissingSecretFile));
            OidcRoute(g, 46, NoLogoutHost);
            g["Gateway:Routes:46:Identity:Issuer"] = $"http://127.0.0.1:{jwksPort}/no-logout";
            g["Gateway:Routes:42:Host"] = JwtHost;
            g["Gateway:Routes:42:Service"] = "backend";
            g["Gateway:Routes:42:Access"] = "jwt";
            g["Gateway:Routes:42:Identity:Issuer"] = JwtIssuer;
            g["Gateway:Routes:42:Identity:JwksUri"] = $"http://127.0.0.1:{jwksPort}/jwks";
            g["Gateway:Routes:42:Identity:RequireHttpsMetadata"] = "false";
            g["Gateway:Routes:42:Identity:Audiences:0"] = Audience;
            g["Gateway:Routes:42:Identity:RequiredClaims:0"] = "tenant";
            g["Gateway:Routes:42:Identity:ClockSkew"] = "00:00:30";
        });
        B = await Harness.StartPeerGatewayAsync("gw-b", keyEncryption);

        int a = Harness.Ingress.Port, b = B.Ingress.Port;
        var redirects = string.Join(',', new[] { $"http://{OkHost}:{a}", $"http://{OkHost}:{b}", $"http://{DeniedHost}:{a}", $"http://{FileRefHost}:{a}", $"http://{EnvRefHost}:{a}" }
            .Select(u => u + "/.otun/oidc/callback"));
        var info = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(RepoRoot.Path, "tests", "OrleansTunnel.Tests", "Identity", "oidc-provider.mjs"));
        info.Environment["PORT"] = providerPort.ToString();
        info.Environment["CLIENT_ID"] = ClientId;
        info.Environment["CLIENT_SECRET"] = ClientSecret;
        info.Environment["REDIRECT_URIS"] = redirects;
        info.Environment["POST_LOGOUT_URIS"] = $"http://{OkHost}:{a}/.otun/oidc/signed-out";
        info.Environment["PROVIDER"] = providerDir;
        _provider = Process.Start(info)!;
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _provider.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } line)
            {
                lock (_providerLog)
                {
                    _providerLog.AppendLine(line);
                }
                if (line.StartsWith("ready ", StringComparison.Ordinal))
                {
                    ready.TrySetResult();
                }
            }
        };
        _provider.ErrorDataReceived += (_, e) =>
        {
            lock (_providerLog)
            {
                _providerLog.AppendLine(e.Data);
            }
        };
        _provider.Exited += (_, _) => ready.TrySetException(new InvalidOperationException("oidc-provider exited: " + ProviderLog));
        _provider.EnableRaisingEvents = true;
        _provider.BeginOutputReadLine();
        _provider.BeginErrorReadLine();
        await ready.Task.WaitAsync(TimeSpan.FromSeconds(60));
    }

    public string ProviderLog
    {
        get
        {
            lock (_providerLog)
            {
                return _providerLog.ToString();
            }
        }
    }

    private void OidcRoute(Dictionary<string, string?> g, int i, string host, params (string Key, string Value)[] allow)
    {
        g[$"Gateway:Routes:{i}:Host"] = host;
        g[$"Gateway:Routes:{i}:Service"] = "backend";
        g[$"Gateway:Routes:{i}:Access"] = "oidc";
        g[$"Gateway:Routes:{i}:Identity:Issuer"] = Issuer;
        g[$"Gateway:Routes:{i}:Identity:ClientId"] = ClientId;
        g[$"Gateway:Routes:{i}:Identity:RequireHttpsMetadata"] = "false";
        if (!allow.Any(a => a.Key == "ClientSecretRef"))
        {
            g[$"Gateway:Routes:{i}:Identity:ClientSecret"] = ClientSecret;
        }
        foreach (var (key, value) in allow)
        {
            g[$"Gateway:Routes:{i}:Identity:{key}"] = value;
        }
    }

    private static (string Cert, string Key) KeyEncryptionCertificate()
    {
        string dir = Path.Combine(Path.GetTempPath(), "otun-identity-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        using var rsa = RSA.Create(2048);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=otun session keys", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        string certPath = Path.Combine(dir, "keys.crt"), keyPath = Path.Combine(dir, "keys.key");
        File.WriteAllText(certPath, cert.ExportCertificatePem());
        File.WriteAllText(keyPath, rsa.ExportPkcs8PrivateKeyPem());
        return (certPath, keyPath);
    }

    private static object Jwk(RsaSecurityKey key)
    {
        var p = key.Rsa.ExportParameters(false);
        return new { kty = "RSA", use = "sig", alg = "RS256", kid = key.KeyId, n = Base64UrlEncoder.Encode(p.Modulus), e = Base64UrlEncoder.Encode(p.Exponent) };
    }

    public async Task DisposeAsync()
    {
        Environment.SetEnvironmentVariable(SecretVariable, null);
        if (_provider is { HasExited: false })
        {
            _provider.Kill(entireProcessTree: true);
            await _provider.WaitForExitAsync();
        }
        _provider?.Dispose();
        if (B is not null)
        {
            await B.DisposeAsync();
        }
        if (Harness is not null)
        {
            await Harness.DisposeAsync();
        }
        if (_jwks is not null)
        {
            await _jwks.DisposeAsync();
        }
    }
}
