using System.Net;
using System.Net.Sockets;

namespace OrleansTunnel.Tests.Infrastructure;

/// <summary>Free loopback ports, for servers whose port must be known before they start.</summary>
public static class Ports
{
    private static int _next = 20000 + (Environment.ProcessId % 2000) * 10;

    public static int Free()
    {
        // Walk a per-process range so two parallel test processes do not race for the same port.
        while (true)
        {
            int candidate = Interlocked.Increment(ref _next);
            if (candidate > 60000)
            {
                Interlocked.Exchange(ref _next, 20000);
                continue;
            }
            try
            {
                using var listener = new TcpListener(IPAddress.Loopback, candidate);
                listener.Start();
                return candidate;
            }
            catch (SocketException)
            {
            }
        }
    }

    /// <summary>A port nothing listens on (connections to it are refused).</summary>
    public static int Closed() => Free();
}
