// A real OpenID Provider for the OIDC access tests: the npm package oidc-provider (certified) on a
// loopback port, with its development login form (any login; the login is the account id) and one
// confidential client for the gateway. The account's claims: sub and email = the login, email_verified,
// name, and groups ["staff"] (or ["admins"] for a login starting with "admin").
// Env: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS and POST_LOGOUT_URIS (comma-separated), PROVIDER (folder with node_modules).
// Prints "ready ISSUER" once it listens; stops on SIGTERM or when stdin closes.
import { createRequire } from 'node:module';
import path from 'node:path';
import http from 'node:http';

const require = createRequire(path.join(process.env.PROVIDER, 'node_modules', 'x.js'));
const { default: Provider } = await import(require.resolve('oidc-provider'));

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: process.env.REDIRECT_URIS.split(','),
    post_logout_redirect_uris: (process.env.POST_LOGOUT_URIS || '').split(',').filter((u) => u),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'groups'],
  },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['otun-test-cookie-key'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: id, email_verified: true, name: `Test ${id}`, groups: id.startsWith('admin') ? ['admins'] : ['staff'] };
      },
    };
  },
});
// The development interactions only warn about plain http on loopback.
provider.proxy = false;
const server = http.createServer(provider.callback());
server.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
