// The namespaces every load generator mode uses.
global using System.Diagnostics;
global using System.Globalization;
global using System.Net;
global using System.Net.WebSockets;
global using Google.Protobuf;
global using Grpc.Core;
global using Grpc.Net.Client;
global using Microsoft.AspNetCore.Builder;
global using Microsoft.AspNetCore.Hosting;
global using Microsoft.AspNetCore.Http;
global using Microsoft.AspNetCore.Server.Kestrel.Core;
global using Microsoft.Extensions.DependencyInjection;
global using Microsoft.Extensions.Logging;
global using OrleansTunnel.Bench.LoadGen.Proto;
