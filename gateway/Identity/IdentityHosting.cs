using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authentication.OpenIdConnect;
using Microsoft.AspNetCore.DataProtection;
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
        var keyLifetime = configuration.GetSection(IdentityAccessOptions.Section).Get<IdentityAccessOptions>()?.KeyLifetime ?? TimeSpan.FromDays(90);
        // Schemes are added at run time (IdentitySchemes); no default scheme: only the gate authenticates.
        services.AddAuthentication();
        services.AddDataProtection().SetApplicationName("OrleansTunnel.VisitorSessions").SetDefaultKeyLifetime(keyLifetime < TimeSpan.FromDays(7) ? TimeSpan.FromDays(7) : keyLifetime);
        services.AddSingleton<IConfigureOptions<KeyManagementOptions>>(sp => new ConfigureOptions<KeyManagementOptions>(o => o.XmlRepository = new GrainXmlRepository(sp)));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<OpenIdConnectOptions>, OpenIdConnectPostConfigureOptions>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<CookieAuthenticationOptions>, PostConfigureCookieAuthenticationOptions>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<JwtBearerOptions>, JwtBearerPostConfigureOptions>());
        services.AddSingleton<IdentitySchemes>();
        services.AddSingleton<IdentitySchemeOptions>();
        services.AddSingleton<IConfigureOptions<OpenIdConnectOptions>>(sp => sp.GetRequiredService<IdentitySchemeOptions>());
        services.AddSingleton<IConfigureOptions<CookieAuthenticationOptions>>(sp => sp.GetRequiredService<IdentitySchemeOptions>());
        services.AddSingleton<IConfigureOptions<JwtBearerOptions>>(sp => sp.GetRequiredService<IdentitySchemeOptions>());
        services.AddSingleton<IdentityGate>();
        return services;
    }
}
