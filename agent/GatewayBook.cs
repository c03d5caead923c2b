namespace OrleansTunnel.Agent;

/// <summary>
/// The gateways an agent knows: the configured ones (Agent:Gateways) and those the cluster announced
/// (welcome and config frames). Slots pick gateways no other slot is connected to, by gateway id where
/// it is known (two URLs may lead to one gateway, e.g. through a load balancer), so the agent's
/// connections land on distinct gateways whenever there are several.
/// </summary>
public sealed class GatewayBook
{
    private readonly Lock _gate = new();
    private readonly string[] _seeds;
    private string[] _learned = [];
    private readonly Dictionary<string, string> _idByUrl = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<uint, (string Url, string? GatewayId)> _slots = [];
    private readonly Dictionary<string, long> _failedAt = new(StringComparer.OrdinalIgnoreCase);
    // URLs that failed since they were last announced or connected: never a reason to move a working
    // connection (agents outside the network of announced addresses would flap otherwise).
    private readonly HashSet<string> _unreachable = new(StringComparer.OrdinalIgnoreCase);
    private readonly long _failureMemoryMs;
    private readonly bool _seedsUseTls;
    private readonly bool _allowCleartext;
    private readonly HashSet<string> _refused = new(StringComparer.OrdinalIgnoreCase);

    /// <param name="seeds">The configured gateways.</param>
    /// <param name="failureMemory">How long a URL that failed is avoided while others work (unless the cluster announces it anew).</param>
    /// <param name="allowCleartext">Agent:AllowCleartext: whether http:// to a host other than loopback may be dialled.</param>
    public GatewayBook(IEnumerable<string> seeds, TimeSpan failureMemory, bool allowCleartext = false)
    {
        _seeds = [.. seeds.Select(Normalize).Distinct(StringComparer.OrdinalIgnoreCase)];
        _failureMemoryMs = (long)failureMemory.TotalMilliseconds;
        _seedsUseTls = _seeds.Any(s => s.StartsWith("https://", StringComparison.OrdinalIgnoreCase));
        _allowCleartext = allowCleartext;
    }

