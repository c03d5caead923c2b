using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OrleansTunnel.Agent;
using OrleansTunnel.Gateway.Auth;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Security;

/// <summary>
/// The admin surface (issue 12, section 7): several admin tokens with read or full scope, every change
/// in the audit log (who, from where, what, status; never a body), and two accepted hashes per agent
/// for rotating its token.
/// </summary>
public sealed class AdminScopeHarness : IAsyncLifetime
{
    public const string ReadToken = "read-token-0123456789", FullToken = "full-token-0123456789";
    public const string RevocableToken = "revocable-0123456789";
    public const string OldAgentToken = "rotating-old-0123456789", NewAgentToken = "rotating-new-0123456789";

    public TunnelHarness Harness { get; private set; } = null!;

    public string AuditPath { get; } = Path.Combine(Path.GetTempPath(), $"otun-audit-{Guid.NewGuid():N}.jsonl");

    public async Task InitializeAsync() => Harness = await TunnelHarness.StartAsync(o =>
    {
        o.Gateway["Gateway:AdminTokens:0:Name"] = "ci-reader";
        o.Gateway["Gateway:AdminTokens:0:Sha256"] = AgentCredentialStore.Hash(ReadToken);
        o.Gateway["Gateway:AdminTokens:0:Scope"] = "read";
        o.Gateway["Gateway:AdminTokens:1:Name"] = "deployer";
        o.Gateway["Gateway:AdminTokens:1:Sha256"] = AgentCredentialStore.Hash(FullToken);
        o.Gateway["Gateway:AuditLogPath"] = AuditPath;
        o.Gateway["Gateway:Agents:2:Id"] = "rotating";
        o.Gateway["Gateway:Agents:2:TokenSha256"] = AgentCredentialStore.Hash(OldAgentToken);
        o.Gateway["Gateway:Agents:2:NextTokenSha256"] = AgentCredentialStore.Hash(NewAgentToken);
        o.Gateway["Gateway:Agents:2:Services:0"] = "rotating-svc";
        o.Gateway["Gateway:Agents:3:Id"] = "revocable";
        o.Gateway["Gateway:Agents:3:TokenSha256"] = AgentCredentialStore.Hash(RevocableToken);
        o.Gateway["Gateway:Agents:3:Services:0"] = "revocable-svc";
    });

    public async Task DisposeAsync()
    {
        await Harness.DisposeAsync();
        File.Delete(AuditPath);
    }
}

public sealed class AdminScopeTests(AdminScopeHarness fixture) : IClassFixture<AdminScopeHarness>
{
    private TunnelHarness H => fixture.Harness;

