using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>Loads the ingress certificate, and makes the self-signed one dev mode uses.</summary>
public static class IngressCertificate
{
    /// <summary>Loads Gateway:CertificatePath (PEM with key, or PFX); fails with the key to fix.</summary>
    public static X509Certificate2 Load(GatewayOptions o)
    {
        if (string.IsNullOrWhiteSpace(o.CertificatePath))
        {
            throw new OptionsValidationException(nameof(GatewayOptions), typeof(GatewayOptions),
                ["Gateway:HttpsIngress is set but Gateway:CertificatePath is empty; give a PEM certificate (and Gateway:CertificateKeyPath) or a PFX file"]);
        }
        if (!File.Exists(o.CertificatePath))
        {
            throw new OptionsValidationException(nameof(GatewayOptions), typeof(GatewayOptions),
                [$"Gateway:CertificatePath '{o.CertificatePath}' does not exist"]);
        }
        try
        {
            if (!string.IsNullOrWhiteSpace(o.CertificateKeyPath))
            {
                var pem = string.IsNullOrEmpty(o.CertificatePassword)
                    ? X509Certificate2.CreateFromPemFile(o.CertificatePath, o.CertificateKeyPath)
                    : X509Certificate2.CreateFromEncryptedPemFile(o.CertificatePath, o.CertificatePassword, o.CertificateKeyPath);
                // SslStream wants a key it can use on every platform: round-trip through PKCS#12.
                return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
            }
            return X509CertificateLoader.LoadPkcs12FromFile(o.CertificatePath, o.CertificatePassword);
        }
        catch (CryptographicException ex)
        {
            throw new OptionsValidationException(nameof(GatewayOptions), typeof(GatewayOptions),
                [$"Gateway:CertificatePath '{o.CertificatePath}' could not be loaded ({ex.Message}); check the file, Gateway:CertificateKeyPath and Gateway:CertificatePassword"]);
        }
    }

    /// <summary>
    /// Returns the dev certificate in <paramref name="directory"/> (dev-cert.pem, dev-key.pem), creating
    /// a self-signed one for localhost, *.localhost, 127.0.0.1, ::1 and the given hosts when absent or
    /// when it does not cover a host.
    /// </summary>
    public static (string CertificatePath, string KeyPath, bool Created) EnsureDevCertificate(string directory, IEnumerable<string> hosts)
    {
        Directory.CreateDirectory(directory);
        string certPath = Path.Combine(directory, "dev-cert.pem");
        string keyPath = Path.Combine(directory, "dev-key.pem");
        var names = new SortedSet<string>(StringComparer.OrdinalIgnoreCase) { "localhost", "*.localhost" };
        foreach (var h in hosts.Where(h => !IPAddress.TryParse(h, out _)))
        {
            names.Add(h);
        }
        if (File.Exists(certPath) && File.Exists(keyPath))
        {
            using var existing = X509Certificate2.CreateFromPemFile(certPath, keyPath);
            if (existing.NotAfter > DateTime.Now.AddDays(7) && names.All(n => existing.MatchesHostname(n.Replace("*.", "x.", StringComparison.Ordinal))))
            {
                return (certPath, keyPath, false);
            }
        }
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=OrleansTunnel dev", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in names)
        {
            san.AddDnsName(name);
        }
        san.AddIpAddress(IPAddress.Loopback);
        san.AddIpAddress(IPAddress.IPv6Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(1));
        File.WriteAllText(certPath, certificate.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(keyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        return (certPath, keyPath, true);
    }
}
