// Attachments in the composer: the attach button, paste and drag-and-drop, each file uploaded straight to S3 with
// the presigned POST `requestUpload` answers (docs/protocol.md, "upload, attachment"), a progress bar while it
// uploads, a thumbnail in the composer, and thumbnails of attached files in messages (from `getAttachment`).
// Everything the server sends is shown with textContent or as an <img> source, never as HTML.

export const ALLOWED_TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif", "application/pdf"];
export const MAX_ATTACHMENTS = 4;
// The server's defaults (a stage may lower them; the server's `too_large` is the word that counts).
const MAX_IMAGE_BYTES = 10 * 1024 * 1024;
const MAX_PDF_BYTES = 20 * 1024 * 1024;

function megabytes(size) {
  return `${Math.round(size / (1024 * 1024))} MB`;
}

function describe(file) {
  const kb = Math.max(1, Math.round(file.size / 1024));
  return `${file.name} (${kb} KB)`;
}

/** A file's tile, in the composer and in a message: an <li class="attachment"> holding a thumbnail <img> (an image;
 * its `src` is the caller's to set) or a "PDF" badge, then the label. Returns the tile and its <img> (null: a PDF). */
function fileTile(name, contentType, labelText) {
  const li = document.createElement("li");
  li.className = "attachment";
  let img = null;
  if (String(contentType).startsWith("image/")) {
    img = document.createElement("img");
    img.className = "thumbnail";
    img.alt = name;
    li.append(img);
  } else {
    const badge = document.createElement("span");
    badge.className = "file-badge";
    badge.textContent = "PDF";
    li.append(badge);
  }
  const label = document.createElement("span");
  label.className = "attachment-name";
  label.textContent = labelText;
  li.append(label);
  return { li, img };
}

/** The composer's attachments. `send(frame)` sends a frame; `onChange()` is called when what can be sent changes;
 * `note(text)` shows a message under the composer (empty: none). */
