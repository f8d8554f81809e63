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

// ---- the API --------------------------------------------------------------------------------

async function request(path, body, headers = {}) {
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
  return document_;
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
 * A photo with faces drawn over it. Each face: {box, landmarks, kind, tag, label}; the box and
 * landmarks are ratios of the image's width and height, as Rekognition returns them, so they are
 * placed in percent of the frame that the image exactly fills.
 */
function photoFigure(url, name, faces, ...caption) {
  const frame = h("div", { className: "frame" }, h("img", { src: url, alt: `Photo ${name}` }));
  faces.forEach((face, index) => {
    const box = face.box;
    frame.append(
      h(
        "div",
        {
          className: `box ${face.kind}${box.Top < 0.08 ? " tag-inside" : ""}`,
          role: "img",
          "aria-label": face.label || face.tag || `Face ${index + 1}`,
          title: face.label || face.tag || "",
          dataset: { kind: face.kind, left: box.Left, top: box.Top, width: box.Width, height: box.Height },
          style: { left: percent(box.Left), top: percent(box.Top), width: percent(box.Width), height: percent(box.Height) },
        },
        face.tag ? h("span", { className: "tag", "aria-hidden": "true" }, face.tag) : null,
      ),
    );
    for (const point of face.landmarks || []) {
      frame.append(h("span", { className: "dot", "aria-hidden": "true", title: point.Type, style: { left: percent(point.X), top: percent(point.Y) } }));
    }
  });
  return h("figure", { className: "photo" }, frame, caption.length ? h("figcaption", {}, ...caption) : null);
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
  main.replaceChildren(h("h1", { id: "signin-title", tabindex: "-1" }, "Sign in"),
    h("p", { className: "muted" }, "Use an access key that the server accepts, as for boto3 or the AWS CLI."),
    form);
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
  const views = { collections: rest.length ? () => collectionView(rest.join("/")) : collectionsView, search: searchView, detect: detectView, compare: compareView };
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

function table(headers, rows, caption) {
  return h("div", { className: "table-wrap" },
    h("table", {}, caption ? h("caption", { className: "muted" }, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((title) => h("th", { scope: "col" }, title)))),
      h("tbody", {}, rows)));
}

// Collections: list (paginated), create, delete.
function collectionsView() {
  const idInput = h("input", { type: "text", id: "new-collection", required: true, pattern: "[a-zA-Z0-9_.\\-]+", maxlength: "255" });
  const tagsInput = h("input", { type: "text", id: "new-tags", placeholder: "team=ops, site=paris" });
  const createButton = h("button", { type: "submit" }, "Create collection");
  const form = h("form", { className: "form", "aria-label": "New collection" },
    h("label", { for: "new-collection" }, "Collection ID", idInput),
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
    summary.textContent = `${about.FaceCount} faces · ${about.UserCount} users · ${about.FaceModelVersion} · ${about.CollectionARN}`;
  });
  const refreshUserIds = () => act(null, async () => {
    const users = await listAll("ListUsers", { CollectionId: id, MaxResults: 500 }, "Users", 2000);
    usersList.replaceChildren(...users.map((u) => h("option", { value: u.UserId })));
  });
  const refreshAll = async () => {
    await Promise.all([refreshSummary(), refreshUserIds(), users.reload(), faces.reload()]);
  };

  // Users.
  const userInput = h("input", { type: "text", id: "new-user", required: true, pattern: "[a-zA-Z0-9_.\\-:]+", maxlength: "128" });
  const createUserButton = h("button", { type: "submit" }, "Create user");
  const userForm = h("form", { className: "form", "aria-label": "New user" },
    h("label", { for: "new-user" }, "User ID", userInput), createUserButton);
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
    await ensureUser(id, userId);
    const result = await api("AssociateFaces", { CollectionId: id, UserId: userId, FaceIds: picked.map((f) => f.faceId) });
    say(`${(result.AssociatedFaces || []).length} faces associated with ${userId}.` + unsuccessful(result.UnsuccessfulFaceAssociations));
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
    say(`${count} faces disassociated.`);
    await refreshAll();
  }) }, "Disassociate selected");
  const deleteButton = h("button", { type: "button", className: "danger", onclick: () => act(deleteButton, async () => {
    const picked = selected();
    if (!picked.length) throw new Error("Pick the faces to delete.");
    if (!confirm(`Delete ${picked.length} faces?`)) return;
    const result = await api("DeleteFaces", { CollectionId: id, FaceIds: picked.map((f) => f.faceId) });
    say(`${(result.DeletedFaces || []).length} faces deleted.`);
    await refreshAll();
  }) }, "Delete selected");
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
      h("div", { className: "toolbar" }, h("label", { for: "associate-user" }, "User ", targetUser), associateButton, disassociateButton, deleteButton)),
  );
  refreshSummary();
  refreshUserIds();
  users.load();
  faces.load();
}

