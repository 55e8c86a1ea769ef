// Turn-based combat (PROTOCOL.md §5.4): fights against monsters, PvP challenges, the turn timer,
// action results, fleeing and the end screen.

import { el, toast } from "./ui.js";

const SKILLS = [
  ["power_strike", "Power strike"],
  ["fireball", "Fireball"],
  ["heal", "Heal"],
];
const ITEMS = [
  ["health_potion", "Health potion"],
  ["mana_potion", "Mana potion"],
];

export class Combat {
  constructor(root, client, { myCharacterId, onEnded = () => {} }) {
    this.root = root;
    this.client = client;
    this.myCharacterId = myCharacterId; // a function: the selected character's id
    this.onEnded = onEnded;
    this.state = null;
    this.targetId = null;
    this.#wire();
    setInterval(() => this.#timer(), 250);
  }

  get active() {
    return this.state?.status === "active";
  }

  get me() {
    return this.state?.participants.find((p) => p.characterId === this.myCharacterId());
  }

  #wire() {
    const c = this.client;
    c.on("combat:start", (state) => this.#start(state));
    c.on("combat:state", (state) => this.#update(state));
    c.on("combat:action_result", (r) => this.#result(r));
    c.on("combat:turn", (t) => this.#turn(t));
    c.on("combat:player_fled", ({ characterId }) =>
      this.#log(`${this.#nameOfCharacter(characterId)} fled`),
    );
    c.on("combat:end", (end) => this.#end(end));
    c.on("combat:challenge_received", (ch) => this.#challenged(ch));
    c.on("combat:challenge_declined", () => toast("Your challenge was declined"));
    for (const button of this.root.querySelectorAll("[data-action]")) {
      button.addEventListener("click", () => this.act(button.dataset.action));
    }
    this.root.querySelector("[data-flee]").addEventListener("click", () => this.flee());
    fill(this.root.querySelector("[name=skill]"), SKILLS);
    fill(this.root.querySelector("[name=item]"), ITEMS);
    document.querySelector("#end-screen [data-close]").addEventListener("click", () => {
      document.querySelector("#end-screen").hidden = true;
    });
  }

  // --- requests ---------------------------------------------------------------------------

  async fight(monster) {
    await this.#ask("combat:start", { monster });
  }

  async challenge(characterId) {
    const sent = await this.#ask("combat:challenge", { characterId });
    if (sent) toast("Challenge sent: waiting for an answer");
  }

  async act(actionType) {
    if (!this.active) return;
    const request = { sessionId: this.state.sessionId, actionType };
    if (actionType === "skill") request.skillId = this.root.querySelector("[name=skill]").value;
    if (actionType === "item") request.itemId = this.root.querySelector("[name=item]").value;
    const offensive =
      actionType === "attack" || (actionType === "skill" && request.skillId !== "heal");
    if (offensive) request.targetId = this.#target()?.id;
    await this.#ask("combat:action", request);
  }

  async flee() {
    if (!this.active) return;
    const result = await this.#ask("combat:flee", { sessionId: this.state.sessionId });
    if (!result) return;
    const chance = Math.round(result.chance * 100);
    this.#log(`Flee ${result.success ? "succeeded" : "failed"} (chance ${chance} %)`);
  }

  /** After a reconnect whose resume lost the fight's events: fetch the state again. */
  async reload(sessionId = this.state?.sessionId) {
    if (!sessionId) return;
    const state = await this.#ask("combat:get_state", { sessionId });
    if (state) this.#update(state);
  }

  async #ask(event, data) {
    try {
      return await this.client.request(event, data);
    } catch (err) {
      toast(`${err.code}: ${err.message}`, "error");
      return null;
    }
  }

  #target() {
    const enemies = this.state.participants.filter(
      (p) => p.side !== this.me?.side && p.status === "alive",
    );
    return enemies.find((p) => p.id === this.targetId) ?? enemies[0];
  }

  // --- events ------------------------------------------------------------------------------

  /** A fight that was already running at connect (sync:initial.combat). */
  resume(state) {
    if (state) this.#start(state);
  }

  #start(state) {
    this.root.querySelector("[data-log]").replaceChildren();
    document.querySelector("#end-screen").hidden = true;
    this.root.hidden = false;
    this.#update(state);
    this.#log(`The fight begins: ${state.participants.map((p) => p.name).join(" vs ")}`);
  }

  #update(state) {
    this.state = { ...this.state, ...state };
    this.#render();
  }

  #result(r) {
    this.#update({ ...r.state, sessionId: r.sessionId });
    const actor = this.#name(r.actorId);
    const target = r.targetId ? ` ${this.#name(r.targetId)}` : "";
    const res = r.result;
    const parts = [];
    if (res.missed) parts.push("missed");
    if (res.damage) parts.push(`${res.damage} damage${res.critical ? " (critical!)" : ""}`);
    if (res.healing) parts.push(`${res.healing} healed`);
    this.#log(`${actor}: ${r.action}${target}${parts.length ? ` — ${parts.join(", ")}` : ""}`);
  }

  #turn(t) {
    this.#update({ currentTurn: t.currentTurn, round: t.round, turnDeadline: t.turnDeadline });
  }

