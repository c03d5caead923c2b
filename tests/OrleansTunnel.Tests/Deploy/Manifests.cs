using System.Text.Json;
using Xunit;

namespace OrleansTunnel.Tests.Deploy;

/// <summary>The rendered manifests of one helm template run, with look-ups by kind and name.</summary>
public sealed class Manifests(JsonElement documents)
{
    public IReadOnlyList<JsonElement> All { get; } = [.. documents.EnumerateArray()];

    public IEnumerable<JsonElement> OfKind(string kind) => All.Where(d => Str(d, "kind") == kind);

    /// <summary>Deployments and StatefulSets.</summary>
    public IEnumerable<JsonElement> Workloads => All.Where(d => Str(d, "kind") is "Deployment" or "StatefulSet");

    /// <summary>The single object of a kind whose app.kubernetes.io/component label is the given one.</summary>
    public JsonElement One(string kind, string component)
    {
        var matches = OfKind(kind).Where(d => Component(d) == component).ToList();
        Assert.True(matches.Count == 1, $"expected one {kind} of component '{component}', found {matches.Count}");
        return matches[0];
    }

    public JsonElement? Find(string kind, string component) =>
        OfKind(kind).Where(d => Component(d) == component).Select(d => (JsonElement?)d).FirstOrDefault();

    public static string Name(JsonElement d) => d.GetProperty("metadata").GetProperty("name").GetString()!;

    public static string? Component(JsonElement d) =>
        d.GetProperty("metadata").TryGetProperty("labels", out var labels) && labels.TryGetProperty("app.kubernetes.io/component", out var c)
            ? c.GetString()
            : null;

    public static string? Str(JsonElement e, string property) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(property, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary>Follows a path of properties; null when any step is missing.</summary>
    public static JsonElement? At(JsonElement e, params string[] path)
    {
        foreach (var step in path)
        {
            if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty(step, out e))
            {
                return null;
            }
        }
        return e;
    }

    public static JsonElement PodSpec(JsonElement workload) => At(workload, "spec", "template", "spec")!.Value;

    public static IEnumerable<JsonElement> Containers(JsonElement workload) => PodSpec(workload).GetProperty("containers").EnumerateArray();

    /// <summary>The file at <paramref name="path"/> in the workload's container is the <paramref name="key"/> of Secret <paramref name="secret"/>, mounted by items.</summary>
    public static void AssertMountedFrom(JsonElement workload, string path, string secret, string key)
    {
        var mount = Containers(workload).Single().GetProperty("volumeMounts").EnumerateArray()
            .Single(vm => path.StartsWith(Str(vm, "mountPath")! + "/", StringComparison.Ordinal));
        var volume = PodSpec(workload).GetProperty("volumes").EnumerateArray().Single(v => Str(v, "name") == Str(mount, "name"));
        Assert.Equal(secret, At(volume, "secret", "secretName")?.GetString());
        string file = path[(Str(mount, "mountPath")!.Length + 1)..];
        Assert.Contains(At(volume, "secret", "items")!.Value.EnumerateArray(), i => Str(i, "key") == key && Str(i, "path") == file);
    }
}
