using System.Globalization;
using Microsoft.AspNetCore.Http;
using OrleansTunnel.Gateway.Requests;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Admin;

/// <summary>
/// GET /api/requests: the requests of every gateway of the cluster (or this one), gathered on demand
/// from the gateways' journals through their <see cref="IGatewayJournalGrain"/>s (nothing is copied
/// into storage), filtered, newest first, a page at a time.
/// </summary>
public sealed class RequestListing(IGrainFactory grains, RoutingCache routing, RequestJournal journal)
{
    /// <summary>A page: the requests, the cursor of the next page (null at the end) and which gateways answered.</summary>
    public sealed record Page(RequestSummary[] Items, Cursor? Next, string[] Gateways, string[] Unreachable);

    public sealed record Cursor(DateTimeOffset Before, string BeforeId);

    /// <summary>Reads the filter from the query string; null with a message when a value is not understood.</summary>
    public static (RequestQuery? Query, string? Problem) Parse(IQueryCollection q)
    {
        int statusClass = 0;
        if (q["status"].FirstOrDefault() is { Length: > 0 } status)
        {
            // "5", "5xx" or "500" all mean the 5xx class.
            if (!int.TryParse(status.TrimEnd('x', 'X'), NumberStyles.None, CultureInfo.InvariantCulture, out statusClass) || statusClass is < 1 or > 599)
            {
                return (null, $"status '{status}' is not a status class such as 2xx or 5");
            }
            statusClass = statusClass >= 100 ? statusClass / 100 : statusClass;
        }
        double minDuration = 0;
        if (q["minDurationMs"].FirstOrDefault() is { Length: > 0 } md && !double.TryParse(md, NumberStyles.Float, CultureInfo.InvariantCulture, out minDuration))
        {
            return (null, $"minDurationMs '{md}' is not a number");
        }
        DateTimeOffset? before = null;
        if (q["before"].FirstOrDefault() is { Length: > 0 } b)
        {
            if (!DateTimeOffset.TryParse(b, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var parsed))
            {
                return (null, $"before '{b}' is not a time (use the page's next.before as given)");
            }
            before = parsed;
        }
        int limit = 100;
        if (q["limit"].FirstOrDefault() is { Length: > 0 } l && (!int.TryParse(l, out limit) || limit is < 1 or > RequestQuery.MaxLimit))
        {
            return (null, $"limit '{l}' must be 1 to {RequestQuery.MaxLimit}");
        }
        return (new RequestQuery(
            q["service"].FirstOrDefault(), q["host"].FirstOrDefault(), statusClass, q["path"].FirstOrDefault(), minDuration,
            before, q["beforeId"].FirstOrDefault(), limit, q["live"].FirstOrDefault() is "true" or "1"), null);
    }

    public async Task<Page> ListAsync(RequestQuery query, bool clusterWide)
    {
        int limit = Math.Clamp(query.Limit, 1, RequestQuery.MaxLimit);
        // One more than a page from each gateway: if any is left over, there is a next page.
        query = query with { Limit = limit + 1 };
        var others = clusterWide
            ? routing.Current.Snapshot.Gateways.Select(g => g.GatewayId).Where(id => id != journal.GatewayId).Distinct(StringComparer.Ordinal).ToArray()
            : [];
        var asked = others.Select(id => grains.GetGrain<IGatewayJournalGrain>(id).List(query)).ToArray();
        var all = new List<RequestSummary>(journal.List(query));
        var answered = new List<string> { journal.GatewayId };
        var unreachable = new List<string>();
        for (int i = 0; i < others.Length; i++)
        {
            RequestSummary[]? items;
            try
            {
                items = await asked[i];
            }
            catch (Exception)
            {
                items = null;
            }
            if (items is null)
            {
                unreachable.Add(others[i]);
                continue;
            }
            answered.Add(others[i]);
            all.AddRange(items);
        }
        all.Sort(RequestSummary.NewestFirst);
        // More than a page came back: the next page starts after the last one shown.
        var page = all.Count > limit ? all.GetRange(0, limit) : all;
        var next = all.Count > limit ? new Cursor(page[^1].OpenedAt, page[^1].RequestId) : null;
        return new Page([.. page], next, [.. answered], [.. unreachable]);
    }
}
