using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Identity;

/// <summary>
/// Resolves an oidc route's client secret on this gateway: Identity:ClientSecret as given, or
/// Identity:ClientSecretRef ("env:NAME" or "file:/path") read here, at each sign-in, so a rotated
/// Kubernetes Secret is picked up without a restart and the secret never enters the cluster's state.
/// A reference that cannot be read is logged once (until it resolves again) and counted; never the value.
/// </summary>
public sealed class ClientSecrets(ILogger<ClientSecrets> logger)
{
    public const string EnvPrefix = "env:", FilePrefix = "file:";

    private readonly ConcurrentDictionary<string, string> _failing = new(StringComparer.Ordinal);
    private long _unresolved;

    /// <summary>Sign-ins refused because a ClientSecretRef could not be read on this gateway.</summary>
    public long Unresolved => Interlocked.Read(ref _unresolved);

    /// <summary>The secret, or null with <paramref name="problem"/> saying which reference failed and why (no secret value in it).</summary>
    public string? Resolve(RouteIdentity identity, out string? problem)
    {
        problem = null;
        if (identity.ClientSecretRef is not { Length: > 0 } reference)
        {
            return identity.ClientSecret;
        }
        string? secret = Read(reference, Environment.GetEnvironmentVariable, out problem);
        if (secret is null)
        {
            Interlocked.Increment(ref _unresolved);
            if (_failing.TryAdd(reference, problem!))
            {
                logger.LogError("Identity:ClientSecretRef {Reference} cannot be resolved on this gateway: {Problem}; sign-ins on routes using it answer 503 until it can", reference, problem);
            }
            return null;
        }
        if (_failing.TryRemove(reference, out _))
        {
            logger.LogInformation("Identity:ClientSecretRef {Reference} resolves again on this gateway", reference);
        }
        return secret;
    }

    /// <summary>Reads a reference (the environment lookup is a parameter for tests); null with the problem when it cannot.</summary>
    public static string? Read(string reference, Func<string, string?> environment, out string? problem)
    {
        problem = null;
        if (reference.StartsWith(EnvPrefix, StringComparison.Ordinal))
        {
            string name = reference[EnvPrefix.Length..];
            string? value = environment(name);
            if (string.IsNullOrEmpty(value))
            {
                problem = $"the environment variable {name} is not set (or empty) on this gateway; set it on every gateway (e.g. from a Kubernetes Secret)";
                return null;
            }
            return value;
        }
        if (reference.StartsWith(FilePrefix, StringComparison.Ordinal))
        {
            string path = reference[FilePrefix.Length..];
            try
            {
                string value = File.ReadAllText(path).TrimEnd('\r', '\n');
                if (value.Length == 0)
                {
                    problem = $"the file {path} is empty on this gateway; put the client secret in it";
                    return null;
                }
                return value;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                problem = $"the file {path} cannot be read on this gateway ({ex.GetType().Name}); mount the secret there on every gateway (see the chart's gateway.oidcSecrets)";
                return null;
            }
        }
        problem = $"'{reference}' is neither env:NAME nor file:/path";
        return null;
    }

    /// <summary>What is wrong with the form of a reference (validation, before any gateway reads it), or null.</summary>
    public static string? FormProblem(string reference)
    {
        if (reference.StartsWith(EnvPrefix, StringComparison.Ordinal))
        {
            string name = reference[EnvPrefix.Length..];
            return name.Length > 0 && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_')
                ? null
                : $"Identity:ClientSecretRef '{reference}' must name an environment variable (letters, digits, _), e.g. env:OTUN_OIDC_SECRET";
        }
        if (reference.StartsWith(FilePrefix, StringComparison.Ordinal))
        {
            return Path.IsPathFullyQualified(reference[FilePrefix.Length..])
                ? null
                : $"Identity:ClientSecretRef '{reference}' must name an absolute path, e.g. file:/var/run/secrets/otun/client-secret";
        }
        return $"Identity:ClientSecretRef '{reference}' has an unknown scheme; use env:NAME (an environment variable of each gateway) or file:/path (e.g. a mounted Kubernetes Secret)";
    }
}
