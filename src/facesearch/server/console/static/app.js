// The facesearch console: a plain ES module, no build step, no dependencies.
// Every call goes to POST api with the operation's X-Amz-Target and JSON 1.1 body, exactly as
// boto3 sends them to POST /; the server authenticates it with the session cookie and the CSRF
// token instead of a signature. Photos stay in the browser (blob: URLs); the server keeps none.

const $ = (selector) => document.querySelector(selector);
const main = $("#main");
const session = { csrf: null };
// blob: URLs of the photos the current view shows, released when the view changes.
let photoUrls = [];
// What the current view must undo when it is left (a paste listener, a webcam stream).
let cleanups = [];
// GET api/info's answer: the model's formats and ranges, the service's defaults, the local key.
let facts = {};
// Makes element ids unique within the page.
let serial = 0;

class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// ---- small DOM helpers ----------------------------------------------------------------------

function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "style") Object.assign(el.style, value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "value") el.value = value;
    else el.setAttribute(name === "className" ? "class" : name, value === true ? "" : value);
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

function say(message) {
  $("#status").textContent = message;
}

function showError(error) {
  const text = error instanceof ApiError ? `${error.code}: ${error.message}` : String(error.message || error);
  $("#alert").textContent = text;
}

function clearMessages() {
  $("#status").textContent = "";
  $("#alert").textContent = "";
}

