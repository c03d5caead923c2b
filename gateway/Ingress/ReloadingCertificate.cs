using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>
/// A server certificate loaded from files and reloaded when they change: cert-manager renews a
/// Secret in place and the kubelet swaps the mounted files, so a gateway must not keep the first
/// certificate until it restarts. TLS handshakes ask for <see cref="Current"/>; at most once per
/// Gateway:CertificateCheckInterval that compares the files' modification times and sizes and loads
/// them again when they differ. A renewal that cannot be loaded yet (half written) keeps the
/// previous certificate, is logged, and is tried again at the next check.
/// </summary>
public sealed partial class ReloadingCertificate
{
    private readonly Func<X509Certificate2> _load;
    private readonly string[] _files;
    private readonly string _what;
    private readonly TimeSpan _interval;
    private readonly TimeProvider _time;
    private readonly object _gate = new();
    private ILogger? _logger;
    private X509Certificate2 _current;
    private string _stamp;
    private long _nextCheck;

    /// <param name="load">Loads the certificate (throws a clear error when it cannot).</param>
    /// <param name="files">The files it is loaded from.</param>
    /// <param name="what">What it is, for logs (e.g. "ingress", "tunnel").</param>
    /// <param name="interval">How often a handshake may check the files; zero or less: never reload.</param>
    public ReloadingCertificate(Func<X509Certificate2> load, IEnumerable<string?> files, string what, TimeSpan interval, TimeProvider? time = null)
    {
        _load = load;
        _files = [.. files.Where(f => !string.IsNullOrWhiteSpace(f)).Select(f => f!)];
        _what = what;
        _interval = interval;
        _time = time ?? TimeProvider.System;
        _stamp = Stamp();
        _current = load();
        _nextCheck = _time.GetTimestamp() + Ticks(interval);
    }

    /// <summary>Certificates loaded after the first.</summary>
    public long Reloads { get; private set; }

    /// <summary>Changed files that could not be loaded (the previous certificate stayed).</summary>
    public long FailedReloads { get; private set; }

    /// <summary>Logs reloads and failed reloads from now on (Kestrel's options are built before the logger exists).</summary>
    public void UseLogger(ILogger logger) => _logger = logger;

    /// <summary>The certificate to present now (a renewal on disk is picked up within the check interval).</summary>
    public X509Certificate2 Current
    {
        get
        {
            if (_interval <= TimeSpan.Zero || _time.GetTimestamp() < Volatile.Read(ref _nextCheck))
            {
                return Volatile.Read(ref _current);
            }
            lock (_gate)
            {
                if (_time.GetTimestamp() >= _nextCheck)
                {
                    _nextCheck = _time.GetTimestamp() + Ticks(_interval);
                    Check();
                }
                return _current;
            }
        }
    }

    private void Check()
    {
        string stamp = Stamp();
        if (stamp == _stamp)
        {
            return;
        }
        try
        {
            var renewed = _load();
            Volatile.Write(ref _current, renewed);
            _stamp = stamp;
            Reloads++;
            if (_logger is not null)
            {
                LogReloaded(_logger, _what, renewed.Subject, renewed.NotAfter.ToUniversalTime());
            }
        }
        catch (Exception ex)
        {
            FailedReloads++;
            if (_logger is not null)
            {
                LogReloadFailed(_logger, _what, ex.Message);
            }
        }
    }

    /// <summary>Modification time and size of every file (following symlinks, as Kubernetes mounts them).</summary>
    private string Stamp() => string.Join("|", _files.Select(f =>
    {
        // FileInfo describes a symlink itself: follow it to the file (through Kubernetes' "..data" link).
        var link = new FileInfo(f);
        var info = link.LinkTarget is null ? link : link.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? link;
        return info.Exists ? $"{info.FullName}:{info.LastWriteTimeUtc.Ticks}:{info.Length}" : "missing";
    }));

    private long Ticks(TimeSpan interval) => (long)(interval.TotalSeconds * _time.TimestampFrequency);

    [LoggerMessage(EventId = 150, EventName = "CertificateReloaded", Level = LogLevel.Information,
        Message = "The {What} certificate files changed: new handshakes now present '{Subject}' (valid until {NotAfter:u}).")]
    private static partial void LogReloaded(ILogger logger, string what, string subject, DateTime notAfter);

    [LoggerMessage(EventId = 151, EventName = "CertificateReloadFailed", Level = LogLevel.Warning,
        Message = "The {What} certificate files changed but could not be loaded ({Error}); still presenting the previous certificate and trying again at the next check. Check the files (certificate and key must match).")]
    private static partial void LogReloadFailed(ILogger logger, string what, string error);
}
