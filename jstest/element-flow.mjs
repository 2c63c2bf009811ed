// What Element does on start-up and in ordinary use, driven through the
// official matrix-js-sdk against a Redoubt server:
//   node element-flow.mjs BASE_URL USER PASSWORD INVITEE_NAME
// Every request is watched: a missing endpoint (404 M_UNRECOGNIZED) or a
// server error (5xx) fails the run. Prints one JSON summary line.
import * as sdk from "matrix-js-sdk";

const [baseUrl, user, password, invitee] = process.argv.slice(2);
const problems = [];
const calls = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init) => {
  const res = await realFetch(input, init);
  const url = new URL(input instanceof URL ? input.href : typeof input === "string" ? input : input.url);
  const line = `${init?.method || "GET"} ${url.pathname} ${res.status}`;
  calls.push(line);
  if (res.status >= 500) problems.push(line);
  if (res.status === 404) {
    const body = await res.clone().json().catch(() => ({}));
    if (body.errcode === "M_UNRECOGNIZED") problems.push(line + " M_UNRECOGNIZED");
  }
  return res;
};

function check(cond, what) {
  if (!cond) problems.push("check failed: " + what);
}

async function main() {
  const anon = sdk.createClient({ baseUrl });
  const versions = await anon.getVersions();
  check(versions.versions.includes("v1.11"), "versions lists v1.11");
  const flows = await anon.loginFlows();
  check(flows.flows.some((f) => f.type === "m.login.password"), "password login offered");
  const login = await anon.loginRequest({ type: "m.login.password", identifier: { type: "m.id.user", user }, password,
    initial_device_display_name: "matrix-js-sdk test" });
  const client = sdk.createClient({ baseUrl, accessToken: login.access_token, userId: login.user_id, deviceId: login.device_id });
  client.on("sync.unexpectedError", (e) => problems.push("sync error: " + e));

  // Start-up: initial sync and what Element reads around it.
  const prepared = new Promise((resolve) => client.on(sdk.ClientEvent.Sync, (state) => state === "PREPARED" && resolve()));
  await client.startClient({ initialSyncLimit: 20 });
  await prepared;
  const rules = await client.getPushRules();
  check(rules.global && rules.global.override.length > 0, "push rules have defaults");
  await client.getCapabilities();
  await client.getProfileInfo(login.user_id);
  await client.setDisplayName("JS SDK User");
  await client.getDevices();
  await client.getThreePids();
  await client.getThirdpartyProtocols();
  await client.getPushers();
  await client.getMediaConfig();
  await client.publicRooms({ limit: 20 });

  // A room, someone found through the user directory, and a conversation.
  const { room_id: roomId } = await client.createRoom({ name: "js-sdk room", preset: "private_chat" });
  const found = await client.searchUserDirectory({ term: invitee });
  const other = found.results.find((r) => r.user_id.startsWith("@" + invitee + ":"));
  check(other, "user directory finds the invitee");
  if (other) await client.invite(roomId, other.user_id);
  await client.setRoomTag(roomId, "m.favourite", { order: 0.5 });
  const { event_id: first } = await client.sendTextMessage(roomId, "hello from matrix-js-sdk");
  await client.sendEvent(roomId, "m.reaction", { "m.relates_to": { rel_type: "m.annotation", event_id: first, key: "👍" } });
  await client.sendEvent(roomId, "m.room.message", { msgtype: "m.text", body: "a reply in a thread",
    "m.relates_to": { rel_type: "m.thread", event_id: first, is_falling_back: true, "m.in_reply_to": { event_id: first } } });
  await client.sendReadReceipt(new sdk.MatrixEvent({ event_id: first, room_id: roomId, type: "m.room.message" }));
  await client.sendTyping(roomId, true, 5000);
  const relations = await client.fetchRelations(roomId, first, "m.thread", "m.room.message", { dir: "b" });
  check(relations.chunk.length === 1, "the thread has one reply");
  const threads = await client.http.authedRequest("GET", `/rooms/${encodeURIComponent(roomId)}/threads`, undefined, undefined, { prefix: "/_matrix/client/v1" });
  check(threads.chunk.length === 1, "one thread listed");
  const results = await client.searchRoomEvents({ term: "matrix-js-sdk" });
  check(results.results.length >= 1, "search finds the message");
  const ctx = await client.http.authedRequest("GET", `/rooms/${encodeURIComponent(roomId)}/context/${encodeURIComponent(first)}`);
  check(ctx.event.event_id === first, "context of the message");

  client.stopClient();
  await client.logout(true);
  console.log(JSON.stringify({ ok: problems.length === 0, problems, calls: calls.length }));
  process.exit(problems.length === 0 ? 0 : 1);
}

main().catch((e) => {
  console.log(JSON.stringify({ ok: false, problems: [...problems, "exception: " + (e.stack || e)], calls: calls.length }));
  process.exit(1);
});