// Runs an action from a button or form: errors go to the alert region, the button is disabled
// while it runs so that a double click does not send it twice.
async function act(button, action) {
  $("#alert").textContent = "";
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (error) {
    showError(error);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

function percent(value) {
  return `${(value * 100).toFixed(4)}%`;
}

function formatTime(epochSeconds) {
  return epochSeconds ? new Date(epochSeconds * 1000).toLocaleString() : "";
}

// "1 photo", "2 photos".
function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

// "1", "1 and 2", "1, 2 and 3".
function listed(items) {
  return items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

// A model pattern such as [a-zA-Z0-9_.\-]+ in words: "letters, digits and _ . -".
function describeCharacters(pattern) {
  const match = /^\[(.*)\]\+$/.exec(pattern || "");
  if (!match) return `characters matching ${pattern}`;
  let rest = match[1];
  const parts = [];
  for (const [range, words] of [["a-zA-Z", "letters"], ["0-9", "digits"]]) {
    if (rest.includes(range)) { parts.push(words); rest = rest.replace(range, ""); }
  }
  const others = [...rest.replace(/\\(.)/g, "$1")];
  if (others.length) parts.push(others.join(" "));
  return listed(parts);
}

/**
 * A text input for an id the API constrains (shape: "CollectionId", "UserId"): the model's length
 * and pattern are checked by the browser, said under the field and, when it is refused, in the
 * browser's message and the alert region.
 */
function idField(id, shape, what) {
  const rule = facts.Shapes?.[shape] || {};
  const format = `${rule.Min ?? 1} to ${rule.Max} characters: ${describeCharacters(rule.Pattern)}`;
  const input = h("input", {
    type: "text", id, required: true, pattern: rule.Pattern, minlength: rule.Min, maxlength: rule.Max,
    spellcheck: "false", autocomplete: "off", "aria-describedby": `${id}-format`,
  });
  input.addEventListener("input", () => input.setCustomValidity(""));
  input.addEventListener("invalid", () => {
    input.setCustomValidity(input.validity.valueMissing ? `Enter a ${what}: ${format}.` : `A ${what} is ${format}.`);
    $("#alert").textContent = input.validationMessage;
  });
  return { input, format: h("small", { id: `${id}-format`, className: "format" }, `${format}.`) };
}

// ---- the API --------------------------------------------------------------------------------

// The parsed answer; with `withHeaders`, {document, headers} (the response's Headers).
async function request(path, body, headers = {}, withHeaders = false) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/x-amz-json-1.1", "X-CSRF-Token": session.csrf || "", ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let document_ = {};
  try {
    document_ = text ? JSON.parse(text) : {};
  } catch {
    document_ = { Message: text };
  }
  if (!response.ok) {
    const code = String(document_.__type || `HTTP ${response.status}`).split("#").pop();
    const error = new ApiError(code, document_.Message || document_.message || response.statusText);
    if (code === "MissingAuthenticationTokenException" && path === "api") showSignIn();
    throw error;
  }
  return withHeaders ? { document: document_, headers: response.headers } : document_;
}

/** Calls one Rekognition operation, e.g. api("ListFaces", {CollectionId: "staff"}). */
function api(operation, params = {}) {
  return request("api", params, { "X-Amz-Target": `RekognitionService.${operation}` });
}

// All pages of a paginated list, up to `limit` items.
async function listAll(operation, params, key, limit = 1000) {
  const items = [];
  let token;
  do {
    const page = await api(operation, { ...params, ...(token ? { NextToken: token } : {}) });
    items.push(...(page[key] || []));
    token = page.NextToken;
  } while (token && items.length < limit);
  return items;
}

// ---- photos ---------------------------------------------------------------------------------

function imageBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function photoUrl(file) {
  const url = URL.createObjectURL(file);
  photoUrls.push(url);
  return url;
}

const IMAGE_NAME = /\.(jpe?g|png)$/i;

// A drop zone with keyboard-operable buttons; calls onFiles with a list of {file, path}.
function dropZone({ label, multiple = true, folder = false, onFiles }) {
  const pick = (input) => {
    const files = [...input.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
    input.value = "";
    if (files.length) onFiles(files);
  };
  const filesInput = h("input", {
    type: "file", accept: "image/jpeg,image/png", multiple, hidden: true,
    "aria-label": label, className: "files", onchange: (e) => pick(e.target),
  });
  const folderInput = folder
    ? h("input", {
        type: "file", webkitdirectory: true, multiple: true, hidden: true,
        "aria-label": `${label} (a folder)`, className: "folder",
        onchange: (e) => pick(e.target),
      })
    : null;
  const zone = h(
    "div",
    { className: "drop", role: "group", "aria-label": label },
    h("p", {}, multiple ? "Drop photos or a folder here, or" : "Drop a photo here, or"),
    h("button", { type: "button", className: "secondary", onclick: () => filesInput.click() },
      multiple ? "Choose photos" : "Choose a photo"),
    folder
      ? h("button", { type: "button", className: "secondary", onclick: () => folderInput.click() }, "Choose a folder")
      : null,
    filesInput,
    folderInput,
  );
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const entries = [...event.dataTransfer.items]
      .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
      .filter(Boolean);
    const files = entries.length
      ? await filesOfEntries(entries)
      : [...event.dataTransfer.files].map((file) => ({ file, path: file.name }));
    if (files.length) onFiles(multiple ? files : files.slice(0, 1));
  });
  return zone;
}

// The files under dropped entries; in folders only JPEG and PNG files are taken.
async function filesOfEntries(entries) {
  const found = [];
  const walk = async (entry, inFolder) => {
    if (entry.isFile) {
      if (inFolder && !IMAGE_NAME.test(entry.name)) return;
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      found.push({ file, path: entry.fullPath.replace(/^\//, "") });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      let batch;
      do {
        batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        for (const child of batch) await walk(child, true);
      } while (batch.length);
    }
  };
  for (const entry of entries) await walk(entry, false);
  return found;
}

// Paste of an image anywhere on the page while this view is shown.
function onPaste(handler) {
  const listener = (event) => {
    const file = [...(event.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (file) {
      event.preventDefault();
      handler({ file, path: file.name || "pasted image" });
    }
  };
  document.addEventListener("paste", listener);
  cleanups.push(() => document.removeEventListener("paste", listener));
}

/**
 * A photo with faces drawn over it. Each face: {box, landmarks, kind, tag, label, onpick}; the
 * box and landmarks are ratios of the image's width and height, as Rekognition returns them, so
 * they are placed in percent of the frame that the image exactly fills. A face with onpick is a
 * button. The tags are laid out once the photo's size on screen is known (layoutFrame).
 */
function photoFigure(url, name, faces, ...caption) {
  const image = h("img", { src: url, alt: `Photo ${name}` });
  const frame = h("div", { className: "frame" }, image);
  faces.forEach((face, index) => {
    const box = face.box;
    const label = face.label || face.tag || `Face ${index + 1}`;
    frame.append(h(face.onpick ? "button" : "div", {
      className: `box ${face.kind}`,
      ...(face.onpick ? { type: "button", onclick: face.onpick } : { role: "img" }),
      "aria-label": label,
      title: label,
      dataset: { kind: face.kind, face: index, left: box.Left, top: box.Top, width: box.Width, height: box.Height },
      style: { left: percent(box.Left), top: percent(box.Top), width: percent(box.Width), height: percent(box.Height) },
    }));
    if (face.tag) frame.append(h("span", { className: `tag ${face.kind}`, "aria-hidden": "true", dataset: { face: index } }, face.tag));
    for (const point of face.landmarks || []) {
      frame.append(h("span", { className: "dot", "aria-hidden": "true", title: point.Type, dataset: { face: index }, style: { left: percent(point.X), top: percent(point.Y) } }));
    }
  });
  const layout = () => layoutFrame(frame);
  image.addEventListener("load", layout);
  const observer = new ResizeObserver(layout);
  observer.observe(frame);
  cleanups.push(() => observer.disconnect());
  return h("figure", { className: "photo" }, frame, caption.length ? h("figcaption", {}, ...caption) : null);
}

function overlap(a, b) {
  const width = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const height = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  return width > 0 && height > 0 ? width * height : 0;
}

/**
 * Sizes the landmark dots to their face and places each tag next to its box where it covers
 * no other tag and no other face: above, below, beside, stacked further out, inside as a last
 * resort, whichever costs least (a tag over a tag costs most, over another face less, over its
 * own face least). Faces are placed largest first, so small faces' tags move, not big ones'.
 */
function layoutFrame(frame) {
  const image = frame.querySelector("img");
  const width = frame.clientWidth;
  const height = frame.clientHeight;
  if (!image.complete || !image.naturalWidth || !width || !height) return;
  const boxes = [...frame.querySelectorAll(".box")].map((el) => ({
    x: el.dataset.left * width, y: el.dataset.top * height, w: el.dataset.width * width, h: el.dataset.height * height,
  }));
  for (const dot of frame.querySelectorAll(".dot")) {
    // About a 25th of the face: visible on a big face, not a blot over a small one.
    const size = Math.max(1.5, Math.min(5, boxes[dot.dataset.face].w / 25));
    Object.assign(dot.style, { width: `${size}px`, height: `${size}px`, margin: `${-size / 2}px 0 0 ${-size / 2}px` });
  }
  const tags = [...frame.querySelectorAll(".tag")];
  tags.sort((a, b) => boxes[b.dataset.face].w * boxes[b.dataset.face].h - boxes[a.dataset.face].w * boxes[a.dataset.face].h);
  const placed = [];
  for (const tag of tags) {
    const own = boxes[tag.dataset.face];
    const w = tag.offsetWidth;
    const h = tag.offsetHeight;
    const spots = [
      [own.x, own.y - h], [own.x + own.w - w, own.y - h], [own.x, own.y + own.h], [own.x + own.w - w, own.y + own.h],
      [own.x - w, own.y], [own.x + own.w, own.y], [own.x - w, own.y + own.h - h], [own.x + own.w, own.y + own.h - h],
      ...[2, 3, 4].flatMap((k) => [[own.x, own.y - k * h], [own.x, own.y + own.h + (k - 1) * h]]),
      [own.x, own.y], [own.x, own.y + own.h - h],
    ];
    let best = null;
    spots.forEach(([x, y], order) => {
      const spot = { x: Math.max(0, Math.min(width - w, x)), y: Math.max(0, Math.min(height - h, y)), w, h };
      const cost = placed.reduce((sum, other) => sum + 1000 * overlap(spot, other), 0)
        + boxes.reduce((sum, box) => sum + (box === own ? 1 : 20) * overlap(spot, box), 0) + order;
      if (!best || cost < best.cost) best = { ...spot, cost };
    });
    placed.push(best);
    Object.assign(tag.style, { left: `${best.x}px`, top: `${best.y}px` });
  }
  // The size laid out for (the tests wait for it).
  frame.dataset.laidOut = `${width}x${height}`;
}

// The image of a file as it is shown (EXIF orientation applied, as the API reads it).
function decodePhoto(file) {
  return createImageBitmap(file, { imageOrientation: "from-image" });
}

/**
 * A JPEG of one face's surroundings, for searching that face: the box padded by its own size on
 * every side (the detector needs some context), the other faces in it painted over grey so that
 * the chosen one is the largest, small faces scaled up as a camera's zoom would. Answers the
 * blob and where the crop lies in the photo (ratios), to map the API's box back.
 */
async function cropOfFace(file, box, others) {
  const bitmap = await decodePhoto(file);
  const W = bitmap.width;
  const H = bitmap.height;
  const left = Math.max(0, (box.Left - box.Width) * W);
  const top = Math.max(0, (box.Top - box.Height) * H);
  const right = Math.min(W, (box.Left + 2 * box.Width) * W);
  const bottom = Math.min(H, (box.Top + 2 * box.Height) * H);
  const scale = Math.min(4, Math.max(1, 240 / Math.min(right - left, bottom - top)));
  const canvas = h("canvas", { width: String(Math.round((right - left) * scale)), height: String(Math.round((bottom - top) * scale)) });
  const context = canvas.getContext("2d");
  context.imageSmoothingQuality = "high";
  const draw = (x0, y0, x1, y1) => {
    const [x, y] = [Math.max(x0, 0), Math.max(y0, 0)];
    const [w, h_] = [Math.min(x1, W) - x, Math.min(y1, H) - y];
    if (w > 0 && h_ > 0) context.drawImage(bitmap, x, y, w, h_, (x - left) * scale, (y - top) * scale, w * scale, h_ * scale);
  };
  draw(left, top, right, bottom);
  context.fillStyle = "#808080";
  for (const other of others) {
    context.fillRect((other.Left * W - left) * scale, (other.Top * H - top) * scale, other.Width * W * scale, other.Height * H * scale);
  }
  // Where another face's box overlaps the chosen one, the chosen face's pixels win.
  draw(box.Left * W, box.Top * H, (box.Left + box.Width) * W, (box.Top + box.Height) * H);
  bitmap.close();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.95));
  return { blob, area: { Left: left / W, Top: top / H, Width: (right - left) / W, Height: (bottom - top) / H } };
}

// A box found in a crop, as ratios of the whole photo.
function uncropped(box, area) {
  return {
    Left: area.Left + box.Left * area.Width, Top: area.Top + box.Top * area.Height,
    Width: box.Width * area.Width, Height: box.Height * area.Height,
  };
}

function intersectionOverUnion(a, b) {
  const shared = overlap({ x: a.Left, y: a.Top, w: a.Width, h: a.Height }, { x: b.Left, y: b.Top, w: b.Width, h: b.Height });
  return shared / (a.Width * a.Height + b.Width * b.Height - shared);
}

// ---- sign in and out ------------------------------------------------------------------------

function showSignIn(message) {
  session.csrf = null;
  $("#nav").hidden = true;
  $("#who").hidden = true;
  releaseView();
  const keyId = h("input", { type: "text", id: "access-key-id", name: "access-key-id", required: true, autocomplete: "username", spellcheck: "false" });
  const secret = h("input", { type: "password", id: "secret-access-key", name: "secret-access-key", required: true, autocomplete: "current-password" });
  const region = h("input", { type: "text", id: "region", name: "region", value: "us-east-1", required: true });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { className: "form signin card", "aria-labelledby": "signin-title" },
    h("label", { for: "access-key-id" }, "Access key ID", keyId),
    h("label", { for: "secret-access-key" }, "Secret access key", secret),
    h("label", { for: "region" }, "Region", region),
    submit,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(submit, async () => {
      const who = await request("api/session", {
        AccessKeyId: keyId.value.trim(), SecretAccessKey: secret.value, Region: region.value.trim(),
      });
      signedIn(who);
      say(`Signed in as ${who.AccessKeyId}.`);
    });
  });
  // The server names its local key only when it takes no other (loopback, nothing configured).
  const local = facts.LocalKey;
  const localNote = local
    ? h("p", { className: "card local-key" },
        "This server runs on this machine with no access keys configured, so it takes its local key: access key ID ",
        h("code", {}, local.AccessKeyId), ", secret access key ", h("code", {}, local.SecretAccessKey), ". ",
        h("button", { type: "button", className: "secondary", onclick: () => {
          keyId.value = local.AccessKeyId;
          secret.value = local.SecretAccessKey;
          submit.focus();
        } }, "Fill in the local key"))
    : null;
  main.replaceChildren(h("h1", { id: "signin-title", tabindex: "-1" }, "Sign in"),
    h("p", { className: "muted" }, "Use an access key that the server accepts, as for boto3 or the AWS CLI."),
    ...(localNote ? [localNote] : []), form);
  if (message) say(message);
  keyId.focus();
}

function signedIn(who) {
  session.csrf = who.CsrfToken;
  $("#who-key").textContent = `${who.AccessKeyId} · account ${who.AccountId} · ${who.Region}`;
  $("#who").hidden = false;
  $("#nav").hidden = false;
  route();
}

async function signOut() {
  await act($("#sign-out"), async () => {
    await request("api/sign-out", {});
    showSignIn("Signed out.");
  });
}

// ---- views ----------------------------------------------------------------------------------

function releaseView() {
  for (const cleanup of cleanups) cleanup();
  cleanups = [];
  for (const url of photoUrls) URL.revokeObjectURL(url);
  photoUrls = [];
}

function route() {
  if (!session.csrf) return;
  releaseView();
  clearMessages();
  const hash = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  const [section, ...rest] = hash.split("/");
  for (const link of document.querySelectorAll("#nav a")) {
    const current = link.getAttribute("href") === `#/${section || "collections"}`;
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const views = { collections: rest.length ? () => collectionView(rest.join("/")) : collectionsView, search: searchView, detect: detectView, compare: compareView, videos: () => videosView(rest.join("/")) };
  (views[section] || collectionsView)();
  main.querySelector("h1")?.focus();
}

function heading(text) {
  return h("h1", { tabindex: "-1" }, text);
}

// A list shown a page at a time: fetchPage(token) answers {items, next}.
function pager(fetchPage, showPage) {
  const tokens = [null];
  let next = null;
  const label = h("span", { className: "muted" });
  const previousButton = h("button", { type: "button", className: "secondary", disabled: true,
    onclick: () => { tokens.pop(); load(); } }, "Previous page");
  const nextButton = h("button", { type: "button", className: "secondary", disabled: true,
    onclick: () => { tokens.push(next); load(); } }, "Next page");
  async function load() {
    await act(null, async () => {
      const page = await fetchPage(tokens[tokens.length - 1]);
      next = page.next || null;
      await showPage(page.items);
      previousButton.disabled = tokens.length === 1;
      nextButton.disabled = !next;
      label.textContent = `Page ${tokens.length}`;
    });
  }
  return {
    controls: h("div", { className: "pager" }, previousButton, label, nextButton),
    load,
    reload: () => { tokens.length = 1; return load(); },
  };
}

// A table; at phone width each row becomes a card whose cells are labelled by their column.
function table(headers, rows, caption) {
  for (const row of rows) {
    [...row.children].forEach((cell, index) => { if (headers[index]) cell.dataset.label = headers[index]; });
  }
  return h("div", { className: "table-wrap" },
    h("table", {}, caption ? h("caption", { className: "muted" }, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((title) => h("th", { scope: "col" }, title)))),
      h("tbody", {}, rows)));
}

// Collections: list (paginated), create, delete.
function collectionsView() {
  const { input: idInput, format: idFormat } = idField("new-collection", "CollectionId", "collection ID");
  const tagsInput = h("input", { type: "text", id: "new-tags", placeholder: "team=ops, site=paris" });
  const createButton = h("button", { type: "submit" }, "Create collection");
  const form = h("form", { className: "form", "aria-label": "New collection" },
    h("label", { for: "new-collection" }, "Collection ID", idInput, idFormat),
    h("label", { for: "new-tags" }, "Tags (key=value, comma separated)", tagsInput),
    createButton);
  const list = h("div");
  const pages = pager(async (token) => {
    const page = await api("ListCollections", { MaxResults: 10, ...(token ? { NextToken: token } : {}) });
    return { items: page.CollectionIds || [], next: page.NextToken };
  }, async (ids) => {
    const rows = await Promise.all(ids.map(collectionRow));
    list.replaceChildren(ids.length
      ? table(["Collection", "Faces", "Users", "Model version", "Created", "ARN", "Tags", ""], rows)
      : h("p", { className: "muted" }, "No collections yet."));
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(createButton, async () => {
      const tags = Object.fromEntries(tagsInput.value.split(",").map((t) => t.trim()).filter(Boolean)
        .map((t) => { const [k, ...v] = t.split("="); return [k.trim(), v.join("=").trim()]; }));
      const id = idInput.value.trim();
      await api("CreateCollection", { CollectionId: id, ...(Object.keys(tags).length ? { Tags: tags } : {}) });
      say(`Collection ${id} created.`);
      idInput.value = "";
      tagsInput.value = "";
      await pages.reload();
    });
  });
  main.replaceChildren(heading("Collections"), form, list, pages.controls);
  pages.load();

  async function collectionRow(id) {
    const about = await api("DescribeCollection", { CollectionId: id });
    const tags = await api("ListTagsForResource", { ResourceArn: about.CollectionARN }).then((r) => r.Tags || {}, () => ({}));
    const remove = h("button", { type: "button", className: "danger", "aria-label": `Delete collection ${id}`,
      onclick: () => {
        if (!confirm(`Delete collection ${id} and all its faces and users?`)) return;
        act(remove, async () => {
          await api("DeleteCollection", { CollectionId: id });
          say(`Collection ${id} deleted.`);
          await pages.load();
        });
      } }, "Delete");
    return h("tr", { dataset: { collection: id } },
      h("td", {}, h("a", { href: `#/collections/${encodeURIComponent(id)}` }, id)),
      h("td", {}, String(about.FaceCount ?? "")),
      h("td", {}, String(about.UserCount ?? "")),
      h("td", {}, about.FaceModelVersion || ""),
      h("td", {}, formatTime(about.CreationTimestamp)),
      h("td", { className: "arn" }, about.CollectionARN || ""),
      h("td", {}, Object.entries(tags).map(([k, v]) => `${k}=${v}`).join(", ")),
      h("td", { className: "actions" }, remove));
  }
}

// One collection: enrol photos, its users and its faces.
function collectionView(id) {
  const summary = h("p", { className: "muted" });
  const usersList = h("datalist", { id: "user-ids" });
  const refreshSummary = () => act(null, async () => {
    const about = await api("DescribeCollection", { CollectionId: id });
    summary.textContent = `${plural(about.FaceCount, "face")} · ${plural(about.UserCount, "user")} · ${about.FaceModelVersion} · ${about.CollectionARN}`;
  });
  const refreshUserIds = () => act(null, async () => {
    const users = await listAll("ListUsers", { CollectionId: id, MaxResults: 500 }, "Users", 2000);
    usersList.replaceChildren(...users.map((u) => h("option", { value: u.UserId })));
  });
  const refreshAll = async () => {
    await Promise.all([refreshSummary(), refreshUserIds(), users.reload(), faces.reload()]);
  };

  // Users.
  const { input: userInput, format: userFormat } = idField("new-user", "UserId", "user ID");
  const createUserButton = h("button", { type: "submit" }, "Create user");
  const userForm = h("form", { className: "form", "aria-label": "New user" },
    h("label", { for: "new-user" }, "User ID", userInput, userFormat), createUserButton);
  userForm.addEventListener("submit", (event) => {
    event.preventDefault();
    act(createUserButton, async () => {
      const userId = userInput.value.trim();
      await api("CreateUser", { CollectionId: id, UserId: userId });
      say(`User ${userId} created.`);
      userInput.value = "";
      await refreshAll();
    });
  });
  const usersBox = h("div");
  const users = pager(async (token) => {
    const page = await api("ListUsers", { CollectionId: id, MaxResults: 10, ...(token ? { NextToken: token } : {}) });
    return { items: page.Users || [], next: page.NextToken };
  }, (items) => {
    usersBox.replaceChildren(items.length ? table(["User", "Status", ""], items.map((user) => {
      const remove = h("button", { type: "button", className: "danger", "aria-label": `Delete user ${user.UserId}`,
        onclick: () => {
          if (!confirm(`Delete user ${user.UserId}? Its faces stay in the collection.`)) return;
          act(remove, async () => {
            await api("DeleteUser", { CollectionId: id, UserId: user.UserId });
            say(`User ${user.UserId} deleted.`);
            await refreshAll();
          });
        } }, "Delete");
      const show = h("button", { type: "button", className: "secondary", "aria-label": `Show the faces of ${user.UserId}`,
        onclick: () => { filterInput.value = user.UserId; faces.reload(); } }, "Faces");
      return h("tr", { dataset: { user: user.UserId } }, h("td", { className: "id" }, user.UserId),
        h("td", {}, user.UserStatus || ""), h("td", { className: "actions" }, show, " ", remove));
    })) : h("p", { className: "muted" }, "No users yet."));
  });

  // Faces.
  const filterInput = h("input", { type: "text", id: "face-filter", list: "user-ids", placeholder: "all users" });
  const filterButton = h("button", { type: "button", className: "secondary", onclick: () => faces.reload() }, "Filter");
  const targetUser = h("input", { type: "text", id: "associate-user", list: "user-ids" });
  const selected = () => [...main.querySelectorAll("input.face-pick:checked")].map((box) => ({ faceId: box.value, userId: box.dataset.user }));
  const associateButton = h("button", { type: "button", onclick: () => act(associateButton, async () => {
    const picked = selected();
    const userId = targetUser.value.trim();
    if (!picked.length || !userId) throw new Error("Pick faces and name a user.");
    const chosen = picked.map((f) => ({ faceId: f.faceId, name: `Face ${f.faceId}` }));
    const result = await associateChecked(id, userId, chosen, associateWarning);
    if (!result) { say("Nothing associated."); return; }
    say(associationOutcome(result, chosen, userId));
    await refreshAll();
  }) }, "Associate selected");
  const disassociateButton = h("button", { type: "button", className: "secondary", onclick: () => act(disassociateButton, async () => {
    const byUser = new Map();
    for (const face of selected().filter((f) => f.userId)) byUser.set(face.userId, [...(byUser.get(face.userId) || []), face.faceId]);
    if (!byUser.size) throw new Error("Pick faces that belong to a user.");
    let count = 0;
    for (const [userId, faceIds] of byUser) {
      const result = await api("DisassociateFaces", { CollectionId: id, UserId: userId, FaceIds: faceIds });
      count += (result.DisassociatedFaces || []).length;
    }
    say(`${plural(count, "face")} disassociated.`);
    await refreshAll();
  }) }, "Disassociate selected");
  const deleteButton = h("button", { type: "button", className: "danger", onclick: () => act(deleteButton, async () => {
    const picked = selected();
    if (!picked.length) throw new Error("Pick the faces to delete.");
    if (!confirm(`Delete ${plural(picked.length, "face")}?`)) return;
    const result = await api("DeleteFaces", { CollectionId: id, FaceIds: picked.map((f) => f.faceId) });
    say(`${plural((result.DeletedFaces || []).length, "face")} deleted.`);
    await refreshAll();
  }) }, "Delete selected");
  const associateWarning = h("div");
  const facesBox = h("div");
  const faces = pager(async (token) => {
    const userId = filterInput.value.trim();
    const page = await api("ListFaces", { CollectionId: id, MaxResults: 20, ...(userId ? { UserId: userId } : {}), ...(token ? { NextToken: token } : {}) });
    return { items: page.Faces || [], next: page.NextToken };
  }, (items) => {
    facesBox.replaceChildren(items.length ? table(["", "Face", "Image", "User", "Confidence"], items.map((face) => h("tr", { dataset: { face: face.FaceId } },
      h("td", {}, h("input", { type: "checkbox", className: "face-pick", value: face.FaceId, dataset: { user: face.UserId || "" }, "aria-label": `Select face ${face.FaceId}` })),
      h("td", { className: "id" }, face.FaceId),
      h("td", { className: "id" }, face.ExternalImageId || ""),
      h("td", { className: "id" }, face.UserId || ""),
      h("td", {}, face.Confidence ? face.Confidence.toFixed(1) : "")))) : h("p", { className: "muted" }, "No faces."));
  });

  main.replaceChildren(
    h("p", {}, h("a", { href: "#/collections" }, "← Collections")),
    heading(`Collection ${id}`), summary, usersList,
    h("section", { "aria-labelledby": "enrol-title" }, h("h2", { id: "enrol-title" }, "Enrol"),
      enrolPanel(id, refreshAll)),
    h("section", { "aria-labelledby": "users-title" }, h("h2", { id: "users-title" }, "Users"),
      userForm, usersBox, users.controls),
    h("section", { "aria-labelledby": "faces-title" }, h("h2", { id: "faces-title" }, "Faces"),
      h("div", { className: "toolbar" }, h("label", { for: "face-filter", className: "form" }, "User ", filterInput), filterButton),
      facesBox, faces.controls,
      h("div", { className: "toolbar" }, h("label", { for: "associate-user" }, "User ", targetUser), associateButton, disassociateButton, deleteButton),
      associateWarning),
  );
  refreshSummary();
  refreshUserIds();
  users.load();
  faces.load();
}

function faceFailures(failures, names, userId) {
  return (failures || []).map((f) => {
    const reasons = (f.Reasons || []).join(", ");
    const score = f.Confidence !== undefined
      ? `: it scores ${f.Confidence.toFixed(1)} against ${userId}'s faces, below the bar of ${associateBar()}` : "";
    const other = f.UserId && f.UserId !== userId ? ` (it is ${f.UserId}'s)` : "";
    return `${names.get(f.FaceId) || f.FaceId} not associated: ${reasons}${score}${other}.`;
  });
}

function associateBar() {
  return facts.Defaults?.["AssociateFaces.UserMatchThreshold"] ?? 75;
}

/**
 * Why the faces `chosen` ([{faceId, name}]) may not belong together in `userId`, before they are
 * associated: AssociateFaces takes faces of one call into a user without faces whatever they look
 * like, and refuses a face below its bar (UserMatchThreshold, default 75) against a user that has
 * faces. So each pair of chosen faces is compared (SearchFaces) and each face scored against the
 * user's faces as AssociateFaces scores it (SearchUsers).
 */
async function associationWarnings(collectionId, userId, chosen) {
  const bar = associateBar();
  const warnings = [];
  const ids = new Set(chosen.map((f) => f.faceId));
  const similarity = new Map();
  for (const face of chosen.slice(0, -1)) {
    const answer = await api("SearchFaces", { CollectionId: collectionId, FaceId: face.faceId, FaceMatchThreshold: 0, MaxFaces: 4096 });
    for (const match of answer.FaceMatches || []) {
      if (ids.has(match.Face.FaceId)) similarity.set(`${face.faceId} ${match.Face.FaceId}`, match.Similarity);
    }
  }
  chosen.forEach((a, i) => chosen.slice(i + 1).forEach((b) => {
    const score = similarity.get(`${a.faceId} ${b.faceId}`);
    if (score === undefined || score < bar) {
      warnings.push(`${a.name} and ${b.name} do not look like one person: similarity ${score === undefined ? "too low to be found" : score.toFixed(1)}, below ${bar}.`);
    }
  }));
  const theirs = await api("ListFaces", { CollectionId: collectionId, UserId: userId, MaxResults: 1 });
  if ((theirs.Faces || []).length) {
    for (const face of chosen) {
      const answer = await api("SearchUsers", { CollectionId: collectionId, FaceId: face.faceId, UserMatchThreshold: 0, MaxUsers: 500 });
      const match = (answer.UserMatches || []).find((m) => m.User.UserId === userId);
      if (!match || match.Similarity < bar) {
        warnings.push(`${face.name} scores ${match ? match.Similarity.toFixed(1) : "too low to be found"} against ${userId}'s faces: AssociateFaces will refuse it below ${bar} (LOW_MATCH_CONFIDENCE).`);
      }
    }
  }
  return warnings;
}

/**
 * Associates `chosen` ([{faceId, name}]) with `userId` (created if need be) after checking that
 * they match; a warning is shown in `panel` with a choice to go on or not. Answers the API's
 * answer, or null when the user stopped.
 */
async function associateChecked(collectionId, userId, chosen, panel) {
  const warnings = await associationWarnings(collectionId, userId, chosen);
  if (warnings.length) {
    const goOn = await new Promise((resolve) => {
      const anyway = h("button", { type: "button", className: "danger", onclick: () => resolve(true) }, "Associate anyway");
      const cancel = h("button", { type: "button", className: "secondary", onclick: () => resolve(false) }, "Cancel");
      panel.replaceChildren(h("div", { className: "warning", role: "alert" },
        h("p", {}, `Before associating with ${userId}:`), h("ul", {}, warnings.map((w) => h("li", {}, w))),
        h("div", { className: "toolbar" }, anyway, cancel)));
      cancel.focus();
    });
    panel.replaceChildren();
    if (!goOn) return null;
  }
  await ensureUser(collectionId, userId);
  return api("AssociateFaces", { CollectionId: collectionId, UserId: userId, FaceIds: chosen.map((f) => f.faceId) });
}

// What AssociateFaces did, in words, with the faces called by their names.
function associationOutcome(answer, chosen, userId) {
  const names = new Map(chosen.map((f) => [f.faceId, f.name]));
  const done = (answer.AssociatedFaces || []).map((f) => names.get(f.FaceId) || f.FaceId);
  const refused = faceFailures(answer.UnsuccessfulFaceAssociations, names, userId);
  const untouched = chosen.length - done.length - refused.length;
  return [
    done.length ? `Associated ${listed(done.map((n) => n.toLowerCase()))} with ${userId}.` : `Nothing associated with ${userId}.`,
    ...refused,
    ...(untouched > 0 ? [`${plural(untouched, "face was", "faces were")} already ${userId}'s.`] : []),
  ].join(" ");
}

async function ensureUser(collectionId, userId) {
  try {
    await api("CreateUser", { CollectionId: collectionId, UserId: userId });
  } catch (error) {
    // An existing user is what we want; anything else is a real failure.
    if (error.code !== "ConflictException") throw error;
  }
}

// Enrol: IndexFaces on each dropped photo, with a progress bar, then associate chosen faces.
function enrolPanel(collectionId, refresh) {
  const progress = h("progress", { max: "1", value: "0", "aria-label": "Enrolment progress", hidden: true });
  const progressText = h("p", { className: "muted enrol-progress", "aria-live": "polite" });
  const photos = h("div", { className: "photos" });
  const zone = dropZone({ label: "Photos to enrol", folder: true, onFiles: (files) => enrol(files) });
  async function enrol(files) {
    progress.hidden = false;
    progress.max = files.length;
    progress.value = 0;
    const tally = { indexed: 0, unindexed: 0, failed: 0 };
    for (const [index, { file, path }] of files.entries()) {
      progressText.textContent = `Indexing ${index + 1} of ${files.length}: ${path}`;
      const result = await enrolOne(file, path);
      for (const key of Object.keys(tally)) tally[key] += result[key];
      photos.append(result.card);
      progress.value = index + 1;
    }
    const parts = [`${plural(tally.indexed, "face")} indexed`];
    if (tally.unindexed) parts.push(`${plural(tally.unindexed, "face")} not indexed`);
    progressText.textContent = `Done: ${plural(files.length, "photo")}, ${parts.join(", ")}`
      + (tally.failed ? `; ${plural(tally.failed, "photo")} failed.` : ".");
    await refresh();
  }
  async function enrolOne(file, path) {
    const url = photoUrl(file);
    let result;
    try {
      result = await api("IndexFaces", {
        CollectionId: collectionId, Image: { Bytes: await imageBase64(file) },
        ExternalImageId: externalImageId(path), DetectionAttributes: ["DEFAULT"],
      });
    } catch (error) {
      const message = error instanceof ApiError ? `${error.code}: ${error.message}` : String(error);
      return { indexed: 0, unindexed: 0, failed: 1, card: h("figure", { className: "photo", dataset: { path, failed: "" } },
        h("figcaption", {}, h("p", {}, h("strong", {}, path)), h("p", { className: "error" }, message))) };
    }
    const records = result.FaceRecords || [];
    const unindexed = result.UnindexedFaces || [];
    // One numbering for the boxes and the lists: the indexed faces (largest first), then the rest.
    const drawn = [
      ...records.map((r, i) => ({ box: r.Face.BoundingBox, kind: "indexed", tag: `${i + 1}`, label: `Face ${i + 1}: indexed` })),
      ...unindexed.map((u, i) => {
        const number = records.length + i + 1;
        // The number only: the reasons, long, are in the list under the photo.
        return { box: u.FaceDetail.BoundingBox, kind: "unindexed", tag: `${number}`, label: `Face ${number}: not indexed (${u.Reasons.join(", ")})` };
      }),
    ];
    const picks = records.map((r, i) => h("input", {
      type: "checkbox", className: "enrol-face", value: r.Face.FaceId, id: `enrol-face-${++serial}`,
      // One face is surely the one to enrol; of several, the user says which.
      checked: records.length === 1,
    }));
    const owners = records.map(() => h("span", { className: "muted owner" }));
    const userInput = h("input", { type: "text", list: "user-ids", className: "enrol-user", "aria-label": `User for the chosen faces of ${path}`, placeholder: "user id" });
    const associate = h("button", { type: "button", className: "associate" });
    const warning = h("div");
    const outcome = h("p", { className: "outcome", "aria-live": "polite" });
    const chosen = () => records.map((r, i) => ({ faceId: r.Face.FaceId, name: `Face ${i + 1}`, pick: picks[i], owner: owners[i] }))
      .filter((f) => f.pick.checked && !f.pick.disabled);
    const label = () => {
      const faces = chosen();
      associate.disabled = !faces.length;
      associate.textContent = !records.length ? "No face to associate"
        : faces.length ? `Associate ${faces.length === 1 ? "face" : "faces"} ${listed(faces.map((f) => f.name.slice(5)))}` : "Choose the faces to associate";
    };
    picks.forEach((pick) => pick.addEventListener("change", label));
    label();
    associate.addEventListener("click", () => act(associate, async () => {
      const userId = userInput.value.trim();
      const faces = chosen();
      if (!userId) throw new Error("Name the user to associate the faces with.");
      const answer = await associateChecked(collectionId, userId, faces, warning);
      if (!answer) { outcome.textContent = "Nothing associated."; return; }
      const done = new Set((answer.AssociatedFaces || []).map((f) => f.FaceId));
      for (const face of faces.filter((f) => done.has(f.faceId))) {
        face.pick.checked = false;
        face.pick.disabled = true;
        face.owner.textContent = ` → ${userId}`;
      }
      outcome.textContent = associationOutcome(answer, faces, userId);
      say(outcome.textContent);
      await refresh();
    }).finally(label));
    const card = photoFigure(url, path, drawn,
      h("p", {}, h("strong", {}, path)),
      h("p", {}, `${records.length} indexed${unindexed.length ? `, ${unindexed.length} not indexed` : ""}`),
      records.length ? h("ul", { className: "enrol-faces", "aria-label": `Indexed faces of ${path}` },
        records.map((r, i) => h("li", {}, picks[i], h("label", { for: picks[i].id }, ` Face ${i + 1}`), owners[i]))) : null,
      unindexed.length ? h("ul", { className: "reasons" }, unindexed.map((u, i) =>
        h("li", {}, `Face ${records.length + i + 1}: not indexed (${u.Reasons.join(", ")})`))) : null,
      h("div", { className: "toolbar" }, userInput, associate), warning, outcome);
    card.dataset.path = path;
    return { indexed: records.length, unindexed: unindexed.length, failed: 0, card };
  }
  return h("div", {}, zone, progress, progressText, photos);
}

// ExternalImageId allows [a-zA-Z0-9_.\-:]: a folder path keeps its structure with ":".
function externalImageId(path) {
  return path.replace(/\//g, ":").replace(/[^a-zA-Z0-9_.\-:]/g, "_").slice(-255) || "photo";
}

async function collectionPicker(id) {
  const select = h("select", { id });
  const ids = await listAll("ListCollections", {}, "CollectionIds").catch((error) => { showError(error); return []; });
  select.replaceChildren(...ids.map((c) => h("option", { value: c }, c)));
  return select;
}

// Search: SearchUsersByImage on a dropped, pasted or webcam photo; any face of it can be searched.
async function searchView() {
  const picker = h("span");
  const maxRule = facts.Shapes?.MaxUsers || {};
  const maxUsers = h("input", {
    type: "number", id: "max-users", min: String(maxRule.Min ?? 1), max: String(maxRule.Max ?? 500), step: "1",
    value: String(facts.Defaults?.MaxUsers ?? maxRule.Max ?? 500), required: true, "aria-describedby": "max-users-format",
  });
  const maxFormat = h("small", { id: "max-users-format", className: "format" },
    `${maxRule.Min ?? 1} to ${maxRule.Max ?? 500}; the API's default is ${facts.Defaults?.MaxUsers ?? maxRule.Max}.`);
  const defaultThreshold = String(facts.Defaults?.UserMatchThreshold ?? 80);
  const slider = h("input", { type: "range", id: "threshold", min: "0", max: "100", step: "1", value: defaultThreshold });
  const sliderValue = h("output", { for: "threshold" }, defaultThreshold);
  const results = h("div", { className: "search-results" });
  const webcam = h("div", { className: "webcam" });
  let lastMatches = null;
  const zone = dropZone({ label: "Photo to search", multiple: false, onFiles: ([{ file, path }]) => search(file, path) });
  const camButton = h("button", { type: "button", className: "secondary", onclick: () => startWebcam(webcam, (file) => search(file, "webcam photo")) }, "Use the webcam");
  camButton.hidden = !(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.isSecureContext);
  zone.append(camButton, h("span", { className: "muted" }, "or paste an image"));
  slider.addEventListener("input", () => {
    sliderValue.textContent = slider.value;
    if (lastMatches) lastMatches();
  });
  onPaste(({ file, path }) => search(file, path));
  main.replaceChildren(heading("Search"),
    h("div", { className: "form" }, h("label", { for: "search-collection" }, "Collection", picker),
      h("label", { for: "max-users" }, "Users to return (MaxUsers)", maxUsers, maxFormat),
      h("div", { className: "threshold" }, h("label", { for: "threshold" }, "Similarity threshold"), slider, sliderValue)),
    zone, webcam, results);
  picker.replaceWith(await collectionPicker("search-collection"));

  // The request's settings, or an error that says what is wrong with them.
  function settings() {
    const collectionId = $("#search-collection")?.value;
    if (!collectionId) throw new Error("Create a collection first.");
    if (!maxUsers.checkValidity()) {
      throw new Error(`MaxUsers (users to return) is a whole number from ${maxUsers.min} to ${maxUsers.max}.`);
    }
    return { collectionId, limit: Number(maxUsers.value) };
  }

  // The whole photo: the API searches its largest face and lists the others.
  async function search(file, name) {
    let request;
    try { request = settings(); } catch (error) { showError(error); return; }
    const url = photoUrl(file);
    say(`Searching ${request.collectionId}…`);
    const answer = await act(null, async () => api("SearchUsersByImage", {
      CollectionId: request.collectionId, Image: { Bytes: await imageBase64(file) }, UserMatchThreshold: 0, MaxUsers: request.limit,
    }));
    if (!answer) { results.replaceChildren(); say(""); return; }
    const searched = answer.SearchedFace?.FaceDetail;
    // One numbering for the whole photo: the searched (largest) face first, then the others.
    const faces = [
      ...(searched ? [{ detail: searched, reasons: [] }] : []),
      ...(answer.UnsearchedFaces || []).map((u) => ({ detail: u.FaceDetails, reasons: u.Reasons })),
    ];
    await show({ file, url, name, faces, request }, searched ? 0 : null, answer, false);
  }

  // Another face of the photo: SearchUsersByImage on a crop around it, where it is the largest.
  async function searchFace(photo, index) {
    let request;
    try { request = settings(); } catch (error) { showError(error); return; }
    const chosen = photo.faces[index].detail.BoundingBox;
    say(`Searching face ${index + 1} in ${request.collectionId}…`);
    const answer = await act(null, async () => {
      const others = photo.faces.filter((_, i) => i !== index).map((f) => f.detail.BoundingBox);
      const crop = await cropOfFace(photo.file, chosen, others);
      const found = await api("SearchUsersByImage", {
        CollectionId: request.collectionId, Image: { Bytes: await imageBase64(crop.blob) }, UserMatchThreshold: 0, MaxUsers: request.limit,
      });
      const box = found.SearchedFace?.FaceDetail?.BoundingBox;
      if (!box || intersectionOverUnion(uncropped(box, crop.area), chosen) < 0.3) {
        throw new Error(`The detector does not find face ${index + 1} again in a crop around it (too small or turned away?): nothing was searched.`);
      }
      return found;
    });
    if (!answer) { say(""); return; }
    await show({ ...photo, request }, index, answer, true);
  }

  async function show(photo, index, answer, cropped) {
    const { request } = photo;
    const matches = answer.UserMatches || [];
    const about = await api("DescribeCollection", { CollectionId: request.collectionId }).catch(() => ({}));
    const drawn = photo.faces.map((face, i) => {
      const why = i === index ? "searched" : face.reasons.length ? `not searched (${face.reasons.join(", ")})` : "not searched";
      return {
        box: face.detail.BoundingBox, landmarks: face.detail.Landmarks, kind: i === index ? "searched" : "unsearched",
        tag: i === index ? `${i + 1} searched` : `${i + 1}`, label: i === index ? `Face ${i + 1}: searched` : `Face ${i + 1}, ${why}: search this face`,
        onpick: i === index ? null : () => searchFace(photo, i),
      };
    });
    const matchList = h("ul", { className: "matches", "aria-label": "Matching users" });
    const matchCount = h("p", { className: "match-count" });
    const returned = plural(matches.length, "user");
    const capped = matches.length === request.limit && about.UserCount > matches.length;
    const userCount = plural(about.UserCount ?? 0, "user");
    const scope = h("p", { className: "muted match-scope" }, index === null ? "" : capped
      ? `The ${matches.length} most similar of the collection's ${userCount} (MaxUsers ${request.limit}): more may pass the threshold.`
      : `${returned} returned of the collection's ${userCount}; a user without faces is never returned.`);
    lastMatches = () => {
      const threshold = Number(slider.value);
      const shown = matches.filter((m) => m.Similarity >= threshold);
      matchCount.textContent = index === null
        ? "No face found in the photo. Nothing was searched."
        : `${shown.length} of ${returned} returned at similarity ${threshold} or more (face ${index + 1}).`;
      matchList.replaceChildren(...shown.map((m) => h("li", { className: "match", dataset: { user: m.User.UserId, similarity: m.Similarity } },
        h("div", {}, h("strong", {}, m.User.UserId), ` ${m.Similarity.toFixed(1)}`),
        h("div", { className: "bar", role: "meter", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": m.Similarity.toFixed(1), "aria-label": `Similarity of ${m.User.UserId}` },
          h("span", { style: { width: `${m.Similarity}%` } })))));
    };
    lastMatches();
    const others = photo.faces.map((face, i) => ({ face, i })).filter(({ i }) => i !== index);
    results.replaceChildren(h("div", { className: "results" },
      photoFigure(photo.url, photo.name, drawn),
      h("div", {}, h("h2", {}, "Matches"), matchCount, scope, matchList,
        others.length ? [h("h2", {}, "Faces not searched"), h("ul", { className: "reasons unsearched-list" },
          others.map(({ face, i }) => h("li", {}, `Face ${i + 1}: ${face.reasons.length ? face.reasons.join(", ") : "another face was chosen"} `,
            h("button", { type: "button", className: "secondary search-face", onclick: () => searchFace(photo, i) }, `Search face ${i + 1}`))))] : null)));
    say(index === null
      ? `No face found in ${photo.name}; nothing was searched.`
      : `Searched face ${index + 1} of ${plural(photo.faces.length, "face")}${cropped ? " (in a crop around it)" : ""}: ${returned} returned.`);
  }
}

function startWebcam(container, onPhoto) {
  act(null, async () => {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    const stop = () => { stream.getTracks().forEach((t) => t.stop()); container.replaceChildren(); };
    cleanups.push(stop);
    const video = h("video", { autoplay: true, playsinline: true, muted: true, "aria-label": "Webcam picture" });
    video.srcObject = stream;
    const take = h("button", { type: "button", onclick: () => {
      const canvas = h("canvas", { width: String(video.videoWidth), height: String(video.videoHeight) });
      canvas.getContext("2d").drawImage(video, 0, 0);
      canvas.toBlob((blob) => { stop(); onPhoto(new File([blob], "webcam.jpg", { type: "image/jpeg" })); }, "image/jpeg", 0.92);
    } }, "Take the photo");
    container.replaceChildren(video, h("div", { className: "toolbar" }, take, h("button", { type: "button", className: "secondary", onclick: stop }, "Cancel")));
    take.focus();
  });
}

function attributeRows(face) {
  const rows = [];
  const add = (name, value) => rows.push(h("tr", {}, h("th", { scope: "row" }, name), h("td", {}, value)));
  const flag = (attribute) => attribute ? `${attribute.Value ? "yes" : "no"} (${attribute.Confidence.toFixed(0)}%)` : "";
  add("Confidence", face.Confidence?.toFixed(1));
  if (face.AgeRange) add("Age", `${face.AgeRange.Low}–${face.AgeRange.High}`);
  if (face.Gender) add("Gender", `${face.Gender.Value} (${face.Gender.Confidence.toFixed(0)}%)`);
  if (face.Emotions) add("Emotions", [...face.Emotions].sort((a, b) => b.Confidence - a.Confidence).slice(0, 3).map((e) => `${e.Type} ${e.Confidence.toFixed(0)}%`).join(", "));
  for (const name of ["Smile", "EyesOpen", "MouthOpen", "Eyeglasses", "Sunglasses", "Beard", "Mustache", "FaceOccluded"]) {
    if (face[name]) add(name, flag(face[name]));
  }
  if (face.EyeDirection) add("Eye direction", `yaw ${face.EyeDirection.Yaw.toFixed(0)}°, pitch ${face.EyeDirection.Pitch.toFixed(0)}°`);
  if (face.Pose) add("Pose", `roll ${face.Pose.Roll.toFixed(0)}°, yaw ${face.Pose.Yaw.toFixed(0)}°, pitch ${face.Pose.Pitch.toFixed(0)}°`);
  if (face.Quality) add("Quality", `brightness ${face.Quality.Brightness.toFixed(0)}, sharpness ${face.Quality.Sharpness.toFixed(0)}`);
  add("Landmarks", String((face.Landmarks || []).length));
  return rows;
}

function faceSummary(face) {
  const parts = [];
  if (face.AgeRange) parts.push(`${face.AgeRange.Low}–${face.AgeRange.High}`);
  if (face.Gender) parts.push(face.Gender.Value);
  const emotion = face.Emotions && [...face.Emotions].sort((a, b) => b.Confidence - a.Confidence)[0];
  if (emotion) parts.push(emotion.Type);
  return parts.join(" · ");
}

// DetectFaces with all attributes, drawn on the photo and listed per face.
function detectView() {
  const results = h("div");
  const run = (file, name) => act(null, async () => {
    const url = photoUrl(file);
    say("Detecting faces…");
    const answer = await api("DetectFaces", { Image: { Bytes: await imageBase64(file) }, Attributes: ["ALL"] });
    const faces = answer.FaceDetails || [];
    results.replaceChildren(h("div", { className: "results" },
      photoFigure(url, name, faces.map((f, i) => ({ box: f.BoundingBox, landmarks: f.Landmarks, kind: "face",
        tag: `${i + 1} ${faceSummary(f)}`, label: `Face ${i + 1}: ${faceSummary(f)}` }))),
      h("div", {}, faces.length ? faces.map((f, i) => h("section", { className: "attributes" },
        h("h2", {}, `Face ${i + 1}`), table(["Attribute", "Value"], attributeRows(f)))) : h("p", {}, "No face found."))));
    say(`${plural(faces.length, "face")} found.`);
  });
  const zone = dropZone({ label: "Photo to analyse", multiple: false, onFiles: ([{ file, path }]) => run(file, path) });
  zone.append(h("span", { className: "muted" }, "or paste an image"));
  onPaste(({ file, path }) => run(file, path));
  main.replaceChildren(heading("Detect faces"), zone, results);
}

// CompareFaces: two photos side by side, the source face linked to its matches.
function compareView() {
  const chosen = { source: null, target: null };
  const threshold = h("input", { type: "number", id: "compare-threshold", min: "0", max: "100", value: "80" });
  const names = { source: h("span", { className: "muted" }, "none yet"), target: h("span", { className: "muted" }, "none yet") };
  const results = h("div");
  const zones = ["source", "target"].map((side) => {
    const zone = dropZone({ label: `${side === "source" ? "Source" : "Target"} photo`, multiple: false,
      onFiles: ([picked]) => { chosen[side] = picked; names[side].textContent = picked.path; } });
    return h("div", {}, h("h2", {}, side === "source" ? "Source photo" : "Target photo"), zone, h("p", {}, "Chosen: ", names[side]));
  });
  const compare = h("button", { type: "button", onclick: () => act(compare, async () => {
    if (!chosen.source || !chosen.target) throw new Error("Choose both photos first.");
    say("Comparing…");
    const answer = await api("CompareFaces", {
      SourceImage: { Bytes: await imageBase64(chosen.source.file) },
      TargetImage: { Bytes: await imageBase64(chosen.target.file) },
      SimilarityThreshold: Number(threshold.value),
    });
    const source = photoFigure(photoUrl(chosen.source.file), chosen.source.path,
      answer.SourceImageFace ? [{ box: answer.SourceImageFace.BoundingBox, kind: "searched", tag: "source", label: "Source face" }] : []);
    const matches = answer.FaceMatches || [];
    const target = photoFigure(photoUrl(chosen.target.file), chosen.target.path, [
      ...matches.map((m, i) => ({ box: m.Face.BoundingBox, landmarks: m.Face.Landmarks, kind: "match", tag: `match ${i + 1} · ${m.Similarity.toFixed(1)}`, label: `Match ${i + 1}, similarity ${m.Similarity.toFixed(1)}` })),
      ...(answer.UnmatchedFaces || []).map((f, i) => ({ box: f.BoundingBox, kind: "unmatched", tag: "", label: `Unmatched face ${i + 1}` })),
    ]);
    const links = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    links.setAttribute("class", "links");
    links.setAttribute("aria-hidden", "true");
    const pair = h("div", { className: "pair" }, source, target, links);
    const draw = () => {
      const origin = pair.getBoundingClientRect();
      const from = source.querySelector(".box")?.getBoundingClientRect();
      links.replaceChildren(...(from ? [...target.querySelectorAll(".box.match")].map((box) => {
        const to = box.getBoundingClientRect();
        const line = document.createElementNS("http://www.w3.org/2000/svg", "line");
        line.setAttribute("x1", from.left + from.width / 2 - origin.left);
        line.setAttribute("y1", from.top + from.height / 2 - origin.top);
        line.setAttribute("x2", to.left + to.width / 2 - origin.left);
        line.setAttribute("y2", to.top + to.height / 2 - origin.top);
        return line;
      }) : []));
    };
    const observer = new ResizeObserver(draw);
    observer.observe(pair);
    pair.querySelectorAll("img").forEach((img) => img.addEventListener("load", draw));
    cleanups.push(() => observer.disconnect());
    results.replaceChildren(pair, h("p", { className: "compare-summary" },
      `${matches.length} matching face${matches.length === 1 ? "" : "s"}, ${(answer.UnmatchedFaces || []).length} not matching.`));
    say(results.lastChild.textContent);
  }) }, "Compare");
  main.replaceChildren(heading("Compare faces"), h("div", { className: "pair" }, ...zones),
    h("div", { className: "form" }, h("label", { for: "compare-threshold" }, "Similarity threshold", threshold), compare), results);
}

// ---- stored video ---------------------------------------------------------------------------

// Rekognition has no ListJobs: the JobIds this browser started are kept here, newest first.
const JOBS_KEY = "facesearch.videoJobs";
const MAX_KEPT_JOBS = 50;
const POLL_MS = 2000;
const GET_OPERATION = { StartFaceSearch: "GetFaceSearch", StartFaceDetection: "GetFaceDetection" };

function keptJobs() {
  try {
    const jobs = JSON.parse(localStorage.getItem(JOBS_KEY) || "[]");
    return Array.isArray(jobs) ? jobs.filter((job) => job && GET_OPERATION[job.api] && job.jobId) : [];
  } catch {
    return [];
  }
}

function keepJobs(jobs) {
  localStorage.setItem(JOBS_KEY, JSON.stringify(jobs.slice(0, MAX_KEPT_JOBS)));
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

// A job's status and, while it runs, its progress: facesearch's x-facesearch-progress header
// (docs/video-jobs.md), as the answer's body is Rekognition's.
async function jobStatus(job) {
  const { document: answer, headers } = await request("api", { JobId: job.jobId, MaxResults: 1 },
    { "X-Amz-Target": `RekognitionService.${GET_OPERATION[job.api]}` }, true);
  const progress = headers.get("x-facesearch-progress");
  return { answer, progress: progress === null ? null : Number(progress) };
}

// Videos: start a face search or detection on an S3 object, the jobs started here, a job's
// persons on a timeline.
async function videosView(shownJobId) {
  const kind = h("select", { id: "video-kind" },
    h("option", { value: "StartFaceSearch" }, "Face search (who appears, and when)"),
    h("option", { value: "StartFaceDetection" }, "Face detection (every face, and when)"));
  const bucket = h("input", { type: "text", id: "video-bucket", required: true, spellcheck: "false", autocomplete: "off",
    value: keptJobs()[0]?.bucket || "" });
  const name = h("input", { type: "text", id: "video-name", required: true, spellcheck: "false", autocomplete: "off", placeholder: "lobby/2024-05-01.mp4" });
  const picker = h("span");
  const threshold = h("input", { type: "number", id: "video-threshold", min: "0", max: "100", step: "any", value: "80", required: true });
  const attributes = h("select", { id: "video-attributes" },
    h("option", { value: "DEFAULT" }, "DEFAULT"), h("option", { value: "ALL" }, "ALL"));
  const searchOnly = h("span", { className: "form-group" },
    h("label", { for: "video-collection" }, "Collection", picker),
    h("label", { for: "video-threshold" }, "Face match threshold", threshold));
  const detectOnly = h("span", { className: "form-group" },
    h("label", { for: "video-attributes" }, "Face attributes", attributes));
  const startButton = h("button", { type: "submit" }, "Start");
  const form = h("form", { className: "form", "aria-label": "New video job" },
    h("label", { for: "video-kind" }, "Job", kind),
    h("label", { for: "video-bucket" }, "S3 bucket", bucket),
    h("label", { for: "video-name" }, "Object name", name),
    searchOnly, detectOnly, startButton);
  const showKind = () => {
    searchOnly.hidden = kind.value !== "StartFaceSearch";
    detectOnly.hidden = !searchOnly.hidden;
  };
  kind.addEventListener("change", showKind);
  showKind();
  const jobsList = h("div", { id: "video-jobs" });
  const result = h("section", { id: "video-result", "aria-live": "polite" });
  main.replaceChildren(heading("Videos"),
    h("p", { className: "muted" }, "Stored-video jobs read an H.264 MP4 or MOV object from S3 (or a folder the server names as a bucket)."),
    form, h("h2", {}, "Jobs started in this browser"), jobsList, result);
  picker.replaceWith(await collectionPicker("video-collection"));

  // Each job's last answer, by JobId, and whether this view is still shown.
  const states = new Map();
  let timer = null;
  let left = false;
  cleanups.push(() => { left = true; clearTimeout(timer); });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(startButton, async () => {
      const video = { S3Object: { Bucket: bucket.value.trim(), Name: name.value.trim() } };
      const api_ = kind.value;
      let params;
      if (api_ === "StartFaceSearch") {
        const collectionId = $("#video-collection")?.value;
        if (!collectionId) throw new Error("Create a collection first.");
        if (!threshold.checkValidity()) throw new Error("The face match threshold is a number from 0 to 100.");
        params = { Video: video, CollectionId: collectionId, FaceMatchThreshold: Number(threshold.value) };
      } else {
        params = { Video: video, FaceAttributes: attributes.value };
      }
      const { JobId: jobId } = await api(api_, params);
      const job = { jobId, api: api_, bucket: video.S3Object.Bucket, name: video.S3Object.Name,
        collectionId: params.CollectionId || null, started: Date.now() };
      keepJobs([job, ...keptJobs().filter((j) => j.jobId !== jobId)]);
      say(`Job started: ${video.S3Object.Name}.`);
      await refresh();
    });
  });

  async function refresh() {
    clearTimeout(timer);
    const jobs = keptJobs();
    await Promise.all(jobs.map(async (job) => {
      const known = states.get(job.jobId);
      if (known && known.answer && known.answer.JobStatus !== "IN_PROGRESS") return;
      try {
        states.set(job.jobId, await jobStatus(job));
      } catch (error) {
        states.set(job.jobId, { error });
      }
    }));
    if (left) return;
    showJobs(jobs);
    if (jobs.some((job) => states.get(job.jobId)?.answer?.JobStatus === "IN_PROGRESS")) {
      timer = setTimeout(refresh, POLL_MS);
    }
    const shown = jobs.find((job) => job.jobId === shownJobId);
    if (shown && states.get(shown.jobId)?.answer?.JobStatus === "SUCCEEDED" && !result.dataset.job) {
      result.dataset.job = shown.jobId;
      await act(null, () => showResult(shown, states.get(shown.jobId).answer));
    } else if (shown && !result.dataset.job) {
      result.replaceChildren(h("p", { className: "muted" }, "The results are shown when the job has succeeded."));
    }
  }

  function showJobs(jobs) {
    if (!jobs.length) {
      jobsList.replaceChildren(h("p", { className: "muted" }, "No job started in this browser yet."));
      return;
    }
    const rows = jobs.map((job) => {
      const state = states.get(job.jobId) || {};
      const status = state.error ? (state.error.code === "ResourceNotFoundException" ? "not found (expired, or another account's)" : `error: ${state.error.message}`)
        : state.answer.JobStatus;
      const share = state.progress ?? 0;
      const progressCell = state.answer?.JobStatus === "IN_PROGRESS"
        ? h("td", {}, h("progress", { max: "100", value: String(share), "aria-label": `Progress of ${job.name}` }), ` ${share.toFixed(0)}%`)
        : h("td", {}, state.answer?.JobStatus === "SUCCEEDED" ? "100%" : "");
      const forget = h("button", { type: "button", className: "secondary", "aria-label": `Forget the job on ${job.name}`,
        onclick: () => { keepJobs(keptJobs().filter((j) => j.jobId !== job.jobId)); states.delete(job.jobId); refresh(); } }, "Forget");
      const open = state.answer?.JobStatus === "SUCCEEDED"
        ? h("a", { href: `#/videos/${encodeURIComponent(job.jobId)}`, "aria-label": `Results of ${job.name}` }, "Results")
        : null;
      return h("tr", { dataset: { job: job.jobId, status: state.answer?.JobStatus || "ERROR" } },
        h("td", {}, `${job.bucket}/${job.name}`),
        h("td", {}, job.api === "StartFaceSearch" ? `Face search in ${job.collectionId}` : "Face detection"),
        h("td", {}, formatTime(job.started / 1000)),
        h("td", { className: "job-status" }, status, state.answer?.StatusMessage ? h("div", { className: "muted" }, state.answer.StatusMessage) : null),
        progressCell,
        h("td", { className: "actions" }, open, " ", forget));
    });
    jobsList.replaceChildren(table(["Video", "Job", "Started", "Status", "Progress", ""], rows));
  }

  await refresh();
}

// A finished job: every result (all pages), grouped into a timeline.
async function showResult(job, answer) {
  const result = $("#video-result");
  const operation = GET_OPERATION[job.api];
  const key = job.api === "StartFaceSearch" ? "Persons" : "Faces";
  say(`Loading the results of ${job.name}…`);
  const items = await listAll(operation, { JobId: job.jobId, ...(key === "Persons" ? { SortBy: "INDEX" } : {}) }, key, 100000);
  const meta = answer.VideoMetadata || {};
  const duration = Math.max(meta.DurationMillis || 0, ...items.map((item) => item.Timestamp + 1));
  const about = h("p", { className: "muted" },
    `${job.bucket}/${job.name} · ${seconds(meta.DurationMillis || 0)} · ${meta.FrameWidth}×${meta.FrameHeight} · ${meta.FrameRate} fps · ${meta.Codec}`);
  const rows = key === "Persons" ? personRows(items)
    : items.length ? [{ label: "Faces", note: plural(items.length, "face"), seen: items.map((f) => ({ at: f.Timestamp })) }] : [];
  result.replaceChildren(h("h2", { tabindex: "-1" }, `Results: ${job.name}`), about,
    rows.length ? timeline(rows, duration) : h("p", {}, key === "Persons" ? "Nobody was seen in this video." : "No face was seen in this video."));
  say(key === "Persons" ? `${plural(rows.length, "person")} seen in ${job.name}.` : `${plural(items.length, "face")} seen in ${job.name}.`);
}

// One row per Person.Index: when they were seen, their best matched users and similarities.
function personRows(persons) {
  const byIndex = new Map();
  for (const item of persons) {
    const index = item.Person?.Index ?? 0;
    if (!byIndex.has(index)) byIndex.set(index, []);
    byIndex.get(index).push(item);
  }
  return [...byIndex.entries()].sort((a, b) => a[0] - b[0]).map(([index, seen]) => {
    const users = new Map();
    for (const item of seen) {
      for (const match of item.FaceMatches || []) {
        const user = match.Face?.UserId || `face ${match.Face?.FaceId}`;
        users.set(user, Math.max(users.get(user) ?? 0, match.Similarity));
      }
    }
    const matched = [...users.entries()].sort((a, b) => b[1] - a[1]);
    return {
      label: `Person ${index}`,
      matched: matched.length > 0,
      note: matched.length ? matched.map(([user, similarity]) => `${user} (${similarity.toFixed(1)})`).join(", ") : "not matched",
      seen: seen.map((item) => ({ at: item.Timestamp, similarity: item.FaceMatches?.[0]?.Similarity })),
    };
  });
}

// Timestamps within a second of each other make one stretch: [[from, to], ...].
function stretches(times) {
  const sorted = [...times].sort((a, b) => a - b);
  const runs = [];
  for (const at of sorted) {
    const last = runs[runs.length - 1];
    if (last && at - last[1] <= 1000) last[1] = at;
    else runs.push([at, at]);
  }
  return runs;
}

function timeline(rows, duration) {
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((share) => h("span", { style: { left: `${share * 100}%` } }, seconds(share * duration)));
  return h("ol", { className: "timeline", "aria-label": "Timeline" },
    h("li", { className: "ruler", "aria-hidden": "true" }, h("span", { className: "who-seen" }), h("span", { className: "track" }, ticks)),
    rows.map((row) => {
      const runs = stretches(row.seen.map((s) => s.at));
      const when = runs.map(([from, to]) => (from === to ? seconds(from) : `${seconds(from)}–${seconds(to)}`)).join(", ");
      return h("li", { className: `person${row.matched === false ? " unmatched" : ""}` },
        h("span", { className: "who-seen" }, h("strong", {}, row.label), " ",
          h("span", { className: row.matched === false ? "muted" : "users" }, row.note),
          h("span", { className: "seen" }, `Seen at ${when}`)),
        h("span", { className: "track", "aria-hidden": "true" },
          runs.map(([from, to]) => h("span", { className: "stretch", title: from === to ? seconds(from) : `${seconds(from)}–${seconds(to)}`,
            style: { left: `${(100 * from) / duration}%`, width: `max(3px, ${(100 * (to - from)) / duration}%)` } }))));
    }));
}

// ---- start ----------------------------------------------------------------------------------

$("#sign-out").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
// What the server tells the page before anyone signs in (formats, defaults, the local key).
fetch("api/info", { credentials: "same-origin" })
  .then((response) => (response.ok ? response.json() : {}))
  .catch(() => ({}))
  .then((info) => {
    facts = info;
    return fetch("api/session", { credentials: "same-origin" });
  })
  .then(async (response) => (response.ok ? signedIn(await response.json()) : showSignIn()))
  .catch(() => showSignIn());
