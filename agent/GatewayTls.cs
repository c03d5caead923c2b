using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace OrleansTunnel.Agent;

/// <summary>TLS towards https:// gateways: trust (system, a given CA, or none for tests) and the client certificate.</summary>
internal static class GatewayTls
{
    public static SocketsHttpHandler Configure(SocketsHttpHandler handler, AgentOptions o)
    {
        if (o.GatewaySkipCertificateValidation)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        }
        else if (!string.IsNullOrEmpty(o.GatewayCaFile))
        {
            handler.SslOptions.RemoteCertificateValidationCallback = OrleansTunnel.Mux.CaTrust.Validator(o.GatewayCaFile);
        }
        if (!string.IsNullOrEmpty(o.ClientCertificatePath))
        {
            var pem = X509Certificate2.CreateFromPemFile(o.ClientCertificatePath, o.ClientCertificateKeyPath);
            // SslStream wants a key it can use on every platform: round-trip through PKCS#12.
            var certificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
            handler.SslOptions.ClientCertificates = [certificate];
        }
        return handler;
    }
}
