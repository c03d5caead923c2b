using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace OrleansTunnel.Cli;

/// <summary>
/// The secrets `otun cluster` runs its cluster with, so the local cluster is locked the way a
/// production one is: a private cluster CA with one node certificate for mutual TLS on every Orleans
/// connection (Cluster:Tls), and a Redis password (requirepass). Made once in the data directory
/// (pki/, redis-password; keys and password readable by the owner only) and reused by later runs, so
/// a restarted cluster keeps its durable state and its nodes keep trusting each other.
/// </summary>
public sealed record ClusterSecrets(string CaPath, string CertificatePath, string KeyPath, string RedisPassword)
{
    /// <summary>How long the generated CA and node certificate are valid.</summary>
    private static readonly TimeSpan Lifetime = TimeSpan.FromDays(825);

    /// <summary>Loads the secrets of <paramref name="dataDirectory"/>, making those that are missing or expire within a week.</summary>
    public static ClusterSecrets Ensure(string dataDirectory)
    {
        string pki = Path.Combine(dataDirectory, "pki");
        Directory.CreateDirectory(pki);
        var secrets = new ClusterSecrets(
            Path.Combine(pki, "ca.crt"), Path.Combine(pki, "node.crt"), Path.Combine(pki, "node.key"),
            EnsurePassword(Path.Combine(dataDirectory, "redis-password")));
        if (!secrets.CertificatesValid())
        {
            secrets.MakeCertificates(Path.Combine(pki, "ca.key"));
        }
        return secrets;
    }

    /// <summary>The Cluster:Tls settings of silos and gateways, as --set arguments.</summary>
    public IEnumerable<string> TlsArgs() =>
    [
        "--set", $"Cluster:Tls:CertificatePath={CertificatePath}",
        "--set", $"Cluster:Tls:KeyPath={KeyPath}",
        "--set", $"Cluster:Tls:CaPath={CaPath}",
    ];

    /// <summary>
    /// A redis.conf holding the password (owner-readable only): redis-server reads it from the file, so
    /// the password is not on any command line `ps` shows.
    /// </summary>
    public string WriteRedisConfig(string directory)
    {
        string path = Path.Combine(directory, "otun-redis.conf");
        WritePrivate(path, $"requirepass \"{RedisPassword}\"\n");
        return path;
    }

    private bool CertificatesValid()
    {
        if (!File.Exists(CaPath) || !File.Exists(CertificatePath) || !File.Exists(KeyPath))
        {
            return false;
        }
        try
        {
            using var ca = X509Certificate2.CreateFromPem(File.ReadAllText(CaPath));
            using var node = X509Certificate2.CreateFromPemFile(CertificatePath, KeyPath);
            var soon = DateTime.UtcNow.AddDays(7);
            return ca.NotAfter.ToUniversalTime() > soon && node.NotAfter.ToUniversalTime() > soon
                && Mux.CaTrust.ChainsTo(node, ca);
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    private void MakeCertificates(string caKeyPath)
    {
        var from = DateTimeOffset.UtcNow.AddMinutes(-5);
        var until = from + Lifetime;
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=OrleansTunnel local cluster CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        using var ca = caRequest.CreateSelfSigned(from, until);

        // One certificate for every node: Orleans dials silos by address and the cluster CA is the trust
        // boundary (silo/ClusterTls.cs), so the node certificate is both a server and a client certificate.
        using var nodeKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var nodeRequest = new CertificateRequest("CN=OrleansTunnel local cluster node", nodeKey, HashAlgorithmName.SHA256);
        nodeRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        nodeRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        nodeRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new System.Security.Cryptography.Oid("1.3.6.1.5.5.7.3.1"), new System.Security.Cryptography.Oid("1.3.6.1.5.5.7.3.2")], false));
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        nodeRequest.CertificateExtensions.Add(san.Build());
        using var node = nodeRequest.Create(ca, from, until, RandomNumberGenerator.GetBytes(16));

        WritePrivate(caKeyPath, caKey.ExportPkcs8PrivateKeyPem());
        WritePrivate(KeyPath, nodeKey.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(CaPath, ca.ExportCertificatePem());
        File.WriteAllText(CertificatePath, node.ExportCertificatePem());
    }

    private static string EnsurePassword(string path)
    {
        if (File.Exists(path) && File.ReadAllText(path).Trim() is { Length: >= 32 } existing)
        {
            return existing;
        }
        string password = Convert.ToHexString(RandomNumberGenerator.GetBytes(24)).ToLowerInvariant();
        WritePrivate(path, password + "\n");
        return password;
    }

    private static void WritePrivate(string path, string content)
    {
        // Create the file owner-only before the secret goes in, so it is never readable by others.
        File.Delete(path);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        using (var stream = new FileStream(path, options))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(content);
        }
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }
}