    private HttpClient Admin(string token)
    {
        var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = H.Admin, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    [Fact]
    public async Task AReadToken_ReadsButCannotChange_AFullTokenChanges_EveryChangeIsAudited_WithoutBodies()
    {
        using var reader = Admin(AdminScopeHarness.ReadToken);
        using var deployer = Admin(AdminScopeHarness.FullToken);
        using (var routes = await reader.GetAsync("api/routes"))
        {
            Assert.Equal(HttpStatusCode.OK, routes.StatusCode);
        }
        var route = new { host = "scoped.test", service = "backend", access = "bearer", credential = "route-secret-42" };
        using (var refused = await reader.PutAsJsonAsync("api/routes", route))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.Equal("otun admin: token 'ci-reader' is read-only (scope read); PUT needs a token with scope full\n", await refused.Content.ReadAsStringAsync());
        }
        using (var changed = await deployer.PutAsJsonAsync("api/routes", route))
        {
            Assert.Equal(HttpStatusCode.OK, changed.StatusCode);
        }
        using (var removed = await deployer.DeleteAsync("api/routes?host=scoped.test"))
        {
            Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
        }
        using (var wrong = await Admin("not-a-token").GetAsync("api/routes"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        }

        var text = await File.ReadAllTextAsync(fixture.AuditPath);
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Contains(lines, l => l.GetProperty("token").GetString() == "ci-reader" && l.GetProperty("method").GetString() == "PUT"
            && l.GetProperty("target").GetString() == "/api/routes" && l.GetProperty("status").GetInt32() == 403 && l.GetProperty("source").GetString() == "127.0.0.1");
        Assert.Contains(lines, l => l.GetProperty("token").GetString() == "deployer" && l.GetProperty("method").GetString() == "PUT" && l.GetProperty("status").GetInt32() == 200);
        Assert.Contains(lines, l => l.GetProperty("token").GetString() == "deployer" && l.GetProperty("method").GetString() == "DELETE"
            && l.GetProperty("target").GetString() == "/api/routes?host=scoped.test" && l.GetProperty("status").GetInt32() == 204);
        // Reads are not changes; bodies (which may hold credentials) and tokens never reach the log.
        Assert.DoesNotContain(lines, l => l.GetProperty("method").GetString() == "GET");
        Assert.DoesNotContain("route-secret-42", text);
        Assert.DoesNotContain(AdminScopeHarness.FullToken, text);
    }

    [Theory]
    [InlineData(AdminScopeHarness.OldAgentToken)]
    [InlineData(AdminScopeHarness.NewAgentToken)]
    public async Task AnAgentCredential_AcceptsBothHashesDuringARotation(string token)
    {
        var agent = await H.StartExtraAgentAsync("rotating", token, "rotating-svc");
        try
        {
            await agent.Services.GetRequiredService<AgentStatus>().AnyUp.WaitAsync(TimeSpan.FromSeconds(30));
        }
        finally
        {
            await agent.StopAsync(TimeSpan.FromSeconds(10).ToCancellationToken());
            agent.Dispose();
        }
    }

    [Fact]
    public async Task AConfiguredAgentCredential_CanBeRevokedThroughTheApi_ItsSessionIsClosed_AndItCannotComeBack()
    {
        var agent = await H.StartExtraAgentAsync("revocable", AdminScopeHarness.RevocableToken, "revocable-svc");
        try
        {
            var status = agent.Services.GetRequiredService<AgentStatus>();
            await status.AnyUp.WaitAsync(TimeSpan.FromSeconds(30));
            using var deployer = Admin(AdminScopeHarness.FullToken);
            using (var revoked = await deployer.DeleteAsync("api/tokens/revocable"))
            {
                Assert.Equal(HttpStatusCode.OK, revoked.StatusCode);
                Assert.Equal("otun admin: the configured token of agent 'revocable' is revoked on every gateway and its sessions are closed; configure a new Gateway:Agents TokenSha256 for it\n",
                    await revoked.Content.ReadAsStringAsync());
            }
            await Eventually.TrueAsync(() => !H.Gateway.Services.GetRequiredService<OrleansTunnel.Gateway.Tunnel.ConnectionRegistry>().All.Any(c => c.AgentId == "revocable"),
                TimeSpan.FromSeconds(30), "the revoked agent's session closed");
            // A fresh handshake with that token is refused.
            using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(H.TunnelUrl);
            using var call = new OrleansTunnel.Protocol.V1.Tunnel.TunnelClient(channel).Connect();
            var hello = new OrleansTunnel.Protocol.V1.Hello
            {
                ProtocolVersion = OrleansTunnel.Mux.MuxSettings.ProtocolVersion,
                AgentId = "revocable",
                InitialWindow = 65536,
                Epoch = (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
                Services = { new OrleansTunnel.Protocol.V1.ServiceOffer { Name = "revocable-svc", Scheme = "http" } },
            };
            var refused = await Assert.ThrowsAsync<global::Grpc.Core.RpcException>(() => OrleansTunnel.Mux.TunnelDialer.HandshakeAsync(call, hello, AdminScopeHarness.RevocableToken, TimeSpan.FromSeconds(30), "test", CancellationToken.None));
            Assert.Equal(global::Grpc.Core.StatusCode.Unauthenticated, refused.StatusCode);
            Assert.Equal("the token is not valid for agent 'revocable'", refused.Status.Detail);
        }
        finally
        {
            await agent.StopAsync(TimeSpan.FromSeconds(10).ToCancellationToken());
            agent.Dispose();
        }
    }
}