function unsuccessful(failures) {
  return failures && failures.length ? ` Not done: ${failures.map((f) => `${f.FaceId} (${(f.Reasons || []).join(", ")})`).join("; ")}.` : "";
}

async function ensureUser(collectionId, userId) {
  try {
    await api("CreateUser", { CollectionId: collectionId, UserId: userId });
  } catch (error) {
    // An existing user is what we want; anything else is a real failure.
    if (error.code !== "ConflictException") throw error;
  }
}

// Enrol: IndexFaces on each dropped photo, with a progress bar, then associate with a user.
function enrolPanel(collectionId, refresh) {
  const progress = h("progress", { max: "1", value: "0", "aria-label": "Enrolment progress", hidden: true });
  const progressText = h("p", { className: "muted enrol-progress", "aria-live": "polite" });
  const photos = h("div", { className: "photos" });
  const zone = dropZone({ label: "Photos to enrol", folder: true, onFiles: (files) => enrol(files) });
  async function enrol(files) {
    progress.hidden = false;
    progress.max = files.length;
    progress.value = 0;
    let indexed = 0;
    for (const [index, { file, path }] of files.entries()) {
      progressText.textContent = `Indexing ${index + 1} of ${files.length}: ${path}`;
      photos.append(await enrolOne(file, path).then((result) => { indexed += result.count; return result.card; }));
      progress.value = index + 1;
    }
    progressText.textContent = `Done: ${files.length} photos, ${indexed} faces indexed.`;
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
      return { count: 0, card: h("figure", { className: "photo", dataset: { path } },
        h("figcaption", {}, h("p", {}, h("strong", {}, path)), h("p", { className: "error" }, message))) };
    }
    const records = result.FaceRecords || [];
    const unindexed = result.UnindexedFaces || [];
    const drawn = [
      ...records.map((r, i) => ({ box: r.Face.BoundingBox, kind: "indexed", tag: `${i + 1}`, label: `Indexed face ${i + 1}` })),
      ...unindexed.map((u) => ({ box: u.FaceDetail.BoundingBox, kind: "unindexed", tag: u.Reasons.join(", "), label: `Not indexed: ${u.Reasons.join(", ")}` })),
    ];
    const userInput = h("input", { type: "text", list: "user-ids", className: "enrol-user", "aria-label": `User for the faces of ${path}`, placeholder: "user id" });
    const associate = h("button", { type: "button", className: "associate", disabled: !records.length }, records.length ? `Associate ${records.length === 1 ? "face" : `${records.length} faces`}` : "No face to associate");
    const outcome = h("p", { className: "outcome" });
    associate.addEventListener("click", () => act(associate, async () => {
      const userId = userInput.value.trim();
      if (!userId) throw new Error("Name the user to associate the faces with.");
      await ensureUser(collectionId, userId);
      const answer = await api("AssociateFaces", { CollectionId: collectionId, UserId: userId, FaceIds: records.map((r) => r.Face.FaceId) });
      outcome.textContent = `Associated ${(answer.AssociatedFaces || []).length} with ${userId}.${unsuccessful(answer.UnsuccessfulFaceAssociations)}`;
      say(outcome.textContent);
      await refresh();
    }));
    const card = photoFigure(url, path, drawn,
      h("p", {}, h("strong", {}, path)),
      h("p", {}, `${records.length} indexed${unindexed.length ? `, ${unindexed.length} not indexed` : ""}`),
      unindexed.length ? h("ul", { className: "reasons" }, unindexed.map((u, i) => h("li", {}, `Face ${i + 1}: ${u.Reasons.join(", ")}`))) : null,
      h("div", { className: "toolbar" }, userInput, associate), outcome);
    card.dataset.path = path;
    return { count: records.length, card };
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

// Search: SearchUsersByImage on a dropped, pasted or webcam photo.
async function searchView() {
  const picker = h("span");
  const slider = h("input", { type: "range", id: "threshold", min: "0", max: "100", step: "1", value: "80" });
  const sliderValue = h("output", { for: "threshold" }, "80");
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
      h("div", { className: "threshold" }, h("label", { for: "threshold" }, "Similarity threshold"), slider, sliderValue)),
    zone, webcam, results);
  picker.replaceWith(await collectionPicker("search-collection"));

  async function search(file, name) {
    const collectionId = $("#search-collection")?.value;
    if (!collectionId) { showError(new Error("Create a collection first.")); return; }
    const url = photoUrl(file);
    say(`Searching ${collectionId}…`);
    const answer = await act(null, async () => api("SearchUsersByImage", {
      CollectionId: collectionId, Image: { Bytes: await imageBase64(file) }, UserMatchThreshold: 0, MaxUsers: 20,
    }));
    if (!answer) { results.replaceChildren(); say(""); return; }
    const searched = answer.SearchedFace?.FaceDetail;
    const others = answer.UnsearchedFaces || [];
    const faces = [
      ...(searched ? [{ box: searched.BoundingBox, landmarks: searched.Landmarks, kind: "searched", tag: "searched", label: "Searched face" }] : []),
      ...others.map((u, i) => ({ box: u.FaceDetails.BoundingBox, landmarks: u.FaceDetails.Landmarks, kind: "unsearched", tag: `${i + 1}`, label: `Face ${i + 1} not searched: ${u.Reasons.join(", ")}` })),
    ];
    const matchList = h("ul", { className: "matches", "aria-label": "Matching users" });
    const matchCount = h("p", { className: "match-count" });
    const matches = answer.UserMatches || [];
    lastMatches = () => {
      const threshold = Number(slider.value);
      const shown = matches.filter((m) => m.Similarity >= threshold);
      matchCount.textContent = searched
        ? `${shown.length} of ${matches.length} users at similarity ${threshold} or more`
        : "No face found in the photo.";
      matchList.replaceChildren(...shown.map((m) => h("li", { className: "match", dataset: { user: m.User.UserId, similarity: m.Similarity } },
        h("div", {}, h("strong", {}, m.User.UserId), ` ${m.Similarity.toFixed(1)}`),
        h("div", { className: "bar", role: "meter", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": m.Similarity.toFixed(1), "aria-label": `Similarity of ${m.User.UserId}` },
          h("span", { style: { width: `${m.Similarity}%` } })))));
    };
    lastMatches();
    results.replaceChildren(h("div", { className: "results" },
      photoFigure(url, name, faces),
      h("div", {}, h("h2", {}, "Matches"), matchCount, matchList,
        others.length ? [h("h2", {}, "Faces not searched"), h("ul", { className: "reasons unsearched-list" },
          others.map((u, i) => h("li", {}, `Face ${i + 1}: ${u.Reasons.join(", ")}`)))] : null)));
    say(`${matches.length} users compared; ${faces.length} faces in the photo.`);
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
    say(`${faces.length} faces found.`);
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

// ---- start ----------------------------------------------------------------------------------

$("#sign-out").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
fetch("api/session", { credentials: "same-origin" })
  .then(async (response) => (response.ok ? signedIn(await response.json()) : showSignIn()))
  .catch(() => showSignIn());
