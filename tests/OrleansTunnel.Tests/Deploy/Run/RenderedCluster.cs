using System.Net;
using System.Text;
using System.Text.Json;
using OrleansTunnel.Tests.Infrastructure;
using static OrleansTunnel.Tests.Deploy.Manifests;

namespace OrleansTunnel.Tests.Deploy.Run;

/// <summary>
/// A rendered release run on this machine as a cluster would run it: a pod per replica of every
/// Deployment and StatefulSet (StatefulSet pods named and labelled by ordinal), each in its own
/// network namespace; Services on nginx at addresses of their own (headless ones only in DNS);
/// cluster DNS as each pod's /etc/hosts. Pods start in dependency order (Redis, silos, gateways,
/// agents), each awaited through its own readiness probe, as crash-looping pods would settle.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class RenderedCluster : IAsyncDisposable
{
    private readonly List<PodProcess> _processes = [];
    private readonly Dictionary<string, IPAddress> _dns = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _serviceLinks = new(StringComparer.Ordinal);
    private NginxServices? _nginx;

    private RenderedCluster(Manifests manifests, RenderedObjects objects, PodNetwork network, string directory, string ns)
    {
        Manifests = manifests;
        Objects = objects;
        Network = network;
        Directory = directory;
        Namespace = ns;
    }

    public Manifests Manifests { get; }

    public RenderedObjects Objects { get; }

    public PodNetwork Network { get; }

    public string Directory { get; }

    public string Namespace { get; }

    public List<RenderedPod> Pods { get; } = [];

    /// <summary>Service name to its address (cluster IP; a load balancer's address too).</summary>
    public Dictionary<string, IPAddress> Services { get; } = new(StringComparer.Ordinal);

    public IEnumerable<PodProcess> Processes => _processes;

    public static async Task<RenderedCluster> StartAsync(Manifests manifests, IReadOnlyDictionary<string, Dictionary<string, byte[]>> externalSecrets,
        PodNetwork network, string directory, string ns, IReadOnlyDictionary<string, string> externalDns, IReadOnlyDictionary<string, IPAddress> extraDns)
    {
        var cluster = new RenderedCluster(manifests, new RenderedObjects(manifests, externalSecrets), network, directory, ns);
        try
        {
            await cluster.CreatePodsAsync();
            var ports = await cluster.CreateServicesAsync();
            // Public DNS (external addresses of LoadBalancer Services, the backend), resolvable everywhere.
            foreach (var (name, service) in externalDns)
            {
                cluster._dns[name] = cluster.Services[service];
            }
            foreach (var (name, address) in extraDns)
            {
                cluster._dns[name] = address;
            }
            cluster._nginx = await NginxServices.StartAsync(Path.Combine(directory, "nginx"), ports);
            foreach (var component in new[] { "redis", "silo", "gateway", "agent" })
            {
                var pods = cluster.Pods.Where(p => p.Component == component).ToList();
                foreach (var pod in pods)
                {
                    cluster.Start(pod);
                }
                await Task.WhenAll(pods.Select(cluster.ReadyAsync));
            }
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
        return cluster;
    }

    /// <summary>The hosts file of a pod (or of a machine outside the cluster when <paramref name="inCluster"/> is false).</summary>
    public string Hosts(bool inCluster = true)
    {
        var text = new StringBuilder("127.0.0.1 localhost\n::1 localhost\n");
        foreach (var (name, address) in _dns.Where(d => inCluster || !d.Key.Contains(".svc", StringComparison.Ordinal) && !d.Key.EndsWith("." + Namespace, StringComparison.Ordinal)
            && d.Key.Contains('.', StringComparison.Ordinal)))
        {
            text.Append(address).Append(' ').Append(name).Append('\n');
        }
        return text.ToString();
    }


    private async Task CreatePodsAsync()
    {
        foreach (var workload in Manifests.Workloads)
        {
            bool statefulSet = Str(workload, "kind") == "StatefulSet";
            int replicas = At(workload, "spec", "replicas")?.GetInt32() ?? 1;
            var template = At(workload, "spec", "template", "metadata", "labels")!.Value.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
            for (int i = 0; i < replicas; i++)
            {
                // StatefulSet pods are <name>-<ordinal>; Deployment pods get a generated suffix.
                string name = statefulSet ? $"{Name(workload)}-{i}" : $"{Name(workload)}-5d8f9c-{(char)('a' + i)}x{i}";
                var labels = new Dictionary<string, string>(template);
                if (statefulSet)
                {
                    labels["statefulset.kubernetes.io/pod-name"] = name;
                    labels["apps.kubernetes.io/pod-index"] = i.ToString(System.Globalization.CultureInfo.InvariantCulture);
                }
                var (netns, address) = await Network.AddPodAsync();
                Pods.Add(new RenderedPod(name, workload, labels, netns, address, Path.Combine(Directory, "pods", name)));
            }
        }
    }

    private async Task<List<ServicePort>> CreateServicesAsync()
    {
        var ports = new List<ServicePort>();
        foreach (var service in Manifests.OfKind("Service"))
        {
            string name = Name(service);
            var selector = At(service, "spec", "selector")!.Value.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
            var selected = Pods.Where(p => selector.All(s => p.Labels.TryGetValue(s.Key, out var v) && v == s.Value)).ToList();
            if (At(service, "spec", "clusterIP")?.GetString() == "None")
            {
                // Headless: only DNS, a name per pod of the StatefulSet that names this Service.
                foreach (var pod in selected.Where(p => At(p.Workload, "spec", "serviceName")?.GetString() == name))
                {
                    _dns[$"{pod.Name}.{name}.{Namespace}.svc"] = pod.Address;
                    _dns[$"{pod.Name}.{name}.{Namespace}.svc.cluster.local"] = pod.Address;
                }
                continue;
            }
            var address = await Network.AddServiceAddressAsync();
            Services[name] = address;
            foreach (var dnsName in new[] { name, $"{name}.{Namespace}", $"{name}.{Namespace}.svc", $"{name}.{Namespace}.svc.cluster.local" })
            {
                _dns[dnsName] = address;
            }
            string link = name.ToUpperInvariant().Replace('-', '_');
            var first = At(service, "spec", "ports")!.Value[0];
            _serviceLinks[link + "_SERVICE_HOST"] = address.ToString();
            _serviceLinks[link + "_SERVICE_PORT"] = first.GetProperty("port").ToString();
            _serviceLinks[link + "_PORT"] = $"tcp://{address}:{first.GetProperty("port")}";
            foreach (var port in At(service, "spec", "ports")!.Value.EnumerateArray())
            {
                var endpoints = selected.Select(p => new IPEndPoint(p.Address, p.PortOf(port.GetProperty("targetPort")))).ToList();
                if (endpoints.Count == 0)
                {
                    throw new InvalidOperationException($"Service {name} selects no pod");
                }
                ports.Add(new ServicePort(name, address, port.GetProperty("port").GetInt32(), endpoints));
            }
        }
        return ports;
    }

    private void Start(RenderedPod pod)
    {
        var env = pod.Environment(Namespace, Objects, _serviceLinks);
        var mounts = pod.WriteVolumes(Objects);
        var (uid, gid) = pod.User();
        _processes.Add(new PodProcess(pod.Name, pod.Netns, pod.Directory, Hosts(), mounts, Str(pod.Container, "workingDir") ?? "/",
            uid, gid, env, pod.Command(env)));
    }

    public PodProcess Process(string podName) => _processes.Single(p => p.Name == podName);

    /// <summary>Polls the pod's readiness probe (httpGet from the node, or exec in the pod's network) until it passes.</summary>
    public async Task ReadyAsync(RenderedPod pod)
    {
        var probe = At(pod.Container, "readinessProbe")!.Value;
        var process = Process(pod.Name);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(150);
        string last = "";
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"pod {pod.Name} exited before it was ready.\n{process.Tail()}");
            }
            if (probe.TryGetProperty("httpGet", out var get))
            {
                try
                {
                    using var response = await http.GetAsync($"http://{pod.Address}:{pod.PortOf(get.GetProperty("port"))}{Str(get, "path")}");
                    if (response.IsSuccessStatusCode)
                    {
                        return;
                    }
                    last = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    last = ex.Message;
                }
            }
            else
            {
                var env = pod.Environment(Namespace, Objects, _serviceLinks);
                var command = probe.GetProperty("exec").GetProperty("command").EnumerateArray().Select(x => x.GetString()!).ToList();
                var result = await ProcessRunner.RunAsync("ip", ["netns", "exec", pod.Netns, "env", .. env.Select(e => $"{e.Key}={e.Value}"), .. command],
                    "/", TimeSpan.FromSeconds(10));
                if (result.ExitCode == 0)
                {
                    return;
                }
                last = result.StandardOutput + result.StandardError;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(500));
        }
        throw new TimeoutException($"pod {pod.Name} never passed its readiness probe (last: {last}).\n{process.Tail()}");
    }

    /// <summary>Starts a process in a pod of its own (e.g. a machine outside the cluster).</summary>
    public async Task<PodProcess> StartOutsideAsync(string name, IReadOnlyList<PodMount> mounts, IReadOnlyDictionary<string, string> env, IReadOnlyList<string> command)
    {
        var (netns, _) = await Network.AddPodAsync();
        var process = new PodProcess(name, netns, Path.Combine(Directory, "outside", name), Hosts(inCluster: false), mounts, "/tmp", 10001, 10001,
            new Dictionary<string, string>(env) { ["PATH"] = "/usr/local/bin:/usr/bin:/bin", ["HOME"] = "/" }, command);
        _processes.Add(process);
        return process;
    }

    /// <summary>Runs a bare Pod (e.g. the `helm test` hook) to completion and returns its exit code.</summary>
    public async Task<int> RunToCompletionAsync(System.Text.Json.JsonElement pod, TimeSpan timeout)
    {
        var (netns, address) = await Network.AddPodAsync();
        var labels = At(pod, "metadata", "labels")!.Value.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
        var run = new RenderedPod(Name(pod), pod, labels, netns, address, Path.Combine(Directory, "pods", Name(pod)));
        Start(run);
        var process = Process(run.Name);
        int code = await process.WaitForExitAsync(timeout);
        if (code != 0)
        {
            throw new InvalidOperationException($"pod {run.Name} failed with exit code {code}.\n{process.Tail()}");
        }
        return code;
    }

    public string Logs => string.Join("\n", _processes.Select(p => p.Tail(25))) + "\n--- nginx ---\n" + _nginx?.ErrorLog;

    public async ValueTask DisposeAsync()
    {
        // Agents and gateways (and processes outside the cluster) first, then silos, then Redis: each tier
        // stopped at once (a gateway's SIGTERM drain takes its drainDelay; one after another they add up).
        static int Tier(PodProcess p) => p.Name.Contains("redis", StringComparison.Ordinal) ? 2 : p.Name.Contains("silo", StringComparison.Ordinal) ? 1 : 0;
        foreach (var tier in _processes.GroupBy(Tier).OrderBy(g => g.Key))
        {
            await Task.WhenAll(tier.Select(p => p.DisposeAsync().AsTask()));
        }
        if (_nginx is not null)
        {
            await _nginx.DisposeAsync();
        }
    }
}
