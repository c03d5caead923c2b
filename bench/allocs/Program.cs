using Microsoft.Diagnostics.Tracing.Etlx;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

// Usage: allocs TRACE.nettrace [REQUESTS] [TOP]
// Sums the GC AllocationTick events of a gc-verbose EventPipe trace (one event per ~100 KB allocated, with
// the type of the object that crossed the mark and its stack) by type and by allocating frame: the first
// frame outside the framework, and the framework frames above it. Shares are of the sampled total; with
// REQUESTS, also bytes per request (the trace's own estimate; dotnet-counters in run.sh gives the exact figure).
if (args.Length < 1)
{
    Console.Error.WriteLine("usage: allocs TRACE.nettrace [REQUESTS] [TOP]");
    return 2;
}
double requests = args.Length > 1 ? double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 0;
int top = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 30;
string etlx = TraceLog.CreateFromEventPipeDataFile(args[0]);
using var log = new TraceLog(etlx);
var byType = new Dictionary<string, long>(StringComparer.Ordinal);
var byFrame = new Dictionary<string, long>(StringComparer.Ordinal);
long total = 0;
foreach (var ev in log.Events)
{
    if (ev is not GCAllocationTickTraceData tick)
    {
        continue;
    }
    long amount = tick.AllocationAmount64;
    total += amount;
    byType[tick.TypeName] = byType.GetValueOrDefault(tick.TypeName) + amount;
    var seen = new HashSet<string>(StringComparer.Ordinal);
    int depth = 0;
    for (var frame = ev.CallStack(); frame is not null && depth < 12; frame = frame.Caller, depth++)
    {
        string method = frame.CodeAddress.FullMethodName;
        string module = frame.CodeAddress.ModuleName;
        if (string.IsNullOrEmpty(method) || module == "System.Private.CoreLib")
        {
            continue;
        }
        string key = module + "!" + method;
        if (seen.Add(key))
        {
            byFrame[key] = byFrame.GetValueOrDefault(key) + amount;
        }
        if (!module.StartsWith("System", StringComparison.Ordinal) && !module.StartsWith("Microsoft", StringComparison.Ordinal))
        {
            break;
        }
    }
}
if (total == 0)
{
    Console.WriteLine("no AllocationTick events (record with --profile gc-verbose)");
    return 1;
}
string PerRequest(long bytes) => requests > 0 ? $"{bytes / requests:F0}" : "-";
Console.WriteLine($"sampled allocations: {total / 1048576.0:F1} MiB" + (requests > 0 ? $", ~{total / requests:F0} B per request (trace estimate)" : ""));
Console.WriteLine();
Console.WriteLine("| type | share | B/request |");
Console.WriteLine("|---|---|---|");
foreach (var (type, bytes) in byType.OrderByDescending(kv => kv.Value).Take(top))
{
    Console.WriteLine($"| `{type}` | {100.0 * bytes / total:F1} % | {PerRequest(bytes)} |");
}
Console.WriteLine();
Console.WriteLine("| allocating frame (first own frame, and framework frames above it) | share | B/request |");
Console.WriteLine("|---|---|---|");
foreach (var (frame, bytes) in byFrame.OrderByDescending(kv => kv.Value).Take(top))
{
    Console.WriteLine($"| `{(frame.Length > 150 ? frame[..150] : frame)}` | {100.0 * bytes / total:F1} % | {PerRequest(bytes)} |");
}
return 0;
