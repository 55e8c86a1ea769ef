// Small DOM helpers and the page's panels: connection indicator, who is in the zone, the guild
// roster with presence (PROTOCOL.md §5.5), the player menu, toasts.

/** `el("li", {class: "x", onclick}, "text", child)`: an element with attributes and children. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false)
      node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

export function playerName(names, userId) {
  return names.get(userId) ?? `player ${userId}`;
}

export function toast(text, kind = "info", ms = 5000) {
  const node = el("div", { class: `toast ${kind}`, role: "status" }, text);
  document.querySelector("#toasts").append(node);
  setTimeout(() => node.remove(), ms);
}

/** The connection indicator: state, transport, reconnect countdown, what a resume recovered. */
export class ConnectionIndicator {
  constructor(root, { onReconnectNow }) {
    this.root = root;
    this.dot = root.querySelector(".dot");
    this.text = root.querySelector("[data-status-text]");
    this.recovery = root.querySelector("[data-recovery]");
    root.querySelector("[data-reconnect]").addEventListener("click", onReconnectNow);
    setInterval(() => this.#countdown(), 500);
  }

  status({ state, transport, attempt, retryAt, code, reason }) {
    this.state = state;
    this.retryAt = state === "reconnecting" ? retryAt : null;
    this.root.dataset.state = state;
    const why = code || reason ? ` (${[code, reason].filter(Boolean).join(" ")})` : "";
    const tries = attempt ? `, attempt ${attempt + 1}` : "";
    this.label = `${state}${state === "reconnecting" ? tries : ""}${why} · ${transport}`;
    this.#countdown();
  }

  #countdown() {
    const wait = this.retryAt ? Math.max(0, Math.ceil((this.retryAt - Date.now()) / 1000)) : 0;
    this.text.textContent = wait ? `${this.label} · next try in ${wait} s` : (this.label ?? "");
    this.root.querySelector("[data-reconnect]").hidden = this.state !== "reconnecting";
  }

  /** After a reconnect: whether the missed events came back (`sync:resumed`, or Socket.IO). */
  resumed(report) {
    const rooms = Object.entries(report.rooms ?? {});
    const detail = rooms.map(
      ([room, r]) => `${room}: ${r.recovered ? "recovered" : "not recovered"}`,
    );
    this.recovery.hidden = false;
    this.recovery.dataset.recovered = String(report.recovered);
    this.recovery.textContent = report.recovered
      ? "missed events recovered"
      : "missed events not recovered: reloaded";
    this.recovery.title = [`via ${report.via}`, ...detail, report.error ?? ""]
      .filter(Boolean)
      .join("\n");
  }
}

/** Who is in the zone (`presence:zone`), refreshed when someone comes, goes or changes. */
export class ZonePanel {
  constructor(root, client, { names, onPlayerClick, onListed }) {
    this.root = root;
    this.client = client;
    this.names = names;
    this.onPlayerClick = onPlayerClick;
    this.onListed = onListed;
    this.moods = new Map(); // characterId -> {status, message} from character:status_changed
    const soon = () => this.refreshSoon();
    for (const event of [
      "character:online",
      "character:offline",
      "zone:character_entered",
      "zone:character_left",
    ]) {
      client.on(event, soon);
    }
    client.on("character:status_changed", ({ characterId, status, message }) => {
      this.moods.set(characterId, { status, message });
      this.refreshSoon();
    });
  }

  refreshSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), 300);
  }

  /** List the zone again; a failure (e.g. while reconnecting) leaves the last listing up. */
  async refresh() {
    if (!this.client.connected) return;
    let listing;
    try {
      listing = await this.client.request("presence:zone", {});
    } catch {
      return;
    }
    for (const c of listing.characters) this.names.set(c.userId, c.name);
    this.root.querySelector("[data-count]").textContent = String(listing.count);
    const rows = listing.characters.map((c) => {
      const mood = this.moods.get(c.characterId);
      const label = mood ? `${mood.status}${mood.message ? `: ${mood.message}` : ""} · ` : "";
      return el(
        "li",
        { "data-character": c.characterId, "data-status": c.status },
        el(
          "button",
          { type: "button", class: "name", onclick: (e) => this.onPlayerClick(c, e) },
          c.name,
        ),
        el("span", { class: `status ${c.status}` }, `${label}${c.status}`),
      );
    });
    this.root.querySelector("ul").replaceChildren(...rows);
    this.onListed(listing);
  }
}

/** Guild members and their status (`presence:get`, then `presence:changed`). */
export class GuildPanel {
  constructor(root, client, { names, onPlayerClick }) {
    this.root = root;
    this.client = client;
    this.names = names;
    this.onPlayerClick = onPlayerClick;
    this.members = [];
    this.status = new Map();
    client.on("presence:changed", ({ userId, status }) => {
      this.status.set(userId, status);
      this.#render();
    });
    setInterval(() => this.refresh(), 60_000);
  }

  async setGuild(guild) {
    this.members = guild?.members ?? [];
    this.root.hidden = !guild;
    if (guild) this.root.querySelector("[data-guild-name]").textContent = guild.name;
    for (const m of this.members) this.names.set(m.userId, m.name);
    await this.refresh();
  }

  async refresh() {
    if (!this.members.length || !this.client.connected) return;
    const userIds = [...new Set(this.members.map((m) => m.userId))];
    try {
      const { users } = await this.client.request("presence:get", { userIds });
      for (const [id, state] of Object.entries(users)) this.status.set(id, state.status);
    } catch {
      return; // keep what we showed; presence:changed and the next refresh catch up
    }
    this.#render();
  }

  #render() {
    const rows = this.members.map((m) => {
      const status = this.status.get(m.userId) ?? "offline";
      return el(
        "li",
        { "data-user": m.userId, "data-status": status },
        el(
          "button",
          { type: "button", class: "name", onclick: (e) => this.onPlayerClick(m, e) },
          m.name,
        ),
        el("span", { class: `status ${status}` }, status),
      );
    });
    this.root.querySelector("ul").replaceChildren(...rows);
  }
}

/** A small menu next to a player's name: whisper, challenge, block. */
export function showPlayerMenu(event, player, actions) {
  document.querySelector(".player-menu")?.remove();
  const menu = el(
    "div",
    { class: "player-menu", role: "menu" },
    el("strong", {}, player.name),
    ...actions.map(([label, run]) =>
      el(
        "button",
        {
          type: "button",
          role: "menuitem",
          onclick: () => {
            menu.remove();
            run();
          },
        },
        label,
      ),
    ),
  );
  menu.style.left = `${event.pageX}px`;
  menu.style.top = `${event.pageY}px`;
  document.body.append(menu);
  setTimeout(() => document.addEventListener("click", () => menu.remove(), { once: true }), 0);
}
