// Chat (PROTOCOL.md §5.3): zone, global and guild channels, whispers, emotes, typing, history
// pages through `chat:history` cursors, blocking; system announcements in the global channel.

import { el, playerName } from "./ui.js";

const CHANNELS = ["zone", "global", "guild", "whisper"];
const HISTORY_PAGE = 30;
const TYPING_REFRESH_MS = 3000; // the server broadcasts at most one `typing: true` per 2 s
const TYPING_IDLE_MS = 4000;

export class Chat {
  constructor(root, client, { names, onPlayerClick }) {
    this.root = root;
    this.client = client;
    this.names = names; // userId -> name, shared with the rest of the page
    this.onPlayerClick = onPlayerClick;
    this.active = "zone";
    this.lists = {};
    this.cursors = {};
    this.seen = new Set(); // message ids shown, so a replayed message is not shown twice
    this.typing = { zone: new Map(), global: new Map(), guild: new Map() };
    this.blocked = new Set();
    this.hasGuild = false;
    for (const channel of CHANNELS)
      this.lists[channel] = root.querySelector(`[data-list="${channel}"]`);
    this.#wire();
  }

  #wire() {
    const root = this.root;
    for (const tab of root.querySelectorAll("[data-tab]")) {
      tab.addEventListener("click", () => this.show(tab.dataset.tab));
    }
    root.querySelector("[data-older]").addEventListener("click", () => this.loadOlder(this.active));
    const form = root.querySelector("form.chat-send");
    const input = form.querySelector("[name=message]");
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.#send(input.value.trim()).then((sent) => sent && (input.value = ""));
    });
    input.addEventListener("input", () => this.#typed());
    input.addEventListener("blur", () => this.#stopTyping());
    root.querySelector("form.chat-emote").addEventListener("submit", (e) => {
      e.preventDefault();
      const target = e.target.querySelector("[name=target]").value.trim() || undefined;
      this.client
        .request("chat:emote", { emote: e.target.emote.value, target })
        .catch((err) => this.#error(err));
    });
    setInterval(() => this.#renderTyping(), 1000);
    const c = this.client;
    c.on("chat:message", (m) => this.#append(m.channel, m));
    c.on("chat:whisper_received", (m) =>
      this.#append("whisper", { ...m, userId: m.fromUserId, characterName: m.fromName }),
    );
    c.on("chat:emote", (e) => this.#emote(e));
    c.on("chat:typing_status", (t) => this.#typingStatus(t));
    c.on("chat:message_deleted", ({ id }) =>
      this.root.querySelector(`[data-id="${CSS.escape(id)}"]`)?.remove(),
    );
    c.on("system:announcement", (a) => this.#system(`📢 ${a.message}`, a.priority));
  }

  show(channel) {
    this.active = channel;
    for (const tab of this.root.querySelectorAll("[data-tab]")) {
      tab.classList.toggle("active", tab.dataset.tab === channel);
      if (tab.dataset.tab === channel) tab.classList.remove("unread");
    }
    for (const [name, list] of Object.entries(this.lists)) list.hidden = name !== channel;
    this.root.querySelector(".whisper-to").hidden = channel !== "whisper";
    this.#olderButton();
    this.#renderTyping();
  }

  whisperTo(name) {
    this.show("whisper");
    this.root.querySelector("[name=to]").value = name;
    this.root.querySelector("[name=message]").focus();
  }

  // --- history ---------------------------------------------------------------------------------

  /** Load the newest page of every channel (again: after a zone change or a lost resume). */
  async reload(channels = CHANNELS) {
    for (const channel of channels) {
      if (channel === "guild" && !this.hasGuild) continue;
      this.lists[channel].replaceChildren();
      this.cursors[channel] = undefined;
      await this.loadOlder(channel);
    }
  }

  async loadOlder(channel) {
    if (this.cursors[channel] === null) return;
    const request = { channel, limit: HISTORY_PAGE };
    if (this.cursors[channel]) request.before = this.cursors[channel];
    try {
      const page = await this.client.request("chat:history", request);
      this.cursors[channel] = page.nextCursor;
      const list = this.lists[channel];
      const first = list.firstChild;
      for (const m of page.messages) {
        if (this.seen.has(m.id) && list.querySelector(`[data-id="${CSS.escape(m.id)}"]`)) continue;
        this.seen.add(m.id);
        list.insertBefore(this.#line(channel, m), first);
      }
      if (!request.before) list.scrollTop = list.scrollHeight;
    } catch (err) {
      this.#error(err);
    }
    this.#olderButton();
  }

  #olderButton() {
    const button = this.root.querySelector("[data-older]");
    button.hidden = this.cursors[this.active] === null;
  }

  // --- sending -------------------------------------------------------------------------------

  async #send(text) {
    if (!text) return false;
    this.#stopTyping();
    try {
      if (this.active === "whisper") {
        const to = this.root.querySelector("[name=to]").value.trim();
        const sent = await this.client.request("chat:whisper", { targetName: to, message: text });
        this.#append("whisper", {
          id: sent.id,
          userId: this.client.userId,
          characterName: `you → ${to}`,
          message: sent.message,
          serverTimestamp: sent.serverTimestamp,
          own: true,
        });
      } else {
        const sent = await this.client.request("chat:message", {
          channel: this.active,
          message: text,
        });
        this.#append(this.active, {
          id: sent.id,
          userId: this.client.userId,
          characterName: this.myName,
          message: text,
          serverTimestamp: sent.serverTimestamp,
          own: true,
        });
      }
      return true;
    } catch (err) {
      this.#error(err);
      return false;
    }
  }

  #typed() {
    if (this.active === "whisper") return;
    const now = Date.now();
    if (
      !this.typingSince ||
      now - this.typingSince > TYPING_REFRESH_MS ||
      this.typingChannel !== this.active
    ) {
      this.typingSince = now;
      this.typingChannel = this.active;
      this.client.send("chat:typing", { channel: this.active, typing: true });
    }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.#stopTyping(), TYPING_IDLE_MS);
  }

  #stopTyping() {
    clearTimeout(this.typingTimer);
    if (!this.typingSince) return;
    this.client.send("chat:typing", { channel: this.typingChannel, typing: false });
    this.typingSince = null;
  }

  // --- blocking --------------------------------------------------------------------------------

  async loadBlocklist() {
    const { userIds } = await this.client.request("chat:blocklist", {});
    this.blocked = new Set(userIds);
    this.#renderBlocked();
  }

  async block(userId) {
    await this.client.request("chat:block", { userId });
    this.blocked.add(userId);
    this.#renderBlocked();
  }

  async unblock(userId) {
    await this.client.request("chat:unblock", { userId });
    this.blocked.delete(userId);
    this.#renderBlocked();
  }

  #renderBlocked() {
    const list = this.root.querySelector("[data-blocked]");
    list.replaceChildren(
      ...[...this.blocked].map((id) =>
        el(
          "li",
          {},
          playerName(this.names, id),
          " ",
          el("button", { type: "button", onclick: () => this.unblock(id) }, "unblock"),
        ),
      ),
    );
    for (const line of this.root.querySelectorAll("[data-user]"))
      line.hidden = this.blocked.has(line.dataset.user);
  }

  // --- showing -------------------------------------------------------------------------------

  #append(channel, m) {
    if (m.id && this.seen.has(m.id)) return;
    if (m.id) this.seen.add(m.id);
    if (m.userId && m.characterName && !m.own) this.names.set(m.userId, m.characterName);
    this.#typing(channel, m.userId, false);
    const list = this.lists[channel];
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 30;
    list.append(this.#line(channel, m));
    if (atBottom || m.own) list.scrollTop = list.scrollHeight;
    if (channel !== this.active)
      this.root.querySelector(`[data-tab="${channel}"]`).classList.add("unread");
  }

  #line(channel, m) {
    const time = new Date(m.serverTimestamp).toLocaleTimeString([], {
      hour: "2-digit",
      minute: "2-digit",
    });
    let who = m.characterName;
    if (channel === "whisper" && m.toUserId && m.userId === this.client.userId)
      who = `you → ${playerName(this.names, m.toUserId)}`;
    const name = el(
      "button",
      {
        type: "button",
        class: "name",
        onclick: (e) =>
          this.onPlayerClick(
            { userId: m.userId, characterId: m.characterId, name: m.characterName },
            e,
          ),
      },
      who,
    );
    const line = el(
      "li",
      { "data-id": m.id ?? "", "data-user": m.userId ?? "" },
      el("time", {}, time),
      name,
      ": ",
      el("span", { class: "text" }, m.message),
    );
    line.hidden = this.blocked.has(m.userId);
    return line;
  }

  #emote(e) {
    const target = e.target ? ` at ${e.target}` : "";
    const line = el(
      "li",
      { class: "emote", "data-user": e.userId },
      `* ${e.characterName} ${e.emote}s${target}`,
    );
    this.lists.zone.append(line);
    this.lists.zone.scrollTop = this.lists.zone.scrollHeight;
  }

  #system(text, priority = "low") {
    const line = el("li", { class: `system ${priority}` }, text);
    this.lists[this.active].append(line);
    this.lists[this.active].scrollTop = this.lists[this.active].scrollHeight;
  }

  note(text) {
    this.#system(text);
  }

  #error(err) {
    const retry = err.details?.retryAfter ? ` (retry in ${err.details.retryAfter} s)` : "";
    this.#system(`⚠ ${err.code}: ${err.message}${retry}`, "error");
  }

  #typingStatus({ userId, channel, typing }) {
    this.#typing(channel, userId, typing);
  }

  #typing(channel, userId, on) {
    const map = this.typing[channel];
    if (!map || !userId) return;
    if (on) map.set(userId, Date.now() + 7000);
    else map.delete(userId);
    this.#renderTyping();
  }

  #renderTyping() {
    const map = this.typing[this.active];
    const now = Date.now();
    const who = map
      ? [...map].filter(([, until]) => until > now).map(([id]) => playerName(this.names, id))
      : [];
    this.root.querySelector("[data-typing]").textContent = who.length
      ? `${who.join(", ")} ${who.length > 1 ? "are" : "is"} typing…`
      : "";
  }
}
