// The /play/ page: log in, pick a character, play. Wires the modules together:
//
//   auth.js       login, token refresh, logout (HTTP)
//   net.js        the protocol client (transport.js: native or Socket.IO)
//   world.js      the zone on a canvas, movement
//   chat.js       chat channels, whispers, emotes, typing, blocks
//   combat.js     fights and challenges
//   ui.js         connection indicator, presence panels, menus
//
// URL parameters: ?transport=native|socketio picks the transport (the login form sets it);
// ?sio=websocket makes socket.io-client skip long-polling (transports: ["websocket"]).

import { Auth } from "./auth.js";
import { Chat } from "./chat.js";
import { Combat } from "./combat.js";
import { GameClient } from "./net.js";
import { ConnectionIndicator, GuildPanel, ZonePanel, showPlayerMenu, toast } from "./ui.js";
import { World } from "./world.js";

const $ = (selector) => document.querySelector(selector);
const params = new URLSearchParams(location.search);
const auth = new Auth();
const names = new Map(); // userId -> character name, for typing lines, blocks and menus
const game = { account: null, character: null, client: null };

function screen(name) {
  for (const section of document.querySelectorAll("main > section"))
    section.hidden = section.id !== name;
}

// --- login and character choice ------------------------------------------------------------

$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = e.target;
  $("#login-error").textContent = "";
  try {
    await auth.login(form.username.value.trim(), form.password.value);
    await showCharacters();
  } catch (err) {
    $("#login-error").textContent = err.status === 401 ? "Wrong username or password" : err.message;
  }
});
$("#login-form").transport.value = params.get("transport") === "socketio" ? "socketio" : "native";

async function showCharacters() {
  game.account = await auth.getJson("/play/api/account/");
  $("#who").textContent = game.account.user.username;
  const list = $("#characters");
  list.replaceChildren();
  for (const c of game.account.characters) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = `Play ${c.name}`;
    button.dataset.character = c.id;
    button.addEventListener("click", () => play(c));
    const item = document.createElement("li");
    item.append(
      button,
      ` level ${c.level} ${c.class} in ${game.account.zones[c.zone]?.name ?? c.zone}`,
    );
    list.append(item);
  }
  if (!game.account.characters.length) list.textContent = "This account has no character.";
  screen("pick");
}

$("#logout").addEventListener("click", async () => {
  game.client?.stop();
  await auth.logout();
  location.reload();
});

// --- playing -------------------------------------------------------------------------------

function play(chosen) {
  const transport = $("#login-form").transport.value;
  const client = new GameClient({
    auth,
    transport,
    sioLibrary: document.body.dataset.sioLibrary,
    sioWebsocketOnly: params.get("sio") === "websocket",
  });
  game.client = client;
  const indicator = new ConnectionIndicator($("#connection"), {
    onReconnectNow: () => client.reconnectNow(),
  });
  client.on("status", (s) => indicator.status(s));
  window.addEventListener("online", () => client.reconnectNow());

  const onPlayerClick = (player, event) => playerMenu(player, event);
  const world = new World($("#map"), client, {
    onSnap: (code) => toast(`Moved back by the server (${code})`, "warn", 2500),
    onClickCharacter: (other, event) => onPlayerClick(other, event),
  });
  const chat = new Chat($("#chat"), client, { names, onPlayerClick });
  const combat = new Combat($("#combat"), client, { myCharacterId: () => game.character?.id });
  const zonePanel = new ZonePanel($("#zone-panel"), client, {
    names,
    onPlayerClick,
    onListed: (listing) => placeStored(listing),
  });
  const guildPanel = new GuildPanel($("#guild-panel"), client, { names, onPlayerClick });
  Object.assign(game, { world, chat, combat, zonePanel, guildPanel, indicator });
  window.aeturnisPlay = game; // for the browser tests and the curious

  wireWorldEvents(client, world);
  client.on("system:announcement", (a) => banner(a.message, a.priority));
  client.on("system:shutdown", () => toast("The server is restarting: reconnecting…", "warn"));
  client.on("session:kicked", ({ reason }) =>
    toast(`Disconnected by the server: ${reason}`, "error", 30_000),
  );
  client.on("logged-out", () => location.reload());
  client.on("ready", (initial) =>
    enterGame(initial, chosen).catch((err) =>
      toast(`Could not enter the game: ${err.message}`, "error", 30_000),
    ),
  );
  client.restore = (initial) => reenter(initial, chosen);
  client.on("resumed", (report) => afterResume(report));
  auth.keepFresh(
    (token) => client.tokenRefreshed(token).catch(() => {}),
    () => toast("Could not refresh the session: log in again", "error"),
  );
  screen("game");
  client.connect();
}

/** Select the character (unless the server already did, for a fight in progress). */
async function selectCharacter(initial, chosen) {
  if (initial.character) return initial.character;
  const reply = await game.client.request("character:select", { characterId: chosen.id });
  return reply.character;
}

async function enterGame(initial, chosen) {
  const character = await selectCharacter(initial, chosen);
  await enterZone(character, character.zone, character.position);
  const own = game.account.characters.find((c) => c.id === character.id);
  game.chat.hasGuild = Boolean(own?.guild);
  game.chat.myName = character.name;
  $("#chat [data-tab=guild]").hidden = !own?.guild;
  await Promise.all([
    game.chat.reload(),
    game.chat.loadBlocklist(),
    game.guildPanel.setGuild(own?.guild),
  ]);
  game.combat.resume(initial.combat);
  $("#status-form").status.value = character.status ?? "idle";
}

