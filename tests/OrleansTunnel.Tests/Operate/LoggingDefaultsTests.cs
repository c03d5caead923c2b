using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OrleansTunnel.Cli;
using Xunit;

namespace OrleansTunnel.Tests.Operate;

/// <summary>
/// ASP.NET Core's hosting opens a logging scope and starts an Activity per request whenever its diagnostics
/// category is enabled at any level: every role turns that category off unless the operator configures it.
/// </summary>
public sealed class LoggingDefaultsTests
{
    private static ILogger HostingLogger(Dictionary<string, string?> overrides, out IHost host)
    {
        overrides["Agent:AgentId"] = "logging-test";
        overrides["Agent:Token"] = "token";
        overrides["Agent:Gateways:0"] = "http://127.0.0.1:1";
        host = Roles.BuildAgent(overrides);
        return host.Services.GetRequiredService<ILoggerFactory>().CreateLogger(Roles.HostingDiagnostics);
    }

    [Fact]
    public void HostingDiagnostics_AreOffByDefault_WhileTheProductsOwnWarningsStayOn()
    {
        var logger = HostingLogger(new(StringComparer.OrdinalIgnoreCase), out var host);
        using (host)
        {
            Assert.False(logger.IsEnabled(LogLevel.Critical));
            var own = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("OrleansTunnel.Gateway.Ingress.ResponseRelay");
            Assert.True(own.IsEnabled(LogLevel.Warning));
            Assert.True(host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Microsoft.AspNetCore.Server.Kestrel").IsEnabled(LogLevel.Warning));
        }
    }

    [Fact]
    public void AnOperatorsLevelForHostingDiagnostics_Wins()
    {
        var logger = HostingLogger(new(StringComparer.OrdinalIgnoreCase) { [$"Logging:LogLevel:{Roles.HostingDiagnostics}"] = "Information" }, out var host);
        using (host)
        {
            Assert.True(logger.IsEnabled(LogLevel.Information));
        }
    }
}
