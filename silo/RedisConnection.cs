using System.Security.Cryptography.X509Certificates;
using StackExchange.Redis;

namespace OrleansTunnel.Silo;

/// <summary>
/// TLS to Redis (configuration section Cluster:RedisTls), beside the password that goes in the
/// connection string (<c>password=</c>, and <c>user=</c> for an ACL user). Turn TLS on with <c>ssl=true</c>
/// in Cluster:Redis or by setting <see cref="CaPath"/>.
/// </summary>
public sealed class RedisTlsSettings
{
    /// <summary>PEM CA the Redis server's certificate must chain to (a private CA); empty: the system trust store.</summary>
    public string? CaPath { get; set; }

    /// <summary>PEM client certificate for a Redis with <c>tls-auth-clients yes</c> (its default); empty: none.</summary>
    public string? CertificatePath { get; set; }

    /// <summary>PEM private key of <see cref="CertificatePath"/>.</summary>
    public string? KeyPath { get; set; }

    /// <summary>What is wrong with the settings (naming the key), or null.</summary>
    public string? Problem()
    {
        if (string.IsNullOrWhiteSpace(CertificatePath) != string.IsNullOrWhiteSpace(KeyPath))
        {
            return "Cluster:RedisTls:CertificatePath and Cluster:RedisTls:KeyPath go together: set both or neither";
        }
        foreach (var (key, path) in new[] { ("CaPath", CaPath), ("CertificatePath", CertificatePath), ("KeyPath", KeyPath) })
        {
            if (!string.IsNullOrWhiteSpace(path) && !File.Exists(path))
            {
                return $"Cluster:RedisTls:{key} '{path}' does not exist";
            }
        }
        return null;
    }
}

/// <summary>The StackExchange.Redis options every Redis user of a node (clustering, grain storage) connects with.</summary>
public static class RedisConnection
{
    public static ConfigurationOptions Options(ClusterSettings settings)
    {
        var options = ConfigurationOptions.Parse(settings.Redis!);
        var tls = settings.RedisTls;
        if (tls.Problem() is { } problem)
        {
            throw new InvalidOperationException(problem);
        }
        if (!string.IsNullOrWhiteSpace(tls.CaPath))
        {
            options.Ssl = true;
            options.TrustIssuer(tls.CaPath);
        }
        if (!string.IsNullOrWhiteSpace(tls.CertificatePath))
        {
            options.Ssl = true;
            var certificate = X509Certificate2.CreateFromPemFile(tls.CertificatePath, tls.KeyPath);
            options.CertificateSelection += (_, _, _, _, _) => certificate;
        }
        return options;
    }
}
