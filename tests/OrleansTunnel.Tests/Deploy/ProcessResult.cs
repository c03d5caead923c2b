namespace OrleansTunnel.Tests.Deploy;

/// <summary>What a finished child process left: exit code and both output streams.</summary>
public sealed record ProcessResult(string Command, int ExitCode, string StandardOutput, string StandardError)
{
    /// <summary>A failure message with the command and the end of both streams.</summary>
    public string Describe() =>
        $"'{Command}' exited with {ExitCode}\n--- stdout (end) ---\n{Tail(StandardOutput)}\n--- stderr (end) ---\n{Tail(StandardError)}";

    private static string Tail(string text) => text.Length <= 4000 ? text : "..." + text[^4000..];
}
