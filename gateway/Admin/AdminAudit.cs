using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace OrleansTunnel.Gateway.Admin;

/// <summary>
/// The admin API's changes: a read-scope token may not make any (403), and every change made is written
/// to the audit log (category OrleansTunnel.Audit): who (the token's name), from where, what (method,
/// path and query; bodies are not logged, they may hold credentials) and the answer's status.
/// </summary>
public sealed partial class AdminAudit(ILoggerFactory loggers, Microsoft.Extensions.Options.IOptionsMonitor<GatewayOptions> options)
{
    private readonly ILogger _log = loggers.CreateLogger("OrleansTunnel.Audit");
    private readonly Lock _file = new();

    /// <summary>Anything but GET and HEAD changes something.</summary>
    public static bool IsChange(HttpRequest request) => !HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method);

    public async Task ChangeAsync(HttpContext context, AdminPrincipal who, IAdminEndpoint endpoint)
    {
        var request = context.Request;
        string source = context.Connection.RemoteIpAddress?.ToString() ?? "?";
        string what = request.Path.Value + request.QueryString.Value;
        if (who.Scope != AdminScopes.Full)
        {
            LogRefused(_log, who.Name, source, request.Method, what);
            Append(who, source, request.Method, what, StatusCodes.Status403Forbidden);
            await Results.Text($"otun admin: token '{who.Name}' is read-only (scope {who.Scope}); {request.Method} needs a token with scope full\n",
                statusCode: StatusCodes.Status403Forbidden).ExecuteAsync(context);
            return;
        }
        try
        {
            await endpoint.HandleAsync(context);
        }
        finally
        {
            LogChange(_log, who.Name, source, request.Method, what, context.Response.StatusCode);
            Append(who, source, request.Method, what, context.Response.StatusCode);
        }
    }

    /// <summary>One JSON line per change in Gateway:AuditLogPath, when set.</summary>
    private void Append(AdminPrincipal who, string source, string method, string target, int status)
    {
        if (options.CurrentValue.AuditLogPath is not { Length: > 0 } path)
        {
            return;
        }
        string line = System.Text.Json.JsonSerializer.Serialize(new { time = DateTimeOffset.UtcNow, token = who.Name, scope = who.Scope, source, method, target, status });
        try
        {
            lock (_file)
            {
                File.AppendAllText(path, line + "\n");
            }
        }
        catch (IOException ex)
        {
            LogFileFailed(_log, path, ex.Message);
        }
    }

    [LoggerMessage(EventId = 482, EventName = "AuditFileFailed", Level = LogLevel.Error,
        Message = "Could not append to the audit log {Path}: {Reason}. The change is in this log only; check the file's directory and permissions.")]
    private static partial void LogFileFailed(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 480, EventName = "AdminChange", Level = LogLevel.Information,
        Message = "Admin change by token '{Token}' from {Source}: {Method} {Target} -> {Status}")]
    private static partial void LogChange(ILogger logger, string token, string source, string method, string target, int status);

    [LoggerMessage(EventId = 481, EventName = "AdminChangeRefused", Level = LogLevel.Warning,
        Message = "Admin change refused: token '{Token}' from {Source} is read-only: {Method} {Target} -> 403")]
    private static partial void LogRefused(ILogger logger, string token, string source, string method, string target);
}
