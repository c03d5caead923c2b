using System.Diagnostics;
using System.Net.Sockets;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.L4;

/// <summary>A real OpenSSH server (sshd) on a loopback port with key authentication, in its own temporary directory.</summary>
public sealed class SshServer : IAsyncDisposable
{
    private Process? _process;

    public int Port { get; } = Ports.Free();

    public string Directory { get; } = Path.Combine(Path.GetTempPath(), "otun-sshd-" + Guid.NewGuid().ToString("N")[..8]);

    public string UserKey => Path.Combine(Directory, "user_key");

    public static async Task<SshServer> StartAsync()
    {
        var server = new SshServer();
        System.IO.Directory.CreateDirectory(server.Directory);
        string keygen = Tool.Require("ssh-keygen", "openssh-client");
        string sshd = Tool.Require("sshd", "openssh-server");
        foreach (var key in new[] { "host_key", "user_key" })
        {
            var (exit, _, err) = await Tool.RunAsync(keygen, ["-q", "-t", "ed25519", "-N", "", "-f", Path.Combine(server.Directory, key)], TimeSpan.FromSeconds(30));
            Assert.True(exit == 0, "ssh-keygen failed: " + err);
        }
        File.Copy(server.UserKey + ".pub", Path.Combine(server.Directory, "authorized_keys"));
        // sshd's privilege separation directory (absent in containers that never ran the service).
        System.IO.Directory.CreateDirectory("/run/sshd");
        string config = Path.Combine(server.Directory, "sshd_config");
        File.WriteAllLines(config,
        [
            $"Port {server.Port}", "ListenAddress 127.0.0.1", $"HostKey {server.Directory}/host_key",
            $"AuthorizedKeysFile {server.Directory}/authorized_keys", "PubkeyAuthentication yes", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password",
            $"PidFile {server.Directory}/sshd.pid", "LogLevel ERROR", "Subsystem sftp internal-sftp",
        ]);
        // sshd must be started by its absolute path; -D: stay in the foreground (the test owns the process), -e: log to stderr.
        var start = new ProcessStartInfo(sshd) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "-D", "-e", "-f", config })
        {
            start.ArgumentList.Add(a);
        }
        server._process = Process.Start(start)!;
        server._process.BeginErrorReadLine();
        server._process.BeginOutputReadLine();
        await L4Waits.UntilAcceptingAsync(server.Port, () => server._process.HasExited ? "sshd exited at start" : null);
        return server;
    }

    /// <summary>ssh/scp options: this key only, no host key prompts, never interactive.</summary>
    public string[] ClientOptions(int port, string portFlag) =>
    [
        portFlag, port.ToString(), "-i", UserKey, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=30",
    ];

    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill();
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        _process?.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A real dnsmasq answering h0..h9.l4.test with 10.0.0.0..9 on a loopback UDP port.</summary>
public sealed class DnsServer : IAsyncDisposable
{
    private Process? _process;

    public int Port { get; } = Ports.Free();

    public static async Task<DnsServer> StartAsync()
    {
        var server = new DnsServer();
        string dnsmasq = Tool.Require("dnsmasq", "dnsmasq-base");
        var start = new ProcessStartInfo(dnsmasq) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "--keep-in-foreground", $"--port={server.Port}", "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
            $"--pid-file={Path.GetTempPath()}otun-dnsmasq-{server.Port}.pid", "--cache-size=0" }.Concat(Enumerable.Range(0, 10).Select(i => $"--host-record=h{i}.l4.test,10.0.0.{i}")))
        {
            start.ArgumentList.Add(a);
        }
        server._process = Process.Start(start)!;
        server._process.BeginErrorReadLine();
        server._process.BeginOutputReadLine();
        string dig = Tool.Require("dig", "bind9-dnsutils");
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var (exit, output, _) = await Tool.RunAsync(dig, ["@127.0.0.1", "-p", server.Port.ToString(), "+short", "+time=1", "+tries=1", "h1.l4.test"], TimeSpan.FromSeconds(30));
            if (exit == 0 && output.Trim() == "10.0.0.1")
            {
                return server;
            }
            if (server._process.HasExited || deadline.Elapsed > TimeSpan.FromSeconds(30))
            {
                throw new InvalidOperationException($"dnsmasq did not answer on port {server.Port} (exited: {server._process.HasExited})");
            }
            await Task.Delay(100);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill();
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        _process?.Dispose();
    }
}

public static class L4Waits
{
    /// <summary>Waits until a loopback port accepts connections (a server's own readiness signal).</summary>
    public static async Task UntilAcceptingAsync(int port, Func<string?> failed)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await probe.ConnectAsync(System.Net.IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
            }
            if (failed() is { } why)
            {
                throw new InvalidOperationException(why);
            }
            if (deadline.Elapsed > TimeSpan.FromSeconds(30))
            {
                throw new TimeoutException($"nothing accepted connections on port {port} within 30 s");
            }
            await Task.Delay(50);
        }
    }
}
