using OrleansTunnel.Gateway;
using OrleansTunnel.Gateway.Ingress;
using Xunit;

namespace OrleansTunnel.Tests.FlowControl;

/// <summary>The gateway's Kestrel buffer pool (Gateway:TransportBlockSize): reuse, the retained bound, misuse.</summary>
public sealed class TransportMemoryPoolTests
{
    [Fact]
    public void A_returned_block_is_reused_and_has_the_configured_size()
    {
        using var pool = new TransportMemoryPool(65536, 1024 * 1024);
        var first = pool.Rent(4096);
        Assert.Equal(65536, first.Memory.Length);
        Assert.Equal(65536, pool.MaxBufferSize);
        first.Dispose();
        Assert.Equal(1, pool.Retained);

        using var second = pool.Rent();
        Assert.Equal(1, pool.Allocated);
        Assert.Equal(0, pool.Retained);
    }

    [Fact]
    public void Free_blocks_beyond_the_retained_bytes_are_left_to_the_gc()
    {
        using var pool = new TransportMemoryPool(8192, 2 * 8192);
        var blocks = Enumerable.Range(0, 5).Select(_ => pool.Rent()).ToList();
        blocks.ForEach(b => b.Dispose());

        Assert.Equal(2, pool.Retained);
        Assert.Equal(5, pool.Allocated);
    }

    [Fact]
    public void Disposing_one_rental_twice_frees_the_block_once()
    {
        using var pool = new TransportMemoryPool(4096, 1024 * 1024);
        var block = pool.Rent();
        block.Dispose();
        block.Dispose();
        Assert.Equal(1, pool.Retained);

        using var a = pool.Rent();
        using var b = pool.Rent();
        Assert.Equal(2, pool.Allocated);
        Assert.False(a.Memory.Span.Overlaps(b.Memory.Span));
    }

    [Fact]
    public void A_rent_larger_than_a_block_is_refused_naming_both_sizes()
    {
        using var pool = new TransportMemoryPool(4096, 0);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(5000));
        Assert.Contains("5000", ex.Message);
        Assert.Contains("4096", ex.Message);
    }

    [Theory]
    [InlineData(1000)]
    [InlineData(2 * 1024 * 1024)]
    public void The_validator_refuses_a_block_size_out_of_range(int size)
    {
        var result = new GatewayOptionsValidator().Validate(null, new GatewayOptions { TransportBlockSize = size });
        Assert.True(result.Failed);
        Assert.Contains("Gateway:TransportBlockSize", result.FailureMessage);
        Assert.Contains(size.ToString(System.Globalization.CultureInfo.InvariantCulture), result.FailureMessage);
    }

    [Fact]
    public void The_validator_accepts_the_defaults()
    {
        var result = new GatewayOptionsValidator().Validate(null, new GatewayOptions());
        Assert.False(result.Failed, result.FailureMessage);
    }
}
