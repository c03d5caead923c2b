using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using static OrleansTunnel.Tests.Deploy.Manifests;

namespace OrleansTunnel.Tests.Deploy.Run;

/// <summary>
/// One pod of a rendered workload, turned into what the kubelet would give its container: the
/// environment (values with $(VAR) expansion, the downward API, Secret and ConfigMap keys, service
/// links), the volumes written to folders, and the command of its image.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed partial class RenderedPod(string name, JsonElement workload, Dictionary<string, string> labels, string netns, IPAddress address, string directory)
{
    public string Name { get; } = name;

    public JsonElement Workload { get; } = workload;

    public string Component => Manifests.Component(Workload)!;

    public Dictionary<string, string> Labels { get; } = labels;

    public string Netns { get; } = netns;

    public IPAddress Address { get; } = address;

    public string Directory { get; } = directory;

    public JsonElement Spec => Workload.GetProperty("kind").GetString() == "Pod" ? Workload.GetProperty("spec") : PodSpec(Workload);

    public JsonElement Container => Spec.GetProperty("containers")[0];

    /// <summary>The container port number of a named (or numbered) target port.</summary>
    public int PortOf(JsonElement targetPort) => targetPort.ValueKind == JsonValueKind.Number
        ? targetPort.GetInt32()
        : Container.GetProperty("ports").EnumerateArray().Single(p => Str(p, "name") == targetPort.GetString()).GetProperty("containerPort").GetInt32();

    /// <summary>The container's environment, in order, as Kubernetes resolves it.</summary>
    public Dictionary<string, string> Environment(string ns, RenderedObjects objects, IReadOnlyDictionary<string, string> serviceLinks)
    {
        // The image's environment and the kubelet's.
        var env = ImageEnvironment(Str(Container, "image")!);
        env["HOME"] = "/";
        env["HOSTNAME"] = Name;
        foreach (var (k, v) in serviceLinks)
        {
            env[k] = v;
        }
        if (!Container.TryGetProperty("env", out var list))
        {
            return env;
        }
        foreach (var e in list.EnumerateArray())
        {
            string key = Str(e, "name")!;
            if (Str(e, "value") is { } value)
            {
                env[key] = Expand(value, env);
                continue;
            }
            var from = e.GetProperty("valueFrom");
            if (At(from, "fieldRef", "fieldPath")?.GetString() is { } field)
            {
                env[key] = field switch
                {
                    "metadata.name" => Name,
                    "metadata.namespace" => ns,
                    "status.podIP" => Address.ToString(),
                    _ when LabelField().Match(field) is { Success: true } m => Labels.TryGetValue(m.Groups[1].Value, out var l) ? l
                        : throw new InvalidOperationException($"{Name}: env {key} reads label '{m.Groups[1].Value}', which the pod does not have"),
                    _ => throw new NotSupportedException($"{Name}: env {key}: fieldRef {field} is not emulated by this test"),
                };
            }
            else if (At(from, "secretKeyRef") is { } secretRef)
            {
                env[key] = System.Text.Encoding.UTF8.GetString(objects.SecretKey(Str(secretRef, "name")!, Str(secretRef, "key")!));
            }
            else if (At(from, "configMapKeyRef") is { } configRef)
            {
                env[key] = objects.ConfigMapKey(Str(configRef, "name")!, Str(configRef, "key")!);
            }
            else
            {
                throw new NotSupportedException($"{Name}: env {key}: {from.GetRawText()} is not emulated by this test");
            }
        }
        return env;
    }

    [GeneratedRegex(@"^metadata\.labels\['([^']+)'\]$")]
    private static partial Regex LabelField();

    /// <summary>Kubernetes' $(VAR) expansion: defined variables are replaced, $$ is a literal $, others stay.</summary>
    public static string Expand(string value, IReadOnlyDictionary<string, string> env) =>
        Regex.Replace(value, @"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", m =>
            m.Value == "$$" ? "$" : env.TryGetValue(m.Groups[1].Value, out var v) ? v : m.Value);

    /// <summary>Writes every volume the container mounts and returns the mounts (host source, container target).</summary>
    public List<PodMount> WriteVolumes(RenderedObjects objects)
    {
        var volumes = Spec.GetProperty("volumes").EnumerateArray().ToDictionary(v => Str(v, "name")!);
        var mounts = new List<PodMount>();
        foreach (var vm in Container.GetProperty("volumeMounts").EnumerateArray())
        {
            string volumeName = Str(vm, "name")!;
            var volume = volumes[volumeName];
            string folder = Path.Combine(Directory, "volumes", volumeName);
            if (!System.IO.Directory.Exists(folder))
            {
                System.IO.Directory.CreateDirectory(folder);
                if (volume.TryGetProperty("configMap", out var cm))
                {
                    WriteKeys(folder, objects.ConfigMap(Str(cm, "name")!), cm);
                }
                else if (volume.TryGetProperty("secret", out var secret))
                {
                    WriteKeys(folder, objects.Secret(Str(secret, "secretName")!), secret);
                }
                else if (volume.TryGetProperty("emptyDir", out _) || volume.TryGetProperty("persistentVolumeClaim", out _))
                {
                    File.SetUnixFileMode(folder, (UnixFileMode)0b111_111_111);
                }
                else
                {
                    throw new NotSupportedException($"{Name}: volume {volumeName} ({volume.GetRawText()}) is not emulated by this test");
                }
            }
            string source = Str(vm, "subPath") is { } sub ? Path.Combine(folder, sub) : folder;
            mounts.Add(new PodMount(source, Str(vm, "mountPath")!, At(vm, "readOnly")?.GetBoolean() == true));
        }
        return mounts;
    }

    private static void WriteKeys(string folder, IReadOnlyDictionary<string, byte[]> data, JsonElement source)
    {
        var items = source.TryGetProperty("items", out var list)
            ? list.EnumerateArray().Select(i => (Key: Str(i, "key")!, Path: Str(i, "path")!)).ToList()
            : data.Keys.Select(k => (Key: k, Path: k)).ToList();
        foreach (var (key, path) in items)
        {
            if (!data.TryGetValue(key, out var bytes))
            {
                throw new InvalidOperationException($"the volume wants key '{key}', which is not in its Secret or ConfigMap");
            }
            string file = Path.Combine(folder, path);
            File.WriteAllBytes(file, bytes);
            File.SetUnixFileMode(file, (UnixFileMode)0b110_100_100);
        }
    }

    /// <summary>The command the container runs: its image's entrypoint (or command) and args, $(VAR)-expanded.</summary>
    public List<string> Command(IReadOnlyDictionary<string, string> env)
    {
        string image = Str(Container, "image")!;
        var command = Container.TryGetProperty("command", out var c) ? c.EnumerateArray().Select(x => x.GetString()!).ToList() : ImageEntrypoint(image);
        if (Container.TryGetProperty("args", out var a))
        {
            command.AddRange(a.EnumerateArray().Select(x => x.GetString()!));
        }
        command = [.. command.Select(x => Expand(x, env))];
        if (command[0] == "/app/otun")
        {
            // The image's /app/otun is the published CLI: here, the same build next to the tests.
            command = [.. PodProcess.Otun, .. command[1..]];
        }
        return command;
    }

    /// <summary>docker/&lt;role&gt;.Dockerfile of an orleans-tunnel-&lt;role&gt; image; null for other images.</summary>
    private static string? Dockerfile(string image)
    {
        string repository = image.Split('@')[0];
        repository = repository[..repository.LastIndexOf(':')];
        string last = repository.Split('/')[^1];
        return last.StartsWith("orleans-tunnel-", StringComparison.Ordinal)
            ? File.ReadAllText(Path.Combine(RepoRoot.Path, "docker", last["orleans-tunnel-".Length..] + ".Dockerfile"))
            : null;
    }

    private static List<string> ImageEntrypoint(string image)
    {
        if (Dockerfile(image) is { } dockerfile)
        {
            var entrypoint = Regex.Match(dockerfile, @"^ENTRYPOINT (\[.*\])\s*$", RegexOptions.Multiline);
            return JsonSerializer.Deserialize<List<string>>(entrypoint.Groups[1].Value)!;
        }
        // redis and curl images: their entrypoints run the arguments as the command.
        return [];
    }

    /// <summary>
    /// The image's environment: for ours, mcr.microsoft.com/dotnet/aspnet's (PATH, ASPNETCORE_HTTP_PORTS,
    /// DOTNET_RUNNING_IN_CONTAINER, APP_UID) with the ENV lines of our Dockerfile's runtime stage over it.
    /// </summary>
    private static Dictionary<string, string> ImageEnvironment(string image)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal) { ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" };
        if (Dockerfile(image) is { } dockerfile)
        {
            env["ASPNETCORE_HTTP_PORTS"] = "8080";
            env["DOTNET_RUNNING_IN_CONTAINER"] = "true";
            env["APP_UID"] = "1654";
            string runtime = dockerfile[dockerfile.LastIndexOf("\nFROM ", StringComparison.Ordinal)..];
            foreach (Match m in Regex.Matches(runtime, @"^ENV ([A-Za-z_][A-Za-z0-9_]*)=(.*)$", RegexOptions.Multiline))
            {
                env[m.Groups[1].Value] = m.Groups[2].Value.Trim();
            }
        }
        return env;
    }

    public (long Uid, long Gid) User()
    {
        var pod = Spec.TryGetProperty("securityContext", out var p) ? p : default;
        var container = Container.TryGetProperty("securityContext", out var s) ? s : default;
        long Get(string key) =>
            container.ValueKind == JsonValueKind.Object && container.TryGetProperty(key, out var v) ? v.GetInt64()
            : pod.ValueKind == JsonValueKind.Object && pod.TryGetProperty(key, out var w) ? w.GetInt64() : 0;
        return (Get("runAsUser"), Get("runAsGroup"));
    }
}
