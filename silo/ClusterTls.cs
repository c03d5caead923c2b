using System.Security.Cryptography.X509Certificates;
using Orleans.Connections.Security;
using Orleans.Hosting;
using OrleansTunnel.Mux;

namespace OrleansTunnel.Silo;

/// <summary>
/// Mutual TLS on every Orleans connection (silo to silo, gateway to silo), configuration section
/// Cluster:Tls. Each node presents its certificate (PEM) and accepts a peer only when the peer's
/// certificate chains to the cluster's CA, and to nothing else: a certificate from a public CA grants no
/// membership. Names are not checked (silos are dialled by IP address); the CA is the trust boundary,
/// so keep it private to the cluster. Without it, anyone who reaches the silo ports can call any grain.
/// </summary>
public sealed class ClusterTlsSettings
{
    /// <summary>PEM certificate this node presents; empty: Orleans connections are cleartext.</summary>
    public string? CertificatePath { get; set; }

    /// <summary>PEM private key of <see cref="CertificatePath"/>.</summary>
    public string? KeyPath { get; set; }

    /// <summary>PEM CA that must have issued every peer's certificate.</summary>
    public string? CaPath { get; set; }

    /// <summary>How long a TLS handshake may take (default 10 s).</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    public bool Enabled => !string.IsNullOrWhiteSpace(CertificatePath);

    /// <summary>What is wrong with the settings (naming the key), or null.</summary>
    public string? Problem()
    {
        if (!Enabled)
        {
            return string.IsNullOrWhiteSpace(KeyPath) && string.IsNullOrWhiteSpace(CaPath)
                ? null
                : "Cluster:Tls:KeyPath or CaPath is set without Cluster:Tls:CertificatePath";
        }
        foreach (var (key, path) in new[] { ("CertificatePath", CertificatePath), ("KeyPath", KeyPath), ("CaPath", CaPath) })
        {
            if (string.IsNullOrWhiteSpace(path))
            {
                return $"Cluster:Tls:{key} is required when Cluster:Tls:CertificatePath is set (mutual TLS needs the node's certificate, its key and the cluster CA)";
            }
            if (!File.Exists(path))
            {
                return $"Cluster:Tls:{key} '{path}' does not exist";
            }
        }
        return null;
    }
}

public static class ClusterTls
{
    /// <summary>Turns on mutual TLS for a silo's connections when configured.</summary>
    public static void Apply(ISiloBuilder silo, ClusterTlsSettings settings)
    {
        if (Load(settings) is var (certificate, ca))
        {
            silo.UseTls(certificate, o => Configure(o, ca, settings));
        }
    }

    /// <summary>Turns on mutual TLS for a client's (gateway's) connections when configured.</summary>
    public static void Apply(IClientBuilder client, ClusterTlsSettings settings)
    {
        if (Load(settings) is var (certificate, ca))
        {
            client.UseTls(certificate, o => Configure(o, ca, settings));
        }
    }

    private static (X509Certificate2 Certificate, X509Certificate2 Ca)? Load(ClusterTlsSettings settings)
    {
        if (settings.Problem() is { } problem)
        {
            throw new InvalidOperationException(problem);
        }
        if (!settings.Enabled)
        {
            return null;
        }
        var certificate = X509Certificate2.CreateFromPemFile(settings.CertificatePath!, settings.KeyPath);
        var ca = X509Certificate2.CreateFromPem(File.ReadAllText(settings.CaPath!));
        return (certificate, ca);
    }

    private static void Configure(TlsOptions options, X509Certificate2 ca, ClusterTlsSettings settings)
    {
        options.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
        options.ClientCertificateMode = RemoteCertificateMode.RequireCertificate;
        options.HandshakeTimeout = settings.HandshakeTimeout;
        options.RemoteCertificateValidation = (certificate, _, _) => certificate is not null && CaTrust.ChainsTo(certificate, ca);
    }
}
