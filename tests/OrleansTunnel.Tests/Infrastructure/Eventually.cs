using System.Runtime.CompilerServices;

namespace OrleansTunnel.Tests.Infrastructure;

/// <summary>Bounded waits that say where they hung.</summary>
public static class Eventually
{
    /// <summary>Re-checks a condition on in-process state until it holds; fails with the message after the timeout.</summary>
    public static async Task TrueAsync(Func<bool> condition, TimeSpan timeout, string message)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{message} (waited {timeout.TotalSeconds:0.#} s)");
            }
            await Task.Delay(20);
        }
    }

    /// <summary>Awaits a task at most <paramref name="timeout"/>; the failure names the awaited expression.</summary>
    public static async Task<T> Within<T>(this Task<T> task, TimeSpan timeout, [CallerArgumentExpression(nameof(task))] string? what = null)
    {
        try
        {
            return await task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"'{what}' did not finish within {timeout.TotalSeconds:0.#} s");
        }
    }

    public static async Task Within(this Task task, TimeSpan timeout, [CallerArgumentExpression(nameof(task))] string? what = null)
    {
        try
        {
            await task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"'{what}' did not finish within {timeout.TotalSeconds:0.#} s");
        }
    }
}
