using System.Text.Json;
using Xunit;
using static OrleansTunnel.Tests.Deploy.Manifests;

namespace OrleansTunnel.Tests.Deploy;

/// <summary>Gateways: stable names for peers, agent-facing addresses, CAs, shutdown timing.</summary>
[Collection(HelmCollection.Name)]
public sealed class ChartGatewayTests(HelmFixture helm)
{
    private static List<JsonElement> Env(JsonElement workload) => [.. Containers(workload).Single().GetProperty("env").EnumerateArray()];

    private static string? EnvValue(JsonElement workload, string name) => Env(workload).Where(e => Str(e, "name") == name).Select(e => Str(e, "value")).FirstOrDefault();

    private static JsonElement Settings(Manifests m, string component) =>
        JsonDocument.Parse(At(m.One("ConfigMap", component), "data", "appsettings.json")!.Value.GetString()!).RootElement;

    [Fact]
    public async Task PeersDialAStableNameUnderTheHeadlessService_NeverAPodIp()
    {
        var m = await helm.RenderAsync("--set", "gateway.tls.tunnel.enabled=true", "--set", "gateway.tls.tunnel.secretName=tls");
        var sts = m.One("StatefulSet", "gateway");
        var headless = m.One("Service", "gateway-headless");

        Assert.Equal("None", At(headless, "spec", "clusterIP")?.GetString());
        Assert.True(At(headless, "spec", "publishNotReadyAddresses")!.Value.GetBoolean());
        Assert.Equal(Name(headless), At(sts, "spec", "serviceName")?.GetString());
        Assert.Equal($"https://$(POD_NAME).{Name(headless)}.otun-test.svc:7070", EnvValue(sts, "OTUN_Gateway__AdvertisedTunnel"));
        Assert.Equal("$(POD_NAME)", EnvValue(sts, "OTUN_Gateway__GatewayId"));
        var env = Env(sts);
        Assert.True(env.FindIndex(e => Str(e, "name") == "POD_NAME") < env.FindIndex(e => Str(e, "name") == "OTUN_Gateway__AdvertisedTunnel"));
        Assert.DoesNotContain(env, e => At(e, "valueFrom", "fieldRef", "fieldPath")?.GetString() == "status.podIP");
        // TLS on the tunnel: no h2c appProtocol on its Service.
        Assert.Null(At(At(m.One("Service", "gateway-tunnel"), "spec", "ports")!.Value[0], "appProtocol"));
        var cleartext = await helm.RenderAsync("--set", "gateway.tls.tunnel.enabled=false");
        Assert.Equal("kubernetes.io/h2c", At(At(cleartext.One("Service", "gateway-tunnel"), "spec", "ports")!.Value[0], "appProtocol")?.GetString());
    }

    [Fact]
    public async Task AgentEndpoints_NoneByDefault_TheTemplatePerPod_OrTheInClusterName()
    {
        var byDefault = await helm.RenderAsync();
        Assert.Equal("none", EnvValue(byDefault.One("StatefulSet", "gateway"), "OTUN_Gateway__AgentAdvertisedTunnel"));

        var inCluster = await helm.RenderAsync("--set", "gateway.agentEndpoints.inCluster=true");
        Assert.Null(EnvValue(inCluster.One("StatefulSet", "gateway"), "OTUN_Gateway__AgentAdvertisedTunnel"));

        var external = await helm.RenderAsync("--set", "gateway.replicas=3", "--set", "gateway.agentEndpoints.urlTemplate=https://gw-{ordinal}.t.example.com:443",
            "--set", "gateway.agentEndpoints.perPodService.enabled=true", "--set", "gateway.agentEndpoints.perPodService.annotations.dns=gw-{ordinal}.t.example.com");
        var sts = external.One("StatefulSet", "gateway");
        Assert.Equal("https://gw-$(POD_ORDINAL).t.example.com:443", EnvValue(sts, "OTUN_Gateway__AgentAdvertisedTunnel"));
        var ordinal = Env(sts).Single(e => Str(e, "name") == "POD_ORDINAL");
        Assert.Equal("metadata.labels['apps.kubernetes.io/pod-index']", At(ordinal, "valueFrom", "fieldRef", "fieldPath")?.GetString());
        var perPod = external.OfKind("Service").Where(s => Component(s) == "gateway-pod").ToList();
        Assert.Equal(3, perPod.Count);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal($"{Name(sts)}-{i}", At(perPod[i], "spec", "selector", "statefulset.kubernetes.io/pod-name")?.GetString());
            Assert.Equal($"gw-{i}.t.example.com", At(perPod[i], "metadata", "annotations", "dns")?.GetString());
            Assert.Equal("tunnel", Str(At(perPod[i], "spec", "ports")!.Value[0], "targetPort"));
        }