    /// <summary>
    /// Why an announced URL is not dialled, or null: it must be a bare http(s)://host:port; an agent
    /// configured with an https:// gateway never learns a cleartext one (the token would travel in clear
    /// to whoever the announcement names); cleartext to a host other than loopback needs Agent:AllowCleartext.
    /// </summary>
    public static string? LearnProblem(string url, bool seedsUseTls, bool allowCleartext)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
            || uri.UserInfo.Length > 0 || uri.PathAndQuery != "/" || uri.Fragment.Length > 0)
        {
            return "it is not a bare http(s)://host:port URL";
        }
        if (uri.Scheme == Uri.UriSchemeHttp && seedsUseTls)
        {
            return "it is cleartext while this agent's configured gateways use https://";
        }
        if (uri.Scheme == Uri.UriSchemeHttp && !allowCleartext && !uri.IsLoopback)
        {
            return "it is cleartext to a host other than loopback (set Agent:AllowCleartext=true to allow)";
        }
        return null;
    }

    /// <summary>Every gateway URL known now: configured first, then announced.</summary>
    public string[] Known
    {
        get
        {
            lock (_gate)
            {
                return KnownLocked();
            }
        }
    }

    /// <summary>Raised when the cluster announced a gateway list different from the last one.</summary>
    public event Action? Changed;

    /// <summary>
    /// Replaces the announced gateways (an empty list is ignored: the cluster may not advertise).
    /// Returns the announced URLs refused for the first time, each with the reason (see <see cref="LearnProblem"/>).
    /// </summary>
    public IReadOnlyList<string> Learn(IEnumerable<string> urls)
    {
        var refused = new List<string>();
        var next = urls.Where(u => !string.IsNullOrWhiteSpace(u)).Select(Normalize).Distinct(StringComparer.OrdinalIgnoreCase)
            .Where(u =>
            {
                if (LearnProblem(u, _seedsUseTls, _allowCleartext) is not { } problem)
                {
                    return true;
                }
                lock (_gate)
                {
                    if (_refused.Count < 1024 && _refused.Add(u))
                    {
                        refused.Add($"{Printable(u)}: {problem}");
                    }
                }
                return false;
            })
            .Order(StringComparer.OrdinalIgnoreCase).ToArray();
        if (next.Length == 0)
        {
            return refused;
        }
        lock (_gate)
        {
            if (next.SequenceEqual(_learned, StringComparer.OrdinalIgnoreCase))
            {
                return refused;
            }
            // A gateway the cluster announces anew (it rejoined) deserves another try.
            foreach (var url in next.Except(_learned, StringComparer.OrdinalIgnoreCase))
            {
                _failedAt.Remove(url);
                _unreachable.Remove(url);
            }
            _learned = next;
            // Forget what no longer applies (pod addresses come and go).
            var known = KnownLocked().ToHashSet(StringComparer.OrdinalIgnoreCase);
            foreach (var url in _idByUrl.Keys.Where(u => !known.Contains(u)).ToList())
            {
                _idByUrl.Remove(url);
            }
            foreach (var url in _failedAt.Keys.Where(u => !known.Contains(u)).ToList())
            {
                _failedAt.Remove(url);
                _unreachable.Remove(url);
            }
        }
        Changed?.Invoke();
        return refused;
    }

    private static string Printable(string url) =>
        url.Length <= 200 && url.All(c => c is > ' ' and <= '~') ? url : "(an announced URL that is not printable)";

    /// <summary>
    /// The URL a slot dials next, from its cursor on: the first that leads to no gateway another slot is
    /// connected to and did not fail lately; else one that did not fail lately (shared with another
    /// slot: better than a dead one); else one no other slot uses; else the URL at the cursor.
    /// </summary>
    public string Pick(uint slot, int cursor)
    {
        lock (_gate)
        {
            var known = KnownLocked();
            int n = known.Length;
            var order = Enumerable.Range(0, n).Select(i => known[(cursor + i) % n]).ToArray();
            string pick = order.FirstOrDefault(u => !UsedByOther(slot, u) && !FailedLately(u))
                ?? order.FirstOrDefault(u => !FailedLately(u))
                ?? order.FirstOrDefault(u => !UsedByOther(slot, u))
                ?? order[0];
            _slots[slot] = (pick, _idByUrl.GetValueOrDefault(pick));
            return pick;
        }
    }

    /// <summary>Dialling this URL failed: avoid it for a while if others work.</summary>
    public void Failed(string url)
    {
        lock (_gate)
        {
            _failedAt[Normalize(url)] = Environment.TickCount64;
            _unreachable.Add(Normalize(url));
        }
    }

    /// <summary>The slot is connected: its URL leads to this gateway.</summary>
    public void Connected(uint slot, string url, string gatewayId)
    {
        lock (_gate)
        {
            _idByUrl[Normalize(url)] = gatewayId;
            _slots[slot] = (Normalize(url), gatewayId);
            _failedAt.Remove(Normalize(url));
            _unreachable.Remove(Normalize(url));
        }
    }

    public void Released(uint slot)
    {
        lock (_gate)
        {
            _slots.Remove(slot);
        }
    }

    /// <summary>
    /// True when this slot shares its gateway with a lower slot while some known URL leads to a gateway
    /// no slot uses (or one not tried yet): the slot should move there.
    /// </summary>
    public bool ShouldMove(uint slot)
    {
        lock (_gate)
        {
            if (!_slots.TryGetValue(slot, out var mine) || mine.GatewayId is null)
            {
                return false;
            }
            bool shared = _slots.Any(kv => kv.Key < slot && kv.Value.GatewayId == mine.GatewayId);
            if (!shared)
            {
                return false;
            }
            return KnownLocked().Any(url => !UsedByOther(slot, url) && !_unreachable.Contains(url) && _idByUrl.GetValueOrDefault(url) != mine.GatewayId);
        }
    }

    /// <summary>Whether the slot's gateway is also a lower slot's (so moving it would spread the agent).</summary>
    public bool SharesGateway(uint slot)
    {
        lock (_gate)
        {
            return _slots.TryGetValue(slot, out var mine) && mine.GatewayId is not null
                && _slots.Any(kv => kv.Key < slot && kv.Value.GatewayId == mine.GatewayId);
        }
    }

    /// <summary>Known URLs that failed since they were last announced or connected.</summary>
    public IReadOnlyList<string> Unreachable()
    {
        lock (_gate)
        {
            return [.. _unreachable];
        }
    }

    /// <summary>
    /// A URL that failed accepts connections again (a probe reached it): a gateway restarted at the same
    /// address before the cluster's directory dropped it is never announced anew, so this is how the
    /// agent learns it came back.
    /// </summary>
    public void Reachable(string url)
    {
        lock (_gate)
        {
            _unreachable.Remove(Normalize(url));
            _failedAt.Remove(Normalize(url));
        }
    }

    private bool FailedLately(string url) =>
        _failedAt.TryGetValue(url, out long at) && Environment.TickCount64 - at < _failureMemoryMs;

    private bool UsedByOther(uint slot, string url)
    {
        string? id = _idByUrl.GetValueOrDefault(url);
        return _slots.Any(kv => kv.Key != slot && (string.Equals(kv.Value.Url, url, StringComparison.OrdinalIgnoreCase) || (id is not null && kv.Value.GatewayId == id)));
    }

    private string[] KnownLocked() => [.. _seeds.Concat(_learned).Distinct(StringComparer.OrdinalIgnoreCase)];

    private static string Normalize(string url) => url.Trim().TrimEnd('/');
}
