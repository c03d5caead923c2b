# syntax=docker/dockerfile:1
# otun gateway: a gateway (visitor ingress 8080, tunnel 7070 for agents, admin 9090 with /healthz and /readyz).
# Build from the repository root:  docker build -f docker/gateway.Dockerfile -t orleans-tunnel-gateway .
# The three role images publish the same project (cli/, assembly "otun") with the same command;
# they differ only in entrypoint and exposed ports. Configuration: OTUN_<Section>__<Key>
# environment variables, or /app/appsettings.json (the working directory is /app).

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish cli/OrleansTunnel.Cli.csproj -c Release -o /out

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build --chown=0:0 /out /app
# Non-root, with a uid that matches the Helm chart's securityContext (runAsUser 10001); the files
# stay owned by root, so the process cannot change its own binaries.
USER 10001:10001
# The aspnet base image sets ASPNETCORE_HTTP_PORTS=8080; otun binds only the listeners its settings
# name, and Kestrel would log a warning about overriding that default at every start.
ENV ASPNETCORE_HTTP_PORTS=
# Two glibc malloc arenas: native memory stays flat under load (bench/README.md, soak).
ENV MALLOC_ARENA_MAX=2
# A 32 MiB cap on the GC's gen0 budget, otherwise sized from the node's CPU cache (README, "Memory").
ENV DOTNET_GCGen0MaxBudget=0x2000000
EXPOSE 8080 7070 9090
ENTRYPOINT ["/app/otun", "gateway"]
