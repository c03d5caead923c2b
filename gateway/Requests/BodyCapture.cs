using System.Buffers;
using System.Text;
using System.Text.Json.Nodes;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Requests;

/// <summary>
/// The first bytes of one body, copied while it streams (at most the route's Capture:MaxBytes, from the
/// journal's Inspector:MaxBytes budget). Frozen when the request ends: JSON fields named in
/// Inspector:RedactJsonFields are redacted then, before the capture can be read.
/// </summary>
public sealed class BodyCapture(int capacity, string? contentType)
{
    private readonly byte[] _buffer = new byte[capacity];
    private int _length;
    private long _total;

    /// <summary>Bytes reserved from the journal's budget.</summary>
    public int Capacity => capacity;

    public string? ContentType { get; set; } = contentType;

    public void Append(ReadOnlySpan<byte> data)
    {
        _total += data.Length;
        int n = Math.Min(data.Length, _buffer.Length - _length);
        if (n > 0)
        {
            data[..n].CopyTo(_buffer.AsSpan(_length));
            _length += n;
        }
    }

    public void Append(in ReadOnlySequence<byte> data)
    {
        if (_length == _buffer.Length)
        {
            _total += data.Length;
            return;
        }
        foreach (var segment in data)
        {
            Append(segment.Span);
        }
    }

    public CapturedBody Freeze(InspectorOptions inspector)
    {
        var bytes = _buffer.AsSpan(0, _length).ToArray();
        bool truncated = _total > _length;
        if (inspector.RedactJsonFields.Count == 0 || !IsJson(ContentType))
        {
            return new CapturedBody(bytes, _total, ContentType, truncated ? $"the first {_length} of {_total} bytes" : null);
        }
        if (truncated)
        {
            // A cut JSON document cannot be parsed, so its secret fields cannot be found: keep nothing.
            return new CapturedBody([], _total, ContentType, $"not kept: the JSON body is larger than the capture ({_length} bytes) and Inspector:RedactJsonFields is set");
        }
        try
        {
            var node = JsonNode.Parse(bytes);
            Redact(node, inspector);
            return new CapturedBody(Encoding.UTF8.GetBytes(node?.ToJsonString() ?? "null"), _total, ContentType, "JSON fields redacted: " + string.Join(", ", inspector.RedactJsonFields));
        }
        catch (System.Text.Json.JsonException)
        {
            return new CapturedBody([], _total, ContentType, "not kept: the body says it is JSON but does not parse, and Inspector:RedactJsonFields is set");
        }
    }

    private static void Redact(JsonNode? node, InspectorOptions inspector)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var key in obj.Select(p => p.Key).ToList())
                {
                    if (inspector.RedactJsonFields.Contains(key, StringComparer.OrdinalIgnoreCase))
                    {
                        obj[key] = InspectorOptions.Redacted;
                    }
                    else
                    {
                        Redact(obj[key], inspector);
                    }
                }
                break;
            case JsonArray array:
                foreach (var item in array)
                {
                    Redact(item, inspector);
                }
                break;
        }
    }

    private static bool IsJson(string? contentType) =>
        contentType is not null && (contentType.Contains("json", StringComparison.OrdinalIgnoreCase));
}
