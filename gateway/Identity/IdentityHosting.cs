using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authentication.OpenIdConnect;
using Microsoft.AspNetCore.DataProtection;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace OrleansTunnel.Gateway.Identity;

/// <summary>Services of OIDC and JWT visitor access: authentication without fixed schemes, the cluster's key ring, the gate.</summary>
public static class IdentityHosting
{
    public static IServiceCollection AddTunnelIdentity(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<IdentityAccessOptions>().Bind(configuration.GetSection(IdentityAccessOptions.Section))
            .Validate(o => o.KeyLifetime >= TimeSpan.FromDays(7), "Gateway:Identity:KeyLifetime must be at least 7.00:00:00 (Data Protection's minimum)")
            .Validate(o => o.JwksRefreshInterval >= TimeSpan.FromSeconds(1), "Gateway:Identity:JwksRefreshInterval must be at least 00:00:01")
            .Validate(o => o.JwksCacheLifetime >= TimeSpan.FromMinutes(5), "Gateway:Identity:JwksCacheLifetime must be at least 00:05:00")
            .ValidateOnStart();
        var settings = configuration.GetSection(IdentityAccessOptions.Section).Get<IdentityAccessOptions>() ?? new IdentityAccessOptions();
        var keyLifetime = settings.KeyLifetime;
        // Schemes are added at run time (IdentitySchemes); no default scheme: only the gate authenticates.
        services.AddAuthentication();
        var dataProtection = services.AddDataProtection().SetApplicationName("OrleansTunnel.VisitorSessions").SetDefaultKeyLifetime(keyLifetime < TimeSpan.FromDays(7) ? TimeSpan.FromDays(7) : keyLifetime);
        if (KeyCertificate(settings) is { } certificate)
        {
            dataProtection.ProtectKeysWithCertificate(certificate).UnprotectKeysWithAnyCertificate(certificate);
        }
        services.AddSingleton<IConfigureOptions<KeyManagementOptions>>(sp => new ConfigureOptions<KeyManagementOptions>(o => o.XmlRepository = new GrainXmlRepository(sp)));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<OpenIdConnectOptions>, OpenIdConnectPostConfigureOptions>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<CookieAuthenticationOptions>, PostConfigureCookieAuthenticationOptions>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<JwtBearerOptions>, JwtBearerPostConfigureOptions>());
        services.AddSingleton<IdentitySchemes>();
        services.AddSingleton<IdentitySchemeOptions>();
        services.AddSingleton<IConfigureOptions<OpenIdConnectOptions>>(sp => sp.GetRequiredService<IdentitySchemeOptions>());
        services.AddSingleton<IConfigureOptions<CookieAuthenticationOptions>>(sp => sp.GetRequiredService<IdentitySchemeOptions>());
        services.AddSingleton<IConfigureOptions<JwtBearerOptions>>(sp => sp.GetRequiredService<IdentitySchemeOptions>());
        services.AddSingleton<ClientSecrets>();
        services.AddSingleton<IdentityGate>();
        return services;
    }

    /// <summary>The key-encryption certificate of Gateway:Identity:KeyCertificatePath, or null when not set; a bad one stops the start with the key named.</summary>
    private static System.Security.Cryptography.X509Certificates.X509Certificate2? KeyCertificate(IdentityAccessOptions settings)
    {
        if (string.IsNullOrWhiteSpace(settings.KeyCertificatePath))
        {
            return null;
        }
        try
        {
            var certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(settings.KeyCertificatePath, settings.KeyCertificateKeyPath);
            if (certificate.GetRSAPrivateKey() is null)
            {
                throw new InvalidOperationException("it is not an RSA certificate with its private key");
            }
            return certificate;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException or InvalidOperationException)
        {
            throw new OptionsValidationException(IdentityAccessOptions.Section, typeof(IdentityAccessOptions),
                [$"Gateway:Identity:KeyCertificatePath '{settings.KeyCertificatePath}' (with KeyCertificateKeyPath '{settings.KeyCertificateKeyPath}') cannot be used: {ex.Message}; give a PEM RSA certificate and its PEM private key, the same on every gateway"]);
        }
    }
}
