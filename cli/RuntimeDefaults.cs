using System.Globalization;

namespace OrleansTunnel.Cli;

/// <summary>
/// Process settings the runtime reads only from the environment (not from runtimeconfig.json), which
/// every otun process should run with: <c>./otun</c> exports them, <c>otun cluster</c> gives them to its
/// children and the Docker images set them; an operator's own value always wins. Each role prints the
/// GC settings it got at start, and warns when the young-generation budget is the CPU-derived one.
/// </summary>
public static class RuntimeDefaults
{
    /// <summary>The GC's cap on the gen0 allocation budget, as the runtime names it (case matters on Linux).</summary>
    public const string Gen0MaxBudgetVariable = "DOTNET_GCGen0MaxBudget";

    /// <summary>32 MiB: bounds what a process holds at rest; the gen0 collections it adds cost little with our small live set.</summary>
    public const long Gen0MaxBudget = 32L << 20;

    /// <summary>A budget above this is the CPU-cache-derived default (80 MiB on a host with a 300 MiB L3), worth a warning.</summary>
    public const long Gen0WarnAbove = 64L << 20;

    /// <summary>
    /// Name and value of each default. MALLOC_ARENA_MAX=2: glibc's default of 8 arenas per core let the
    /// silos' native memory grow ~25 % in a 10-minute soak with a flat GC heap (bench/README.md, "Soak").
    /// DOTNET_GCGen0MaxBudget: without it the workstation GC sizes gen0 from the largest CPU cache, which
    /// on some hosts is hundreds of MiB; `otun dev` then held ~60 MB more beside four slow downloads.
    /// </summary>
    public static readonly IReadOnlyList<KeyValuePair<string, string>> Environment =
    [
        new("MALLOC_ARENA_MAX", "2"),
        new(Gen0MaxBudgetVariable, "0x" + Gen0MaxBudget.ToString("X", CultureInfo.InvariantCulture)),
    ];

    /// <summary>Sets each default in <paramref name="target"/> unless the operator set it (in this process's environment or in <paramref name="target"/>).</summary>
    public static void Apply(IDictionary<string, string?> target, Func<string, string?> current)
    {
        foreach (var (name, value) in Environment)
        {
            if (string.IsNullOrEmpty(current(name)) && !(target.TryGetValue(name, out var set) && !string.IsNullOrEmpty(set)))
            {
                target[name] = value;
            }
        }
    }

    /// <summary>"gc workstation concurrent, gen0 budget <= 32 MiB" from <see cref="GC.GetConfigurationVariables"/>.</summary>
    public static string DescribeGc(IReadOnlyDictionary<string, object> gc)
    {
        bool server = gc.TryGetValue("ServerGC", out var s) && s is true;
        bool concurrent = gc.TryGetValue("ConcurrentGC", out var c) && c is true;
        string budget = Gen0Budget(gc) is long b and > 0 ? $"{b / (1024.0 * 1024.0):0.#} MiB" : "unknown";
        return $"gc {(server ? "server" : "workstation")}{(concurrent ? " concurrent" : "")}, gen0 budget <= {budget}";
    }

    /// <summary>The warning when the gen0 budget is larger than <see cref="Gen0WarnAbove"/>, or null.</summary>
    public static string? Gen0Warning(IReadOnlyDictionary<string, object> gc) =>
        Gen0Budget(gc) is long b and > Gen0WarnAbove
            ? $"the GC's gen0 budget is {b >> 20} MiB, sized from this CPU's cache: the process holds up to that much more memory at rest. "
              + $"Set {Gen0MaxBudgetVariable}=0x{Gen0MaxBudget:X} ({Gen0MaxBudget >> 20} MiB) in its environment, as ./otun, otun cluster and the images do (README, \"Memory\")."
            : null;

    private static long? Gen0Budget(IReadOnlyDictionary<string, object> gc) =>
        gc.TryGetValue("GCGen0MaxBudget", out var v) ? Convert.ToInt64(v, CultureInfo.InvariantCulture) : null;

    /// <summary>Prints this process's runtime line (and the gen0 warning) for <paramref name="role"/>.</summary>
    public static void Print(string role)
    {
        var gc = GC.GetConfigurationVariables();
        Console.WriteLine($"otun {role}: .NET {System.Environment.Version}, {DescribeGc(gc)}");
        if (Gen0Warning(gc) is { } warning)
        {
            Console.Error.WriteLine($"otun {role}: warning: {warning}");
        }
    }
}
