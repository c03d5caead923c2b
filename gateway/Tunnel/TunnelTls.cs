using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using OrleansTunnel.Gateway.Ingress;

namespace OrleansTunnel.Gateway.Tunnel;

/// <summary>TLS of the tunnel endpoint, optionally mutual (agent client certificates from a given CA).</summary>
public static class TunnelTls
{
    /// <summary>The tunnel listener's TLS options; the certificate is reloaded when its files change.</summary>
    public static HttpsConnectionAdapterOptions ServerOptions(GatewayOptions o) => ServerOptions(o, out _);

    public static HttpsConnectionAdapterOptions ServerOptions(GatewayOptions o, out ReloadingCertificate certificate)
    {
        if (string.IsNullOrWhiteSpace(o.TunnelCertificatePath) && string.IsNullOrWhiteSpace(o.CertificatePath))
        {
            throw new Microsoft.Extensions.Options.OptionsValidationException(nameof(GatewayOptions), typeof(GatewayOptions),
                [$"Gateway:Tunnel '{o.Tunnel}' is https:// but no certificate is set; give Gateway:TunnelCertificatePath (and Gateway:TunnelCertificateKeyPath), or Gateway:CertificatePath to share the ingress certificate"]);
        }
        var certificateOptions = string.IsNullOrWhiteSpace(o.TunnelCertificatePath)
            ? o
            : new GatewayOptions { CertificatePath = o.TunnelCertificatePath, CertificateKeyPath = o.TunnelCertificateKeyPath, CertificatePassword = o.CertificatePassword };
        var reloading = new ReloadingCertificate(() => IngressCertificate.Load(certificateOptions),
            [certificateOptions.CertificatePath, certificateOptions.CertificateKeyPath], "tunnel", o.CertificateCheckInterval);
        certificate = reloading;
        var options = new HttpsConnectionAdapterOptions { ServerCertificateSelector = (_, _) => reloading.Current };
        if (!string.IsNullOrWhiteSpace(o.TunnelClientCaPath))
        {
            var ca = X509Certificate2.CreateFromPem(File.ReadAllText(o.TunnelClientCaPath));
            options.ClientCertificateMode = ClientCertificateMode.RequireCertificate;
            options.ClientCertificateValidation = (certificate, _, _) => ChainsTo(certificate, ca);
        }
        return options;
    }

    /// <summary>True when the certificate chains to the given CA (and only to it).</summary>
    public static bool ChainsTo(X509Certificate2 certificate, X509Certificate2 ca) => OrleansTunnel.Mux.CaTrust.ChainsTo(certificate, ca);

    /// <summary>Whether a client certificate names the agent (common name or a DNS name).</summary>
    public static bool Names(X509Certificate2 certificate, string agentId) =>
        string.Equals(certificate.GetNameInfo(X509NameType.SimpleName, false), agentId, StringComparison.Ordinal)
        || string.Equals(certificate.GetNameInfo(X509NameType.DnsName, false), agentId, StringComparison.Ordinal);
}
