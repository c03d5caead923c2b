using System.Text.Json;
using static OrleansTunnel.Tests.Deploy.Manifests;

namespace OrleansTunnel.Tests.Deploy.Run;

/// <summary>The rendered Secrets and ConfigMaps, plus Secrets the operator creates outside the chart (TLS).</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class RenderedObjects(Manifests manifests, IReadOnlyDictionary<string, Dictionary<string, byte[]>> externalSecrets)
{
    public IReadOnlyDictionary<string, byte[]> Secret(string name)
    {
        if (externalSecrets.TryGetValue(name, out var external))
        {
            return external;
        }
        var secret = manifests.OfKind("Secret").SingleOrDefault(s => Name(s) == name);
        if (secret.ValueKind == JsonValueKind.Undefined)
        {
            throw new InvalidOperationException($"Secret '{name}' is neither rendered by the chart nor created by the test");
        }
        var data = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        if (secret.TryGetProperty("data", out var d))
        {
            foreach (var p in d.EnumerateObject())
            {
                data[p.Name] = Convert.FromBase64String(p.Value.GetString()!);
            }
        }
        if (secret.TryGetProperty("stringData", out var sd))
        {
            foreach (var p in sd.EnumerateObject())
            {
                data[p.Name] = System.Text.Encoding.UTF8.GetBytes(p.Value.GetString()!);
            }
        }
        return data;
    }

    public IReadOnlyDictionary<string, byte[]> ConfigMap(string name)
    {
        var map = manifests.OfKind("ConfigMap").SingleOrDefault(s => Name(s) == name);
        if (map.ValueKind == JsonValueKind.Undefined)
        {
            throw new InvalidOperationException($"ConfigMap '{name}' is not rendered by the chart");
        }
        return map.GetProperty("data").EnumerateObject().ToDictionary(p => p.Name, p => System.Text.Encoding.UTF8.GetBytes(p.Value.GetString()!));
    }

    public byte[] SecretKey(string name, string key) =>
        Secret(name).TryGetValue(key, out var v) ? v : throw new InvalidOperationException($"Secret '{name}' has no key '{key}'");

    public string ConfigMapKey(string name, string key) =>
        ConfigMap(name).TryGetValue(key, out var v) ? System.Text.Encoding.UTF8.GetString(v) : throw new InvalidOperationException($"ConfigMap '{name}' has no key '{key}'");
}
