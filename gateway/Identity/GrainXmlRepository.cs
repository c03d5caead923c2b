using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.Repositories;
using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Identity;

/// <summary>
/// Data Protection's key ring, kept by the cluster's <see cref="IKeyRingGrain"/> (persisted like the
/// routes), so every gateway protects and reads session cookies with the same keys. Data Protection
/// calls this rarely (at start, when a key nears expiry, every 24 h) and synchronously.
/// </summary>
public sealed class GrainXmlRepository(IServiceProvider services) : IXmlRepository
{
    private IKeyRingGrain Grain => services.GetRequiredService<IGrainFactory>().GetGrain<IKeyRingGrain>(KeyRingGrain.DefaultKey);

    public IReadOnlyCollection<XElement> GetAllElements() =>
        [.. Task.Run(() => Grain.GetAll()).GetAwaiter().GetResult().Select(x => XElement.Parse(x))];

    public void StoreElement(XElement element, string friendlyName) =>
        Task.Run(() => Grain.Store(friendlyName, element.ToString(SaveOptions.DisableFormatting))).GetAwaiter().GetResult();
}
