// Sign-in through Matrix's OAuth 2.0 API with matrix-js-sdk's own OIDC
// helpers, as Element Web does it, then an encrypted conversation with
// that session:
//   node oidc-flow.mjs BASE_URL USER PASSWORD OTHER_USER OTHER_PASSWORD
// discovery (auth_metadata), dynamic client registration, the
// authorization URL (PKCE, state and nonce kept in sessionStorage), the
// browser's part (sign-in and consent pages, played here with fetch and a
// cookie jar), the code exchange and ID token check, a token refresh, and
// then /sync and an m.room.encrypted message that the other user's client
// decrypts. Prints one JSON summary line.
import * as sdk from "matrix-js-sdk";

const [baseUrl, user, password, otherUser, otherPassword] = process.argv.slice(2);
const app = "http://127.0.0.1:4399";
const redirectUri = app + "/callback";
const problems = [];
const check = (cond, what) => { if (!cond) problems.push("check failed: " + what); };

// What a browser gives oidc-client-ts: sessionStorage and location.
class MemoryStorage {
  #m = new Map();
  get length() { return this.#m.size; }
  key(i) { return [...this.#m.keys()][i] ?? null; }
  getItem(k) { return this.#m.has(k) ? this.#m.get(k) : null; }
  setItem(k, v) { this.#m.set(k, String(v)); }
  removeItem(k) { this.#m.delete(k); }
  clear() { this.#m.clear(); }
}
globalThis.window = globalThis;
globalThis.sessionStorage = new MemoryStorage();
globalThis.localStorage = new MemoryStorage();
globalThis.location = { origin: app, href: app + "/" };

// The browser: a cookie jar, redirects followed until the app's own URL.
const jar = new Map();
const cookieHeader = () => ({ Cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; ") });
function keep(res) {
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(";");
    const i = pair.indexOf("=");
    jar.set(pair.slice(0, i), pair.slice(i + 1));
  }
}
async function browse(url, init = {}) {
  for (let hops = 0; hops < 20; hops++) {
    if (url.startsWith(app)) return { callback: new URL(url) };
    const res = await fetch(url, { ...init, redirect: "manual", headers: { ...(init.headers || {}), ...cookieHeader() } });
    keep(res);
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get("location"), url).href;
      init = {};
      continue;
    }
    return { url, status: res.status, body: await res.text() };
  }
  throw new Error("too many redirects");
}
const postForm = (url, form) => browse(url, { method: "POST", body: new URLSearchParams(form),
  headers: { "Content-Type": "application/x-www-form-urlencoded" } });

async function loggedInClient(opts) {
  const client = sdk.createClient({ baseUrl, ...opts });
  await client.initRustCrypto({ useIndexedDB: false });
  client.on("sync.unexpectedError", (e) => problems.push("sync error: " + e));
  const prepared = new Promise((resolve) => client.on(sdk.ClientEvent.Sync, (state) => state === "PREPARED" && resolve()));
  await client.startClient({ initialSyncLimit: 10 });
  await prepared;
  return client;
}

async function main() {
  // Discovery and registration.
  const anon = sdk.createClient({ baseUrl });
  const metadata = await anon.getAuthMetadata();
  check(metadata.issuer && metadata.signingKeys?.length > 0, "auth metadata with signing keys");
  const clientId = await sdk.registerOidcClient(metadata, { clientName: "js-sdk OIDC test", clientUri: app + "/",
    redirectUris: [redirectUri], applicationType: "web" });

  // The authorization URL, and the browser's part.
  const nonce = "n-" + Math.random().toString(36).slice(2);
  const authUrl = await sdk.generateOidcAuthorizationUrl({ metadata, redirectUri, clientId, homeserverUrl: baseUrl, nonce });
  let page = await browse(authUrl);
  const id = new URL(page.url).searchParams.get("id");
  check(page.status === 200 && page.body.includes('name="password"'), "the sign-in page asks for a password");
  page = await postForm(new URL("login", metadata.issuer).href, { id, username: user, password });
  const form = /name="form" value="([^"]+)"/.exec(page.body)?.[1];
  check(page.body.includes("js-sdk OIDC test"), "the consent page names the client");
  const done = await postForm(new URL("consent", metadata.issuer).href, { id, form, allow: "1" });
  check(done.callback, "the browser comes back to the app");
  const code = done.callback.searchParams.get("code");
  const state = done.callback.searchParams.get("state");

  // The code for tokens; the ID token checked by the SDK.
  const grant = await sdk.completeAuthorizationCodeGrant(code, state);
  check(grant.homeserverUrl === baseUrl, "the stored state names the homeserver");
  // (completeAuthorizationCodeGrant checked the ID token: issuer,
  // audience, expiry and this sign-in's nonce.)
  const tokens = grant.tokenResponse;
  const who = await sdk.createClient({ baseUrl, accessToken: tokens.access_token }).whoami();
  check(who.user_id.startsWith("@" + user + ":") && grant.idTokenClaims.sub === who.user_id, "the session is the user's");

  // A refresh, as the SDK does when the access token expires.
  const refresher = new sdk.OidcTokenRefresher(metadata.issuer, clientId, redirectUri, who.device_id, grant.idTokenClaims);
  await refresher.oidcClientReady;
  const fresh = await refresher.doRefreshAccessToken(tokens.refresh_token);
  check(fresh.accessToken && fresh.accessToken !== tokens.access_token, "the refresh gives a new access token");

  // An encrypted conversation with that session.
  const other = await anon.loginRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: otherUser }, password: otherPassword });
  const bob = await loggedInClient({ accessToken: other.access_token, userId: other.user_id, deviceId: other.device_id });
  const alice = await loggedInClient({ accessToken: fresh.accessToken, refreshToken: fresh.refreshToken, userId: who.user_id,
    deviceId: who.device_id, tokenRefreshFunction: refresher.doRefreshAccessToken.bind(refresher) });
  const { room_id: roomId } = await alice.createRoom({ name: "oidc encrypted", preset: "private_chat", invite: [other.user_id],
    initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }] });
  await new Promise((resolve) => {
    const tryJoin = () => bob.joinRoom(roomId).then(resolve, () => setTimeout(tryJoin, 200));
    tryJoin();
  });
  const received = new Promise((resolve) => {
    bob.on(sdk.MatrixEventEvent.Decrypted, (ev) => {
      if (ev.getRoomId() === roomId && ev.getContent().body) resolve(ev);
    });
  });
  await new Promise((r) => setTimeout(r, 500)); // alice's client sees bob's join
  await alice.sendTextMessage(roomId, "secret over OIDC");
  const ev = await Promise.race([received, new Promise((_, reject) => setTimeout(() => reject(new Error("no decrypted message")), 30000))]);
  check(ev.getWireType() === "m.room.encrypted", "the message travelled encrypted");
  check(ev.getContent().body === "secret over OIDC", "the other client decrypted it");

  alice.stopClient();
  bob.stopClient();
  console.log(JSON.stringify({ ok: problems.length === 0, problems }));
  process.exit(problems.length === 0 ? 0 : 1);
}

main().catch((e) => {
  console.log(JSON.stringify({ ok: false, problems: [...problems, "exception: " + (e.stack || e)] }));
  process.exit(1);
});
