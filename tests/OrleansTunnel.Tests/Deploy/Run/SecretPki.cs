using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace OrleansTunnel.Tests.Deploy.Run;

/// <summary>
/// A private CA and server certificates it signs, as cert-manager would put them in a Secret of type
/// kubernetes.io/tls: tls.crt, tls.key and ca.crt.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class SecretPki : IDisposable
{
    private readonly ECDsa _caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public X509Certificate2 Ca { get; }

    public SecretPki()
    {
        var request = new CertificateRequest("CN=otun render-and-run test CA", _caKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        Ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(2));
    }

    /// <summary>The files of a kubernetes.io/tls Secret for a server certificate naming <paramref name="dnsNames"/>.</summary>
    public Dictionary<string, byte[]> TlsSecret(params string[] dnsNames)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=" + dnsNames[0], key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in dnsNames)
        {
            san.AddDnsName(name);
        }
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Ca, true, false));
        byte[] serial = RandomNumberGenerator.GetBytes(12);
        using var certificate = request.Create(Ca, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), serial);
        return new Dictionary<string, byte[]>
        {
            ["tls.crt"] = System.Text.Encoding.ASCII.GetBytes(certificate.ExportCertificatePem() + "\n"),
            ["tls.key"] = System.Text.Encoding.ASCII.GetBytes(key.ExportPkcs8PrivateKeyPem() + "\n"),
            ["ca.crt"] = System.Text.Encoding.ASCII.GetBytes(Ca.ExportCertificatePem() + "\n"),
        };
    }

    public void Dispose()
    {
        Ca.Dispose();
        _caKey.Dispose();
    }
}
