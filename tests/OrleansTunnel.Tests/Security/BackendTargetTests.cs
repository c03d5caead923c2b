using OrleansTunnel.Agent;
using OrleansTunnel.Mux;
using Xunit;

namespace OrleansTunnel.Tests.Security;

/// <summary>The agent keeps every request on its configured backend, whatever target a gateway sends (issue 12, section 3).</summary>
public sealed class BackendTargetTests
{
    [Theory]
    [InlineData("@10.0.0.5:8500/", "not origin-form")]
    [InlineData("10.0.0.5/x", "not origin-form")]
    [InlineData("", "not origin-form")]
    [InlineData("http://10.0.0.5/x", "not origin-form")]
    public void TargetsThatWouldLeaveTheBackend_AreRefused(string target, string problem)
    {
        var (uri, reason) = BackendTarget.Build(new Uri("http://127.0.0.1:8080"), target);
        Assert.Null(uri);
        Assert.Contains(problem, reason);
    }

    [Theory]
    [InlineData("http://127.0.0.1:8080", "//x;v=1/%2e%2e/y?q=@evil", "http://127.0.0.1:8080//x;v=1/%2e%2e/y?q=@evil")]
    [InlineData("http://127.0.0.1:8080/app", "/x/y?q=1", "http://127.0.0.1:8080/app/x/y?q=1")]
    [InlineData("https://backend.internal:8443/", "/@x", "https://backend.internal:8443/@x")]
    public void TargetsOnTheBackend_KeepTheirBytes(string backend, string target, string expected)
    {
        var (uri, reason) = BackendTarget.Build(new Uri(backend), target);
        Assert.Null(reason);
        Assert.Equal(expected, uri!.OriginalString);
        Assert.Equal(new Uri(backend).Authority, uri.Authority);
    }

    [Theory]
    [InlineData("/../secret")]
    [InlineData("/%2E%2E/secret")]
    [InlineData("/x/..%2F..%2Fsecret")]
    [InlineData("//secret")]
    public void UnderABasePath_NonCanonicalTargetsAreRefused(string target)
    {
        var (uri, reason) = BackendTarget.Build(new Uri("http://127.0.0.1:8080/app"), target);
        Assert.Null(uri);
        Assert.StartsWith("the request target could leave the service's base path /app: the path ", reason);
    }

    [Theory]
    [InlineData("/", null)]
    [InlineData("/a/b.c/..d/...", null)]
    [InlineData("/a/%41%2e/b", null)]
    [InlineData("/a/", null)]
    [InlineData("/a//b", "empty segment")]
    [InlineData("/a/..", "dot segment")]
    [InlineData("/a/.", "dot segment")]
    [InlineData("/a/%2E", "dot segment")]
    [InlineData("/a%3bb", null)]
    [InlineData("/a%", "does not start an escape")]
    [InlineData("/a%2", "does not start an escape")]
    [InlineData("/a%2525", "double-encoded")]
    [InlineData("/a%2541", null)]
    [InlineData("/a\tb", "control character")]
    public void CanonicalPath_Classes(string path, string? problem)
    {
        var found = CanonicalPath.Problem(path);
        if (problem is null)
        {
            Assert.Null(found);
        }
        else
        {
            Assert.Contains(problem, found);
        }
    }

    [Theory]
    [InlineData("/a/b?c=/../", "/a/b")]
    [InlineData("http://h.test/a/b?q", "/a/b")]
    [InlineData("http://h.test", "/")]
    [InlineData("http://h.test?q", "/")]
    public void PathOf_TakesThePathOfOriginAndAbsoluteForms(string target, string path) =>
        Assert.Equal(path, CanonicalPath.PathOf(target).ToString());
}
