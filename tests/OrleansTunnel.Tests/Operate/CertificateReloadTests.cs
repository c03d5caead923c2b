using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using OrleansTunnel.Gateway;
using OrleansTunnel.Gateway.Tunnel;
using OrleansTunnel.Tests.Deploy.Run;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Operate;

/// <summary>
/// Certificates renewed in place (cert-manager renews the Secret, the kubelet swaps the mounted
/// files through the "..data" symlink) are presented to new handshakes without a restart; a renewal
/// that cannot be loaded keeps the previous certificate.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class CertificateReloadTests : IDisposable
{
    private readonly string _mount = Path.Combine(Path.GetTempPath(), "otun-cert-reload-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly SecretPki _pki = new();
    private int _version;

    public CertificateReloadTests()
    {
        Directory.CreateDirectory(_mount);
        Publish(_pki.TlsSecret("reload.test", "localhost"));
        File.CreateSymbolicLink(Path.Combine(_mount, "tls.crt"), "..data/tls.crt");
        File.CreateSymbolicLink(Path.Combine(_mount, "tls.key"), "..data/tls.key");
    }

    private string Crt => Path.Combine(_mount, "tls.crt");

    private string Key => Path.Combine(_mount, "tls.key");

    /// <summary>Writes a new version folder and swaps "..data" to it at once, as the kubelet does.</summary>
    private void Publish(Dictionary<string, byte[]> files)
    {
        string version = $"..v{++_version}";
        Directory.CreateDirectory(Path.Combine(_mount, version));
        foreach (var (name, bytes) in files)
        {
            File.WriteAllBytes(Path.Combine(_mount, version, name), bytes);
        }
        string next = Path.Combine(_mount, "..data_tmp");
        File.CreateSymbolicLink(next, version);
        // rename(2) replaces the old link atomically (File.Move follows a link to a folder and refuses).
        if (Rename(next, Path.Combine(_mount, "..data")) != 0)
        {
            throw new IOException($"rename {next} failed: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "rename", SetLastError = true)]
    private static extern int Rename([System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string from,
        [System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string to);

    private static string Serial(Dictionary<string, byte[]> secret) =>
        X509Certificate2.CreateFromPem(System.Text.Encoding.ASCII.GetString(secret["tls.crt"])).SerialNumber;

    /// <summary>The serial number of the certificate the listener presents to a new handshake.</summary>
    private static string Presented(Uri listener)
    {
        using var tcp = new TcpClient();
        tcp.Connect(listener.Host, listener.Port);
        using var tls = new SslStream(tcp.GetStream(), false, (_, _, _, _) => true);
        tls.AuthenticateAsClient("reload.test");
        return new X509Certificate2(tls.RemoteCertificate!).SerialNumber;
    }

    [Fact]
    public async Task TheHttpsIngress_PresentsARenewedCertificate_WithoutARestart()
    {
        var first = _pki.TlsSecret("reload.test", "localhost");
        Publish(first);
        await using var h = await TunnelHarness.StartAsync(o =>
        {
            o.Gateway["Gateway:CertificatePath"] = Crt;
            o.Gateway["Gateway:CertificateKeyPath"] = Key;
            o.Gateway["Gateway:CertificateCheckInterval"] = "00:00:00.200";
        });
        Assert.Equal(Serial(first), Presented(h.HttpsIngress));

        var renewed = _pki.TlsSecret("reload.test", "localhost");
        Publish(renewed);
        await Eventually.TrueAsync(() => Presented(h.HttpsIngress) == Serial(renewed), TimeSpan.FromSeconds(30),
            "the HTTPS ingress kept presenting the old certificate after the files were renewed");

    }

    [Fact]
    public async Task TheTunnelListener_SelectsTheRenewedCertificate_AndKeepsTheLastGoodOneOverABrokenRenewal()
    {
        var first = _pki.TlsSecret("reload.test");
        Publish(first);
        var options = TunnelTls.ServerOptions(new GatewayOptions { TunnelCertificatePath = Crt, TunnelCertificateKeyPath = Key, CertificateCheckInterval = TimeSpan.FromMilliseconds(1) },
            out var certificate);
        string Selected() => options.ServerCertificateSelector!(null!, "reload.test")!.SerialNumber;
        Assert.Equal(Serial(first), Selected());

        var renewed = _pki.TlsSecret("reload.test");
        Publish(renewed);
        await Eventually.TrueAsync(() => Selected() == Serial(renewed), TimeSpan.FromSeconds(10), "the tunnel listener kept the old certificate");
        Assert.Equal(1, certificate.Reloads);

        // A renewal whose key does not match its certificate is not loaded: the last good one stays.
        var broken = _pki.TlsSecret("reload.test");
        broken["tls.key"] = _pki.TlsSecret("other.test")["tls.key"];
        Publish(broken);
        await Eventually.TrueAsync(() => Selected() is not null && certificate.FailedReloads > 0, TimeSpan.FromSeconds(10), "the broken renewal was never tried");
        Assert.Equal(Serial(renewed), Selected());
        var fixedAgain = _pki.TlsSecret("reload.test");
        Publish(fixedAgain);
        await Eventually.TrueAsync(() => Selected() == Serial(fixedAgain), TimeSpan.FromSeconds(10), "the good certificate after a broken one was not picked up");
    }

    public void Dispose()
    {
        _pki.Dispose();
        Directory.Delete(_mount, recursive: true);
    }
}
