using System.Buffers;
using System.Collections.Concurrent;
using Microsoft.AspNetCore.Connections;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>
/// Kestrel's buffer pool with blocks of <see cref="GatewayOptions.TransportBlockSize"/> instead of its
/// built-in 4 KiB. A socket read fills at most one block, so with 4 KiB blocks every MiB that reaches the
/// gateway (a visitor's upload, an agent's answer on the tunnel listener) costs 256 receive calls; with
/// 64 KiB blocks it costs 16 (measured with bench/bulk.sh: a 1 GiB upload ~4.9 -> ~3.4 ms CPU per MiB; eight
/// concurrent 1 MiB downloads 6.3 -> 3.4 ms per MiB; a single large download not measurably).
/// </summary>
/// <remarks>
/// The price is memory per connection that has bytes buffered (a whole block however few bytes it holds);
/// an idle keep-alive connection holds none (Kestrel waits for data before it takes a block). Free blocks
/// are kept up to <see cref="GatewayOptions.TransportPoolRetainedBytes"/>; beyond that a returned block is
/// left to the GC. Blocks are pinned (socket I/O) and live on the pinned object heap.
/// </remarks>
public sealed class TransportMemoryPoolFactory(int blockSize, long retainedBytes) : IMemoryPoolFactory<byte>
{
    public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new TransportMemoryPool(blockSize, retainedBytes);
}

/// <inheritdoc cref="TransportMemoryPoolFactory"/>
public sealed class TransportMemoryPool : MemoryPool<byte>
{
    private readonly ConcurrentQueue<Block> _free = new();
    private readonly int _blockSize;
    private readonly int _maxRetained;
    private int _retained;
    private long _allocated;
    private volatile bool _disposed;

    public TransportMemoryPool(int blockSize, long retainedBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 4096);
        ArgumentOutOfRangeException.ThrowIfNegative(retainedBytes);
        _blockSize = blockSize;
        _maxRetained = (int)Math.Min(int.MaxValue, retainedBytes / blockSize);
    }

    public override int MaxBufferSize => _blockSize;

    /// <summary>Free blocks kept for reuse now.</summary>
    public int Retained => Volatile.Read(ref _retained);

    /// <summary>Blocks allocated since start (a rent that found no free block).</summary>
    public long Allocated => Interlocked.Read(ref _allocated);

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (minBufferSize > _blockSize)
        {
            throw new ArgumentOutOfRangeException(nameof(minBufferSize), $"{minBufferSize} bytes asked of a pool of {_blockSize}-byte blocks");
        }
        if (_free.TryDequeue(out var block))
        {
            Interlocked.Decrement(ref _retained);
            block.Rented = 1;
            return block;
        }
        Interlocked.Increment(ref _allocated);
        return new Block(this, GC.AllocateUninitializedArray<byte>(_blockSize, pinned: true));
    }

    protected override void Dispose(bool disposing)
    {
        _disposed = true;
        _free.Clear();
    }

    private void Return(Block block)
    {
        if (_disposed || Interlocked.Increment(ref _retained) > _maxRetained)
        {
            // Over the bound (or the pool is gone): the block is left to the GC.
            Interlocked.Decrement(ref _retained);
            return;
        }
        _free.Enqueue(block);
    }

    private sealed class Block(TransportMemoryPool pool, byte[] array) : IMemoryOwner<byte>
    {
        public int Rented = 1;

        public Memory<byte> Memory { get; } = array;

        public void Dispose()
        {
            // A second Dispose of one rental must not put the block in the free list twice.
            if (Interlocked.Exchange(ref Rented, 0) == 1)
            {
                pool.Return(this);
            }
        }
    }
}
