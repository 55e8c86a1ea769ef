// The zone on a canvas: every character in it, live; your own movement predicted locally and
// snapped back to the server's position when a move is refused (PROTOCOL.md §5.2).
//
// Movement limits shape the sending: the server allows MAX_SPEED (10 units/s by default) with a
// small tolerance and `character:move` 30 times a minute. We walk at 9 units/s and send our
// position at most every 2.1 s, so no accepted run of moves can break either limit.

const WALK_SPEED = 9; // units per second
const SEND_INTERVAL_MS = 2100;
const PIXELS_PER_UNIT = 4;
const GRID = 10;
const REMOTE_CATCH_UP = 14; // units per second at which others glide to their new position

const KEYS = {
  ArrowUp: [0, 1],
  KeyW: [0, 1],
  ArrowDown: [0, -1],
  KeyS: [0, -1],
  ArrowLeft: [-1, 0],
  KeyA: [-1, 0],
  ArrowRight: [1, 0],
  KeyD: [1, 0],
};

const round2 = (v) => Math.round(v * 100) / 100;

export class World {
  constructor(canvas, client, { onSnap = () => {}, onClickCharacter = () => {} } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.client = client;
    this.onSnap = onSnap;
    this.onClickCharacter = onClickCharacter;
    this.me = null; // {id, name, pos, target, sent}
    this.zone = null; // {key, name, bounds, spawn, neighbours}
    this.others = new Map(); // characterId -> {id, name, userId, pos, shown, status, known}
    this.keys = new Set();
    this.lastSentAt = 0;
    this.inFlight = false;
    this.snaps = 0;
    this.#listen();
    requestAnimationFrame((t) => this.#frame(t));
  }

  /** Enter a zone as `character` at `position` (the server's). */
  enter(character, zone, position) {
    this.zone = zone;
    this.me = { id: character.id, name: character.name, pos: { ...position }, target: null };
    this.me.sent = { ...position };
    this.others.clear();
  }

  /** Characters present in the zone (from `presence:zone`), placed where they were stored. */
  populate(characters, storedPositions) {
    for (const c of characters) {
      if (c.characterId === this.me?.id) continue;
      const known = this.others.get(c.characterId);
      const stored = storedPositions.get(c.characterId);
      const pos = known?.pos ?? stored ?? null;
      this.others.set(c.characterId, {
        id: c.characterId,
        name: c.name,
        userId: c.userId,
        status: c.status,
        pos,
        shown: known?.shown ?? (pos && { ...pos }),
      });
    }
    for (const id of [...this.others.keys()]) {
      if (!characters.some((c) => c.characterId === id)) this.others.delete(id);
    }
  }

  place(characterId, fields) {
    if (characterId === this.me?.id) return;
    const other = this.others.get(characterId) ?? { id: characterId, shown: null, pos: null };
    Object.assign(other, fields);
    if (fields.pos && !other.shown) other.shown = { ...fields.pos };
    this.others.set(characterId, other);
  }

  remove(characterId) {
    this.others.delete(characterId);
  }

  // --- input ---------------------------------------------------------------------------------

  #listen() {
    const typing = () => ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName);
    window.addEventListener("keydown", (e) => {
      if (KEYS[e.code] && !typing()) {
        this.keys.add(e.code);
        if (this.me) this.me.target = null;
        e.preventDefault();
      }
    });
    window.addEventListener("keyup", (e) => this.keys.delete(e.code));
    window.addEventListener("blur", () => this.keys.clear());
    this.canvas.addEventListener("click", (e) => {
      if (!this.me) return;
      const rect = this.canvas.getBoundingClientRect();
      const point = this.toWorld(e.clientX - rect.left, e.clientY - rect.top);
      const hit = [...this.others.values()].find(
        (o) => o.shown && Math.hypot(o.shown.x - point.x, o.shown.y - point.y) < 3,
      );
      if (hit) this.onClickCharacter(hit, e);
      else this.me.target = this.#clamp(point);
    });
  }

  toWorld(px, py) {
    const { width, height } = this.canvas;
    return {
      x: this.me.pos.x + (px - width / 2) / PIXELS_PER_UNIT,
      y: this.me.pos.y - (py - height / 2) / PIXELS_PER_UNIT,
    };
  }

  #clamp(p) {
    const b = this.zone.bounds;
    return {
      x: Math.min(b.maxX, Math.max(b.minX, p.x)),
      y: Math.min(b.maxY, Math.max(b.minY, p.y)),
    };
  }

  // --- prediction and reconciliation --------------------------------------------------------

  #step(dt) {
    if (!this.client.connected) return; // nothing to confirm a step against: stand still
    const me = this.me;
    let dx = 0;
    let dy = 0;
    for (const code of this.keys) [dx, dy] = [dx + KEYS[code][0], dy + KEYS[code][1]];
    if (!dx && !dy && me.target) [dx, dy] = [me.target.x - me.pos.x, me.target.y - me.pos.y];
    const length = Math.hypot(dx, dy);
    if (length < 0.01) return;
    const stride = Math.min(WALK_SPEED * dt, me.target && !this.keys.size ? length : Infinity);
    const next = this.#clamp({
      x: me.pos.x + (dx / length) * stride,
      y: me.pos.y + (dy / length) * stride,
    });
    me.pos = { ...me.pos, ...next, direction: round2((Math.atan2(dy, dx) * 180) / Math.PI) };
    if (me.target && Math.hypot(me.target.x - me.pos.x, me.target.y - me.pos.y) < 0.05)
      me.target = null;
  }

  #sendIfDue(now) {
    const me = this.me;
    if (this.inFlight || !this.client.connected || now - this.lastSentAt < SEND_INTERVAL_MS) return;
    if (Math.hypot(me.pos.x - me.sent.x, me.pos.y - me.sent.y) < 0.01) return;
    const move = { x: round2(me.pos.x), y: round2(me.pos.y), direction: me.pos.direction ?? 0 };
    this.inFlight = true;
    this.lastSentAt = now;
    this.client
      .request("character:move", move)
      .then(() => {
        me.sent = move;
      })
      .catch((err) => {
        if (err.details?.position && me === this.me) this.#snap(err.details.position, err.code);
        else if (err.code === "RATE_LIMITED")
          this.lastSentAt = now + (err.details.retryAfter ?? 1) * 1000;
      })
      .finally(() => {
        this.inFlight = false;
      });
  }

  /** The server refused a move: its position is the truth; drop what we predicted since. */
  #snap(position, code) {
    this.me.pos = { ...position };
    this.me.sent = { ...position };
    this.me.target = null;
    this.snaps += 1;
    this.snapFlash = performance.now();
    this.onSnap(code, position);
  }

  // --- drawing -------------------------------------------------------------------------------

  #frame(t) {
    const dt = Math.min(0.1, (t - (this.lastFrame ?? t)) / 1000);
    this.lastFrame = t;
    if (this.me && this.zone) {
      this.#step(dt);
      this.#sendIfDue(performance.now());
      for (const other of this.others.values()) this.#glide(other, dt);
      this.#draw();
    }
    requestAnimationFrame((next) => this.#frame(next));
  }

  #glide(other, dt) {
    if (!other.pos || !other.shown) return;
    const dx = other.pos.x - other.shown.x;
    const dy = other.pos.y - other.shown.y;
    const gap = Math.hypot(dx, dy);
    const stride = REMOTE_CATCH_UP * dt;
    if (gap <= stride || gap > 60) other.shown = { ...other.pos };
    else
      other.shown = {
        x: other.shown.x + (dx / gap) * stride,
        y: other.shown.y + (dy / gap) * stride,
      };
  }

  #screen(p) {
    const { width, height } = this.canvas;
    return [
      width / 2 + (p.x - this.me.pos.x) * PIXELS_PER_UNIT,
      height / 2 - (p.y - this.me.pos.y) * PIXELS_PER_UNIT,
    ];
  }

  #draw() {
    const { ctx, canvas } = this;
    const b = this.zone.bounds;
    ctx.fillStyle = "#1d2a1f";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const [x0, y0] = this.#screen({ x: b.minX, y: b.maxY });
    const [x1, y1] = this.#screen({ x: b.maxX, y: b.minY });
    ctx.fillStyle = "#2f4a32";
    ctx.fillRect(x0, y0, x1 - x0, y1 - y0);
    this.#grid();
    ctx.strokeStyle = "#c9b458";
    ctx.lineWidth = 2;
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    if (this.me.target) this.#marker(this.me.target);
    for (const other of this.others.values()) {
      if (other.shown)
        this.#character(other.shown, other.name, other.status === "away" ? "#7d8ca3" : "#5aa9e6");
    }
    const flashing = performance.now() - (this.snapFlash ?? -1e9) < 600;
    this.#character(this.me.pos, `${this.me.name} (you)`, flashing ? "#e05d5d" : "#f2c14e", true);
    ctx.fillStyle = "#e8e8e8";
    ctx.font = "12px system-ui, sans-serif";
    ctx.textAlign = "left";
    ctx.fillText(
      `${this.zone.name}  x ${this.me.pos.x.toFixed(1)}  y ${this.me.pos.y.toFixed(1)}`,
      8,
      16,
    );
  }

  #grid() {
    const { ctx, canvas } = this;
    const left = this.toWorld(0, 0);
    const right = this.toWorld(canvas.width, canvas.height);
    ctx.strokeStyle = "rgba(255,255,255,0.06)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let x = Math.ceil(left.x / GRID) * GRID; x <= right.x; x += GRID) {
      const [sx] = this.#screen({ x, y: 0 });
      ctx.moveTo(sx, 0);
      ctx.lineTo(sx, canvas.height);
    }
    for (let y = Math.ceil(right.y / GRID) * GRID; y <= left.y; y += GRID) {
      const [, sy] = this.#screen({ x: 0, y });
      ctx.moveTo(0, sy);
      ctx.lineTo(canvas.width, sy);
    }
    ctx.stroke();
  }

  /** A character as a dot; others' names above it, yours below (so they never overlap). */
  #character(p, label, color, below = false) {
    const { ctx } = this;
    const [sx, sy] = this.#screen(p);
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.arc(sx, sy, 7, 0, Math.PI * 2);
    ctx.fill();
    ctx.fillStyle = "#f4f4f4";
    ctx.font = "12px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.fillText(label, sx, below ? sy + 22 : sy - 12);
  }

  #marker(p) {
    const [sx, sy] = this.#screen(p);
    this.ctx.strokeStyle = "#f2c14e";
    this.ctx.beginPath();
    this.ctx.arc(sx, sy, 5, 0, Math.PI * 2);
    this.ctx.stroke();
  }
}
