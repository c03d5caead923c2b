using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace OrleansTunnel.Tests.Infrastructure;

/// <summary>A private CA made in the test run, issuing PEM certificates and keys for TLS tests.</summary>
public static class TestPki
{
    /// <summary>A self-signed CA valid for a day.</summary>
    public static (string Pem, X509Certificate2 Cert, ECDsa Key) CreateCa(string commonName = "otun test CA")
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        return (cert.ExportCertificatePem(), cert, key);
    }

    /// <summary>TLS client authentication (1.3.6.1.5.5.7.3.2).</summary>
    public const string ClientAuth = "1.3.6.1.5.5.7.3.2";

    /// <summary>TLS server authentication (1.3.6.1.5.5.7.3.1).</summary>
    public const string ServerAuth = "1.3.6.1.5.5.7.3.1";

    /// <summary>Writes <c>dir/name.pem</c> and <c>dir/name.key</c>: a certificate for <paramref name="commonName"/> issued by the CA.</summary>
    public static void WriteLeaf(string dir, string name, string commonName, X509Certificate2 ca, ECDsa caKey, params string[] usages)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        var eku = new OidCollection();
        foreach (var usage in usages.Length == 0 ? [ClientAuth] : usages)
        {
            eku.Add(new Oid(usage));
        }
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(eku, false));
        using var signed = request.Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), RandomNumberGenerator.GetBytes(8));
        File.WriteAllText(Path.Combine(dir, name + ".pem"), signed.ExportCertificatePem());
        File.WriteAllText(Path.Combine(dir, name + ".key"), key.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>Writes <c>dir/name.pem</c> and <c>dir/name.key</c>: a server (and client) certificate for localhost and 127.0.0.1 issued by the CA.</summary>
    public static void WriteLoopbackServer(string dir, string name, X509Certificate2 ca, ECDsa caKey)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(ServerAuth), new Oid(ClientAuth)], false));
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var signed = request.Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), RandomNumberGenerator.GetBytes(8));
        File.WriteAllText(Path.Combine(dir, name + ".pem"), signed.ExportCertificatePem());
        File.WriteAllText(Path.Combine(dir, name + ".key"), key.ExportPkcs8PrivateKeyPem());
    }
}