        var noTemplate = await helm.TemplateAsync("--set", "gateway.agentEndpoints.perPodService.enabled=true");
        Assert.NotEqual(0, noTemplate.ExitCode);
        Assert.Contains("gateway.agentEndpoints.urlTemplate", noTemplate.StandardError);
    }

    [Fact]
    public async Task CaFiles_AreMountedWhereTheSettingsPoint()
    {
        var m = await helm.RenderAsync("--set", "gateway.tls.tunnel.enabled=true", "--set", "gateway.tls.tunnel.secretName=tls",
            "--set", "gateway.tls.peerCa.secretName=tls", "--set", "gateway.tls.tunnel.clientCa.secretName=agent-ca", "--set", "gateway.tls.tunnel.clientCa.key=root.pem",
            "--set", "agent.enabled=true", "--set", "agent.agentId=a", "--set", "agent.token=t", "--set", "agent.services[0].name=app",
            "--set", "agent.services[0].url=http://app:80", "--set", "agent.gatewayCa.secretName=tls");

        AssertMountedFrom(m.One("StatefulSet", "gateway"), At(Settings(m, "gateway"), "Gateway", "PeerCaFile")!.Value.GetString()!, "tls", "ca.crt");
        AssertMountedFrom(m.One("StatefulSet", "gateway"), At(Settings(m, "gateway"), "Gateway", "TunnelClientCaPath")!.Value.GetString()!, "agent-ca", "root.pem");
        AssertMountedFrom(m.One("Deployment", "agent"), At(Settings(m, "agent"), "Agent", "GatewayCaFile")!.Value.GetString()!, "tls", "ca.crt");
    }

    /// <summary>The file at <paramref name="path"/> comes from key <paramref name="key"/> of Secret <paramref name="secret"/>.</summary>
    [Fact]
    public async Task Shutdown_PreStopAndGraceComeFromValues_AndMustFitTheTerminationGracePeriod()
    {
        var m = await helm.RenderAsync("--set", "gateway.preStopSeconds=15", "--set", "gateway.shutdownGracePeriod=00:01:00",
            "--set", "gateway.terminationGracePeriodSeconds=90");
        var sts = m.One("StatefulSet", "gateway");
        Assert.Equal(["sleep", "15"], At(Containers(sts).Single(), "lifecycle", "preStop", "exec", "command")!.Value.EnumerateArray().Select(x => x.GetString()));
        Assert.Equal("00:01:00", At(Settings(m, "gateway"), "Gateway", "ShutdownGracePeriod")?.GetString());
        Assert.Equal("00:00:05", At(Settings(m, "gateway"), "Gateway", "DrainDelay")?.GetString());
        Assert.Equal(90, At(PodSpec(sts), "terminationGracePeriodSeconds")!.Value.GetInt32());

        var tooShort = await helm.TemplateAsync("--set", "gateway.preStopSeconds=15", "--set", "gateway.shutdownGracePeriod=00:01:00",
            "--set", "gateway.terminationGracePeriodSeconds=60");
        Assert.NotEqual(0, tooShort.ExitCode);
        Assert.Contains("gateway.terminationGracePeriodSeconds: 60 is below preStopSeconds (15) + drainDelay (5 s) + shutdownGracePeriod (60 s) + shutdownMarginSeconds (10) = 90", tooShort.StandardError);
        Assert.Contains("--set gateway.terminationGracePeriodSeconds=90", tooShort.StandardError);
    }

    [Fact]
    public async Task ExtraVolumes_PriorityClass_AndTopologySpread_ReachEveryRole()
    {
        var args = new List<string> { "--set", "agent.enabled=true", "--set", "agent.agentId=a", "--set", "agent.token=t",
            "--set", "agent.services[0].name=app", "--set", "agent.services[0].url=http://app:80",
            "--set", "agent.topologySpreadConstraints[0].maxSkew=1", "--set", "agent.topologySpreadConstraints[0].topologyKey=zone",
            "--set", "agent.topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway" };
        foreach (var role in new[] { "silo", "gateway", "agent" })
        {
            args.AddRange(["--set", $"{role}.extraVolumes[0].name=extra-{role}", "--set", $"{role}.extraVolumes[0].configMap.name=cm-{role}",
                "--set", $"{role}.extraVolumeMounts[0].name=extra-{role}", "--set", $"{role}.extraVolumeMounts[0].mountPath=/etc/extra",
                "--set", $"{role}.priorityClassName=prio-{role}"]);
        }
        var m = await helm.RenderAsync([.. args]);

        foreach (var (kind, role) in new[] { ("Deployment", "silo"), ("StatefulSet", "gateway"), ("Deployment", "agent") })
        {
            var w = m.One(kind, role);
            Assert.Contains(PodSpec(w).GetProperty("volumes").EnumerateArray(), v => Str(v, "name") == $"extra-{role}" && At(v, "configMap", "name")?.GetString() == $"cm-{role}");
            Assert.Contains(Containers(w).Single().GetProperty("volumeMounts").EnumerateArray(), v => Str(v, "name") == $"extra-{role}" && Str(v, "mountPath") == "/etc/extra");
            Assert.Equal($"prio-{role}", Str(PodSpec(w), "priorityClassName"));
        }
        Assert.Equal("zone", Str(PodSpec(m.One("Deployment", "agent")).GetProperty("topologySpreadConstraints")[0], "topologyKey"));
    }

    [Fact]
    public async Task OidcSecrets_AreMountedReadOnlyInEveryGateway_WholeSoThatRotationsReachTheFiles()
    {
        var m = await helm.RenderAsync("--set", "gateway.oidcSecrets[0].secretName=grafana-oidc", "--set", "gateway.oidcSecrets[1].secretName=wiki-oidc");
        var sts = m.One("StatefulSet", "gateway");
        var mounts = Containers(sts).Single().GetProperty("volumeMounts").EnumerateArray().ToList();
        var volumes = PodSpec(sts).GetProperty("volumes").EnumerateArray().ToList();
        foreach (var name in new[] { "grafana-oidc", "wiki-oidc" })
        {
            var mount = mounts.Single(vm => Str(vm, "mountPath") == $"/var/run/secrets/otun-oidc/{name}");
            Assert.True(mount.GetProperty("readOnly").GetBoolean());
            // No subPath: Kubernetes updates a Secret volume in place only when it is mounted whole.
            Assert.False(mount.TryGetProperty("subPath", out _));
            var volume = volumes.Single(v => Str(v, "name") == Str(mount, "name"));
            Assert.Equal(name, At(volume, "secret", "secretName")?.GetString());
        }
        var none = await helm.RenderAsync();
        Assert.DoesNotContain(Containers(none.One("StatefulSet", "gateway")).Single().GetProperty("volumeMounts").EnumerateArray(),
            vm => Str(vm, "mountPath")!.StartsWith("/var/run/secrets/otun-oidc", StringComparison.Ordinal));
    }
}