  #end(end) {
    const me = this.me;
    this.#update({ status: "finished" });
    const won = me && end.winner === me.side;
    const fled = me?.status === "fled" || end.reason === "flee";
    const title = won ? "Victory!" : fled ? "You fled" : "Defeat";
    const rewards = end.rewardsByCharacter?.[this.myCharacterId()] ?? (won ? end.rewards : null);
    const screen = document.querySelector("#end-screen");
    screen.querySelector("[data-title]").textContent = title;
    screen.querySelector("[data-reason]").textContent = `Reason: ${end.reason}`;
    screen.querySelector("[data-rewards]").textContent = rewards
      ? `Rewards: ${rewards.experience ?? 0} experience, ${rewards.gold ?? 0} gold`
      : "No rewards";
    screen.dataset.outcome = won ? "victory" : fled ? "fled" : "defeat";
    screen.hidden = false;
    this.root.hidden = true;
    this.onEnded(end);
  }

  #challenged(ch) {
    const dialog = document.querySelector("#challenge");
    dialog.querySelector("[data-from]").textContent = ch.fromName;
    const answer = async (accept) => {
      dialog.hidden = true;
      clearInterval(tick);
      await this.#ask("combat:challenge_response", { challengeId: ch.challengeId, accept });
    };
    dialog.querySelector("[data-accept]").onclick = () => answer(true);
    dialog.querySelector("[data-decline]").onclick = () => answer(false);
    const countdown = dialog.querySelector("[data-expires]");
    const tick = setInterval(() => {
      const left = Math.ceil((ch.expiresAt - this.client.serverNow()) / 1000);
      countdown.textContent = `${Math.max(0, left)} s`;
      if (left <= 0) {
        dialog.hidden = true;
        clearInterval(tick);
      }
    }, 250);
    dialog.hidden = false;
  }

  // --- drawing -----------------------------------------------------------------------------

  #render() {
    const s = this.state;
    const me = this.me;
    const rows = s.participants.map((p) => {
      const classes = ["fighter", p.side, p.status];
      if (p.id === s.currentTurn) classes.push("current");
      if (p.id === this.targetId) classes.push("targeted");
      const row = el(
        "li",
        { class: classes.join(" "), "data-participant": p.id },
        el("span", { class: "who" }, `${p.name}${p === me ? " (you)" : ""}`),
        bar("HP", p.hp, p.maxHp, "hp"),
        bar("MP", p.mp, p.maxMp, "mp"),
      );
      if (p.side !== me?.side) {
        row.addEventListener("click", () => {
          this.targetId = p.id;
          this.#render();
        });
      }
      return row;
    });
    this.root.querySelector("[data-fighters]").replaceChildren(...rows);
    const mine = Boolean(me && s.currentTurn === me.id && s.status === "active");
    this.root.dataset.myTurn = String(mine);
    this.root.querySelector("[data-turn]").textContent =
      s.status !== "active"
        ? "Finished"
        : mine
          ? `Round ${s.round}: your turn`
          : `Round ${s.round}: ${this.#name(s.currentTurn)}'s turn`;
    for (const button of this.root.querySelectorAll("button[data-action], button[data-flee]"))
      button.disabled = !mine;
  }

  #timer() {
    const node = this.root.querySelector("[data-timer]");
    if (!this.active || !this.state.turnDeadline) {
      node.textContent = "";
      return;
    }
    const left = Math.max(0, Math.ceil((this.state.turnDeadline - this.client.serverNow()) / 1000));
    node.textContent = `${left} s`;
    node.classList.toggle("urgent", left <= 5);
  }

  #log(text) {
    const log = this.root.querySelector("[data-log]");
    log.append(el("li", {}, text));
    log.scrollTop = log.scrollHeight;
  }

  #name(participantId) {
    return this.state?.participants.find((p) => p.id === participantId)?.name ?? participantId;
  }

  #nameOfCharacter(characterId) {
    return this.state?.participants.find((p) => p.characterId === characterId)?.name ?? "Someone";
  }
}

function bar(label, value, max, kind) {
  const percent = max ? Math.round((100 * value) / max) : 0;
  return el(
    "span",
    { class: `bar ${kind}`, title: `${label} ${value}/${max}` },
    el("span", { class: "fill", style: `width:${percent}%` }),
    el("span", { class: "value" }, `${label} ${value}/${max}`),
  );
}

function fill(select, options) {
  select.replaceChildren(...options.map(([value, label]) => el("option", { value }, label)));
}
