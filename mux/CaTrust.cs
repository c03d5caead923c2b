using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace OrleansTunnel.Mux;

/// <summary>Trusting a private CA (given as a PEM file) for TLS peers, instead of the system's store.</summary>
public static class CaTrust
{
    /// <summary>True when the certificate chains to the given CA (and only to it).</summary>
    public static bool ChainsTo(X509Certificate2 certificate, X509Certificate2 ca)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationFlags = X509VerificationFlags.NoFlag;
        return chain.Build(certificate);
    }

    /// <summary>
    /// A server-certificate check for <see cref="SslClientAuthenticationOptions.RemoteCertificateValidationCallback"/>:
    /// what the system trusts passes; otherwise the certificate must chain to the CA in <paramref name="caPemFile"/>
    /// and (unless <paramref name="allowNameMismatch"/>) name the host dialled.
    /// </summary>
    public static RemoteCertificateValidationCallback Validator(string caPemFile, bool allowNameMismatch = false)
    {
        var ca = X509Certificate2.CreateFromPem(File.ReadAllText(caPemFile));
        return (_, certificate, _, errors) =>
        {
            if (errors == SslPolicyErrors.None)
            {
                return true;
            }
            if (certificate is null || (!allowNameMismatch && (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0))
            {
                return false;
            }
            return ChainsTo(certificate as X509Certificate2 ?? new X509Certificate2(certificate), ca);
        };
    }
}