/** After a reconnect: the character again, then the rooms it is in (for `sync:resume`). */
async function reenter(initial, chosen) {
  const character = await selectCharacter(initial, chosen);
  if (character.zone !== game.character.zone) {
    await enterZone(character, character.zone, character.position); // moved on elsewhere
  } else {
    game.character = character;
    Object.assign(game.world.me, { pos: { ...character.position }, target: null });
    game.world.me.sent = { ...character.position };
  }
  const rooms = [`character:${character.id}`, `zone:${character.zone}`];
  if (character.guildId) rooms.push(`guild:${character.guildId}`);
  if (initial.combat) {
    rooms.push(`combat:${initial.combat.sessionId}`);
    game.combat.resume(initial.combat);
  }
  return rooms;
}

function afterResume(report) {
  game.lastResume = report;
  game.indicator.resumed(report);
  const lost = Object.entries(report.rooms ?? {})
    .filter(([, r]) => !r.recovered)
    .map(([room]) => room);
  const reload = new Set();
  for (const room of [...lost, ...(report.unknownRooms ?? [])]) {
    if (room.startsWith("zone:")) reload.add("zone");
    if (room === "global:chat") reload.add("global");
    if (room.startsWith("guild:")) reload.add("guild");
    if (room.startsWith("user:")) reload.add("whisper");
    if (room.startsWith("combat:")) game.combat.reload(room.slice("combat:".length));
  }
  if (report.error) ["zone", "global", "guild", "whisper"].forEach((c) => reload.add(c));
  if (reload.size) game.chat.reload([...reload]).catch(() => {});
  game.zonePanel.refresh();
  game.guildPanel.refresh();
  game.chat.note(
    report.recovered ? "Reconnected: missed events recovered" : "Reconnected: history reloaded",
  );
}

async function enterZone(character, zoneKey, position) {
  game.character = { ...character, zone: zoneKey, position };
  const zone = { key: zoneKey, ...game.account.zones[zoneKey] };
  game.world.enter(game.character, zone, position);
  const neighbours = $("#neighbours");
  neighbours.replaceChildren(
    ...zone.neighbours.map((key) => {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.zone = key;
      button.textContent = `Go to ${game.account.zones[key].name}`;
      button.addEventListener("click", () => changeZone(key));
      return button;
    }),
  );
  $("#zone-name").textContent = zone.name;
  await game.zonePanel.refresh();
}

async function changeZone(key) {
  try {
    const changed = await game.client.request("character:change_zone", { zone: key });
    await enterZone(game.character, changed.zone, changed.position);
    await game.chat.reload(["zone"]);
  } catch (err) {
    toast(`${err.code}: ${err.message}`, "error");
  }
}

/** Place the characters of a `presence:zone` listing, where the database last saw them. */
async function placeStored(listing) {
  let stored = new Map();
  try {
    const { characters } = await auth.getJson(`/play/api/zones/${listing.zone}/positions/`);
    stored = new Map(characters.map((c) => [c.characterId, c.position]));
  } catch {
    // Without stored positions, idle characters appear when they next move.
  }
  game.world.populate(listing.characters, stored);
}

function wireWorldEvents(client, world) {
  client.on("character:moved", (m) => world.place(m.characterId, { pos: m.position }));
  client.on("character:online", (c) => {
    names.set(c.userId, c.name);
    world.place(c.characterId, {
      name: c.name,
      userId: c.userId,
      pos: c.position,
      status: "online",
    });
  });
  client.on("zone:character_entered", (c) => {
    const spawn = game.account.zones[c.zone]?.spawn;
    world.place(c.characterId, {
      name: c.name,
      userId: c.userId,
      pos: spawn && { ...spawn },
      status: "online",
    });
  });
  client.on("zone:character_left", (c) => {
    world.remove(c.characterId);
    game.chat.note(`${c.name} left for ${game.account.zones[c.toZone]?.name ?? c.toZone}`);
  });
  client.on("character:offline", (c) => {
    game.chat.note(`${world.others.get(c.characterId)?.name ?? "Someone"} went offline`);
    world.remove(c.characterId);
  });
  client.on("character:online", (c) => game.chat.note(`${c.name} is online`));
}

function playerMenu(player, event) {
  if (player.userId === game.client.userId) return;
  const actions = [["Whisper", () => game.chat.whisperTo(player.name)]];
  if (player.characterId && game.world.others.has(player.characterId)) {
    actions.push(["Challenge to a duel", () => game.combat.challenge(player.characterId)]);
  }
  if (game.chat.blocked.has(player.userId))
    actions.push(["Unblock", () => game.chat.unblock(player.userId)]);
  else
    actions.push([
      "Block",
      () => game.chat.block(player.userId).then(() => toast(`${player.name} blocked`)),
    ]);
  showPlayerMenu(event, player, actions);
}

function banner(message, priority) {
  const node = $("#announcement");
  node.textContent = `📢 ${message}`;
  node.dataset.priority = priority;
  node.hidden = false;
  clearTimeout(banner.timer);
  banner.timer = setTimeout(() => (node.hidden = true), 15_000);
}

// --- the action bar ----------------------------------------------------------------------------

for (const button of document.querySelectorAll("[data-fight]")) {
  button.addEventListener("click", () => game.combat.fight(button.dataset.fight));
}
$("#status-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = e.target;
  const request = { status: form.status.value };
  if (form.message.value.trim()) request.message = form.message.value.trim();
  try {
    await game.client.request("character:status_update", request);
    toast(`Status: ${request.status}`);
  } catch (err) {
    toast(`${err.code}: ${err.message}`, "error");
  }
});

// A tab that still holds a login goes straight to the character choice.
if (auth.access) showCharacters().catch(() => screen("login"));
else screen("login");
