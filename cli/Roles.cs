using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using OrleansTunnel.Agent;
using OrleansTunnel.Gateway;
using OrleansTunnel.Gateway.Telemetry;
using OrleansTunnel.Silo;
using OrleansTunnel.Silo.Dashboard;

namespace OrleansTunnel.Cli;

/// <summary>Builds the hosts of each role from configuration: appsettings.json, OTUN_* environment, flags.</summary>
public static class Roles
{
    /// <summary>The logging category of ASP.NET Core's per-request hosting diagnostics (off unless configured).</summary>
    public const string HostingDiagnostics = "Microsoft.AspNetCore.Hosting.Diagnostics";

    /// <summary>A silo alone (it serves the Orleans gateway port that gateways connect to).</summary>
    public static WebApplication BuildSilo(IDictionary<string, string?> overrides)
    {
        var builder = CreateBuilder(overrides);
        builder.AddTunnelSilo();
        var settings = builder.Configuration.GetSection(ClusterSettings.Section).Get<ClusterSettings>() ?? new ClusterSettings();
        builder.WebHost.ConfigureKestrel(k => GatewayHosting.Listen(k, settings.Admin, "admin", HttpProtocols.Http1));
        ListenDashboard(builder, settings);
        RoleMetrics.Add(builder, "otun-silo", GatewayTelemetryHosting.OrleansMeterName);
        var app = builder.Build();
        // The dashboard's own check (MapTunnelDashboard) names its listener.
        app.UseHostAllowList(settings.AdminHosts, "silo admin", "Cluster:AdminHosts",
            context => !context.Request.Path.StartsWithSegments(DashboardHosting.RoutePrefix, StringComparison.Ordinal));
        RoleMetrics.Map(app, settings.Admin);
        // No listener tagging here: the dashboard answers only on its listener, and only the dashboard does.
        app.UseDashboardListenerSeparation();
        app.MapTunnelDashboard();
        var lifetime = app.Services.GetRequiredService<IHostApplicationLifetime>();
        app.MapGet("/healthz", () => Results.Text("ok\n"));
        // The silo host starts only after the silo joined the cluster, so "started" means "joined".
        app.MapGet("/readyz", () => lifetime.ApplicationStarted.IsCancellationRequested && !lifetime.ApplicationStopping.IsCancellationRequested
            ? Results.Text("ready\n")
            : Results.Text("not ready: the silo has not joined the cluster (or is leaving it)\n", statusCode: 503));
        return app;
    }

    /// <summary>
    /// A gateway; with <paramref name="withSilo"/> it also hosts the silo in the same process (dev
    /// mode), otherwise it joins the cluster as an Orleans client.
    /// </summary>
    public static WebApplication BuildGateway(IDictionary<string, string?> overrides, bool withSilo)
    {
        var builder = CreateBuilder(overrides);
        if (withSilo)
        {
            builder.AddTunnelSilo();
        }
        builder.AddTunnelGateway(joinAsClient: !withSilo);
        if (withSilo)
        {
            // The gateway's listener dispatch passes /dashboard on the "dashboard" listener to the endpoints.
            ListenDashboard(builder, builder.Configuration.GetSection(ClusterSettings.Section).Get<ClusterSettings>() ?? new ClusterSettings());
        }
        var app = builder.Build();
        app.MapTunnelGateway();
        app.MapTunnelDashboard();
        return app;
    }

    /// <summary>The silo's dashboard listener (Cluster:Dashboard), tagged "dashboard"; nothing when the dashboard is off.</summary>
    private static void ListenDashboard(WebApplicationBuilder builder, ClusterSettings settings)
    {
        if (!DashboardHosting.IsEnabled(settings))
        {
            return;
        }
        builder.WebHost.ConfigureKestrel(k =>
        {
            var listener = GatewayHosting.Listen(k, settings.Dashboard!, "dashboard", HttpProtocols.Http1);
            if (k.ApplicationServices.GetService<DashboardEndpoint>() is { } endpoint)
            {
                endpoint.Listener = listener;
            }
        });
    }

    /// <summary>An agent (no listener).</summary>
    public static IHost BuildAgent(IDictionary<string, string?> overrides)
    {
        var probe = new ConfigurationBuilder().AddEnvironmentVariables("OTUN_").AddInMemoryCollection(overrides).Build();
        string? admin = probe["Agent:Admin"];
        if (string.IsNullOrWhiteSpace(admin))
        {
            // The agent listens on no port unless health probes are asked for (Agent:Admin).
            var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = false, Args = [] });
            Configure(builder.Configuration, builder.Logging, overrides);
            builder.AddTunnelAgent();
            return builder.Build();
        }
        var web = CreateBuilder(overrides);
        web.AddTunnelAgent();
        web.WebHost.ConfigureKestrel(k => GatewayHosting.Listen(k, admin, "admin", HttpProtocols.Http1));
        RoleMetrics.Add(web, "otun-agent", OrleansTunnel.Agent.Telemetry.AgentTelemetry.MeterName);
        var app = web.Build();
        app.UseHostAllowList(app.Configuration.GetSection("Agent:AdminHosts").Get<List<string>>() ?? [], "agent admin", "Agent:AdminHosts");
        RoleMetrics.Map(app, admin);
        var status = app.Services.GetRequiredService<AgentStatus>();
        app.MapGet("/healthz", () => Results.Text("ok\n"));
        app.MapGet("/readyz", () => status.Tunnels.Count > 0
            ? Results.Text($"ready: {status.Tunnels.Count} tunnel(s) up\n")
            : Results.Text("not ready: no tunnel to a gateway is up\n", statusCode: 503));
        return app;
    }

    private static WebApplicationBuilder CreateBuilder(IDictionary<string, string?> overrides)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        Configure(builder.Configuration, builder.Logging, overrides);
        // Kestrel is configured by the roles; do not also bind ASPNETCORE_URLS defaults.
        builder.WebHost.UseSetting("urls", "");
        return builder;
    }

    private static void Configure(ConfigurationManager configuration, ILoggingBuilder logging, IDictionary<string, string?> overrides)
    {
        logging.Services.AddSingleton<IHostLifetime, ManualLifetime>();
        configuration.AddEnvironmentVariables("OTUN_");
        configuration.AddInMemoryCollection(overrides);
        logging.ClearProviders();
        logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
            o.ColorBehavior = LoggerColorBehavior.Disabled;
        });
        logging.AddConfiguration(configuration.GetSection("Logging"));
        logging.SetMinimumLevel(LogLevel.Information);
        logging.AddFilter("Microsoft", LogLevel.Warning);
        logging.AddFilter("Orleans", LogLevel.Warning);
        logging.AddFilter("Polly", LogLevel.Warning);
        logging.AddFilter("Grpc", LogLevel.Warning);
        logging.AddFilter("System.Net.Http", LogLevel.Warning);
        if (configuration[$"Logging:LogLevel:{HostingDiagnostics}"] is null)
        {
            // ASP.NET Core's hosting opens a logging scope and starts an Activity for every request while this
            // category is enabled at any level, only for its "Request starting/finished" lines (Information,
            // filtered out above) and scopes the console does not print: ~0.7 KB and two AsyncLocal writes
            // per request for nothing. The gateway's spans parse the visitor's traceparent themselves.
            logging.AddFilter(HostingDiagnostics, LogLevel.None);
        }
        logging.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
    }
}
