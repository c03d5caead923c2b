using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Dashboard;
using Orleans.Hosting;

namespace OrleansTunnel.Silo.Dashboard;

/// <summary>
/// The Orleans dashboard (package Microsoft.Orleans.Dashboard), served by a silo on its own listener
/// (<see cref="ClusterSettings.Dashboard"/>) under <see cref="RoutePrefix"/>, never on the ingress.
/// </summary>
/// <remarks>
/// <para>
/// Cost: the dashboard adds an incoming grain-call filter (its profiler) that times every grain call.
/// Measured with the profiler on, it costs 10-20 % of grain-call throughput. It is on only while the
/// dashboard is being looked at: <see cref="GrainProfilerOptions.TraceAlways"/> stays false, and the
/// profiler switches itself off <see cref="GrainProfilerOptions.DeactivationTime"/> (1 minute) after
/// the last dashboard query. With the dashboard unconfigured (the default outside dev mode), none
/// of it is registered and grain calls pay nothing.
/// </para>
/// <para>
/// Memory: the package reads all its embedded web assets when its endpoints are mapped (about 70 MB
/// resident, measured on `otun dev`: 224 MB idle with them, 150 MB without). They are mapped on the
/// first request under <see cref="RoutePrefix"/>, so that first page takes a moment longer and a node
/// whose dashboard is never opened never pays for them.
/// </para>
/// <para>
/// The dashboard has no authentication. It shows grain types, activation counts, silo statistics,
/// the silo's log stream and grain state, so bind it to loopback or an internal network only.
/// </para>
/// </remarks>
public static class DashboardHosting
{
    /// <summary>Path under which the dashboard is served (its single-page app and its JSON API).</summary>
    public const string RoutePrefix = "/dashboard";

    /// <summary>Whether the settings turn the dashboard on (a non-empty <see cref="ClusterSettings.Dashboard"/>).</summary>
    public static bool IsEnabled(ClusterSettings settings) => !string.IsNullOrWhiteSpace(settings.Dashboard);

    /// <summary>Adds the dashboard's silo services (grain service, profiler, counters) when it is enabled.</summary>
    public static ISiloBuilder AddTunnelDashboard(this ISiloBuilder silo, ClusterSettings settings)
    {
        if (!IsEnabled(settings))
        {
            return silo;
        }
        silo.AddDashboard(o =>
        {
            o.CounterUpdateIntervalMs = 1000;
            o.HistoryLength = 100;
        });
        // Profile grain calls only while someone looks at the dashboard (see the remarks above).
        silo.Services.Configure<GrainProfilerOptions>(o =>
        {
            o.TraceAlways = false;
            o.DeactivationTime = TimeSpan.FromMinutes(1);
        });
        silo.Services.AddSingleton<DashboardEndpoint>();
        return silo;
    }

    /// <summary>
    /// Maps the dashboard under <see cref="RoutePrefix"/> when the silo in this host has it
    /// (<see cref="AddTunnelDashboard"/>). The caller decides which listener may reach it.
    /// </summary>
    public static WebApplication MapTunnelDashboard(this WebApplication app)
    {
        if (app.Services.GetService<DashboardEndpoint>() is not null)
        {
            // The dashboard has no login: at least a page under a rebound name must not read it.
            var hosts = app.Configuration.GetSection(ClusterSettings.Section).Get<ClusterSettings>()?.AdminHosts ?? [];
            app.UseHostAllowList(hosts, "dashboard", "Cluster:AdminHosts",
                context => context.Request.Path.StartsWithSegments(RoutePrefix, StringComparison.Ordinal));
            // Mapping the package's endpoints reads all its embedded web assets into memory (about 70 MB
            // resident, measured): build that branch on the first dashboard request instead, so a node
            // whose dashboard nobody opens does not carry it.
            var dashboard = new Lazy<RequestDelegate>(() => BuildDashboardBranch(app), LazyThreadSafetyMode.ExecutionAndPublication);
            app.Use((context, next) =>
            {
                if (!context.Request.Path.StartsWithSegments(RoutePrefix, StringComparison.Ordinal))
                {
                    return next(context);
                }
                // The host's own routing ran first and knows none of the dashboard's routes.
                context.SetEndpoint(null);
                context.Request.RouteValues.Clear();
                return dashboard.Value(context);
            });
        }
        return app;
    }

    private static RequestDelegate BuildDashboardBranch(WebApplication app)
    {
        var branch = ((IApplicationBuilder)app).New();
        branch.UseRouting();
        branch.UseEndpoints(endpoints => endpoints.MapOrleansDashboard(routePrefix: RoutePrefix));
        branch.Run(context =>
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        });
        return branch.Build();
    }

    /// <summary>
    /// For a host whose listeners are not otherwise separated (the standalone silo): requests that
    /// arrive on the dashboard listener reach only the dashboard, and the dashboard is reachable only
    /// on its listener.
    /// </summary>
    public static WebApplication UseDashboardListenerSeparation(this WebApplication app)
    {
        var endpoint = app.Services.GetService<DashboardEndpoint>();
        if (endpoint is null)
        {
            return app;
        }
        app.Use((context, next) =>
        {
            bool onDashboardListener = endpoint.Listener?.IPEndPoint is { } ep && context.Connection.LocalPort == ep.Port;
            bool dashboardPath = context.Request.Path.StartsWithSegments(RoutePrefix, StringComparison.Ordinal);
            if (onDashboardListener != dashboardPath)
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return Task.CompletedTask;
            }
            return next(context);
        });
        return app;
    }
}

/// <summary>The dashboard's Kestrel listener, once Kestrel is configured (null while the dashboard is off).</summary>
public sealed class DashboardEndpoint
{
    /// <summary>The listener (its <see cref="ListenOptions.IPEndPoint"/> carries the bound port after start).</summary>
    public ListenOptions? Listener { get; set; }

    /// <summary>The dashboard's URL, e.g. http://127.0.0.1:8090/dashboard; null before the listener is configured.</summary>
    public string? Url => Listener?.IPEndPoint is { } ep ? $"http://{ep}{DashboardHosting.RoutePrefix}" : null;
}