export function createAttachments({ tray, input, button, dropTarget, pasteTarget, send, onChange, note }) {
  const items = []; // { file, name, type, size, uploadId, state: "waiting"|"requesting"|"uploading"|"ready", li, bar }
  let requesting = null; // the item whose requestUpload is unanswered (one at a time: answers carry no request id)
  const links = new Map(); // uploadId -> [img elements waiting for their link]

  function render() {
    tray.hidden = items.length === 0;
    onChange();
  }

  function remove(item) {
    const index = items.indexOf(item);
    if (index >= 0) items.splice(index, 1);
    if (item.preview) URL.revokeObjectURL(item.preview);
    item.li.remove();
    item.xhr?.abort();
    if (requesting === item) requesting = null;
    render();
    next();
  }

  function refuse(file, why) {
    note(`Not attached: ${file.name}: ${why}`);
  }

  function add(file) {
    if (!ALLOWED_TYPES.includes(file.type)) {
      refuse(file, "only PNG, JPEG, WebP or GIF images and PDFs can be attached.");
      return;
    }
    const limit = file.type === "application/pdf" ? MAX_PDF_BYTES : MAX_IMAGE_BYTES;
    if (file.size > limit) {
      refuse(file, `it is ${megabytes(file.size)}; the limit is ${megabytes(limit)}.`);
      return;
    }
    if (items.length >= MAX_ATTACHMENTS) {
      refuse(file, `a message takes at most ${MAX_ATTACHMENTS} files.`);
      return;
    }
    const name = file.name || "pasted-image.png";
    const { li, img } = fileTile(name, file.type, describe({ name, size: file.size }));
    li.dataset.state = "waiting";
    const item = { file, name, type: file.type, size: file.size, li, state: "waiting" };
    if (img) {
      item.preview = URL.createObjectURL(file);
      img.src = item.preview;
    }
    item.bar = document.createElement("progress");
    item.bar.max = 100;
    item.bar.value = 0;
    item.bar.setAttribute("aria-label", `Uploading ${item.name}`);
    const removeButton = document.createElement("button");
    removeButton.type = "button";
    removeButton.className = "remove-attachment";
    removeButton.textContent = "×";
    removeButton.setAttribute("aria-label", `Remove ${item.name}`);
    removeButton.addEventListener("click", () => remove(item));
    li.append(item.bar, removeButton);
    tray.append(li);
    items.push(item);
    note("");
    render();
    next();
  }

  function next() {
    if (requesting) return;
    const item = items.find((candidate) => candidate.state === "waiting");
    if (!item) return;
    requesting = item;
    item.state = "requesting";
    item.li.dataset.state = "uploading";
    if (!send({ action: "requestUpload", fileName: item.name, contentType: item.type, size: item.size })) {
      requesting = null;
      item.state = "waiting"; // sent again when the connection is back (next() on reconnect)
    }
  }

  function upload(item, frame) {
    item.state = "uploading";
    item.uploadId = frame.uploadId;
    const form = new FormData();
    for (const [name, value] of Object.entries(frame.fields)) form.append(name, value);
    form.append("file", item.file, item.name); // S3 wants the file last
    const xhr = new XMLHttpRequest();
    item.xhr = xhr;
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) item.bar.value = Math.round((100 * event.loaded) / event.total);
    });
    xhr.addEventListener("load", () => {
      item.xhr = null;
      if (xhr.status >= 200 && xhr.status < 300) {
        item.state = "ready";
        item.bar.value = 100;
        item.li.dataset.state = "ready";
        render();
      } else {
        refuse(item.file, `the upload was refused (${xhr.status}).`);
        remove(item);
      }
    });
    xhr.addEventListener("error", () => {
      item.xhr = null;
      refuse(item.file, "the upload failed; check your connection and attach it again.");
      remove(item);
    });
    xhr.open("POST", frame.url);
    xhr.send(form);
  }

  button.addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    for (const file of input.files) add(file);
    input.value = "";
  });
  pasteTarget.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])];
    if (!files.length) return; // text pastes as usual
    event.preventDefault();
    for (const file of files) add(file);
  });
  dropTarget.addEventListener("dragover", (event) => {
    if (![...(event.dataTransfer?.types || [])].includes("Files")) return;
    event.preventDefault();
    dropTarget.classList.add("dropping");
  });
  dropTarget.addEventListener("dragleave", () => dropTarget.classList.remove("dropping"));
  dropTarget.addEventListener("drop", (event) => {
    const files = [...(event.dataTransfer?.files || [])];
    dropTarget.classList.remove("dropping");
    if (!files.length) return;
    event.preventDefault();
    for (const file of files) add(file);
  });

  return {
    /** Files still uploading: Send waits for them. */
    busy: () => items.some((item) => item.state !== "ready"),
    /** Uploaded files ready to go with a message. */
    ready: () => items.filter((item) => item.state === "ready"),
    /** Hand the ready files to a message: they leave the composer (their previews go with the message). */
    take() {
      const taken = items.filter((item) => item.state === "ready");
      for (const item of taken) {
        items.splice(items.indexOf(item), 1);
        item.li.remove();
      }
      render();
      return taken.map((item) => ({
        uploadId: item.uploadId,
        fileName: item.name,
        contentType: item.type,
        size: item.size,
        preview: item.preview,
      }));
    },
    /** The `upload` frame: post the file. */
    onUpload(frame) {
      const item = requesting;
      requesting = null;
      if (item) upload(item, frame);
      next();
    },
    /** An `error` with no messageId while a requestUpload waits is that request's refusal; true if it was. */
    onError(frame) {
      if (!requesting || frame.messageId) return false;
      const item = requesting;
      refuse(item.file, frame.message);
      remove(item);
      return true;
    },
    /** After a reconnect: ask again for what was waiting. */
    resume() {
      if (requesting && requesting.state === "requesting") {
        requesting.state = "waiting";
        requesting = null;
      }
      next();
    },
    /** Thumbnails (or a file chip) for a message's attachments; images get their link from `getAttachment`. */
    render(attachments) {
      const list = document.createElement("ul");
      list.className = "message-attachments";
      for (const attachment of attachments) {
        const { li, img } = fileTile(attachment.fileName, attachment.contentType, attachment.fileName);
        if (img && attachment.preview) {
          img.src = attachment.preview;
        } else if (img) {
          const waiting = links.get(attachment.uploadId) || [];
          waiting.push(img);
          links.set(attachment.uploadId, waiting);
          send({ action: "getAttachment", uploadId: attachment.uploadId });
        }
        list.append(li);
      }
      return list;
    },
    /** The `attachment` frame: the link for the thumbnails waiting for it. */
    onAttachment(frame) {
      const waiting = links.get(frame.uploadId) || [];
      links.delete(frame.uploadId);
      for (const img of waiting) img.src = frame.url;
    },
  };
}
