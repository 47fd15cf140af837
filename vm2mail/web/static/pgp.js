// The user's key in this browser (IndexedDB, still passphrase-protected) and decryption of PGP/MIME
// voicemails with OpenPGP.js; MIME is parsed by postal-mime. No crypto or MIME parsing of our own.
import * as openpgp from "openpgp";
import PostalMime, { decodeWords } from "postal-mime";

const DB = "vm2mail-inbox";
const STORE = "keys";
let unlocked = null; // the decrypted private key: in this page's memory only, never stored

function db() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function tx(mode, work) {
  const handle = await db();
  return new Promise((resolve, reject) => {
    const t = handle.transaction(STORE, mode);
    const request = work(t.objectStore(STORE));
    t.oncomplete = () => resolve(request?.result);
    t.onerror = () => reject(t.error);
  });
}

export async function storedKey(mailbox) {
  return (await tx("readonly", (s) => s.get(mailbox))) ?? null;
}

export function isUnlocked() {
  return unlocked !== null;
}

// Logging out drops the decrypted key from memory; the stored copy stays encrypted in IndexedDB.
export function lock() {
  unlocked = null;
}

export class KeyError extends Error {
  constructor(code) {
    super(code);
    this.code = code;
  }
}

// Import an armored secret key. A key with a passphrase is checked with it; a key without one is
// protected with the passphrase given before it is stored. Returns the fingerprint.
export async function importKey(mailbox, armored, passphrase) {
  let key;
  try {
    key = await openpgp.readPrivateKey({ armoredKey: armored.trim() });
  } catch {
    throw new KeyError("keyBad");
  }
  if (!passphrase) throw new KeyError(key.isDecrypted() ? "keyNewPassphrase" : "keyWrongPassphrase");
  let decrypted;
  let stored;
  if (key.isDecrypted()) {
    decrypted = key;
    stored = await openpgp.encryptKey({ privateKey: key, passphrase });
  } else {
    try {
      decrypted = await openpgp.decryptKey({ privateKey: key, passphrase });
    } catch {
      throw new KeyError("keyWrongPassphrase");
    }
    stored = key;
  }
  const fingerprint = key.getFingerprint().toUpperCase();
  await tx("readwrite", (s) => s.put({ armored: stored.armor(), fingerprint }, mailbox));
  unlocked = decrypted;
  return fingerprint;
}

export async function unlock(mailbox, passphrase) {
  const record = await storedKey(mailbox);
  if (!record) throw new KeyError("keyNone");
  const key = await openpgp.readPrivateKey({ armoredKey: record.armored });
  try {
    unlocked = await openpgp.decryptKey({ privateKey: key, passphrase });
  } catch {
    throw new KeyError("keyWrongPassphrase");
  }
  return record.fingerprint;
}

export async function forget(mailbox) {
  unlocked = null;
  await tx("readwrite", (s) => s.delete(mailbox));
}

function audioOf(parsed) {
  const parts = parsed.attachments.filter((a) => (a.mimeType || "").startsWith("audio/") ||
    /\.(mp3|wav|ogg|opus|m4a)$/i.test(a.filename || ""));
  parts.sort((a, b) => (b.mimeType === "audio/mpeg") - (a.mimeType === "audio/mpeg"));
  return parts[0] ?? null;
}

// The MP3 of a raw voicemail message (ArrayBuffer), decrypting RFC 3156 PGP/MIME in the page.
export async function voicemailAudio(raw) {
  let outer;
  try {
    outer = await PostalMime.parse(raw, { attachmentEncoding: "arraybuffer" });
  } catch {
    throw new KeyError("badMessage");
  }
  const payload = outer.attachments.find((a) => a.mimeType === "application/octet-stream");
  const control = outer.attachments.find((a) => a.mimeType === "application/pgp-encrypted");
  let inner = outer;
  if (payload && control) {
    if (!unlocked) throw new KeyError("keyNeeded");
    let message;
    try {
      message = await openpgp.readMessage({ armoredMessage: new TextDecoder().decode(payload.content) });
    } catch {
      throw new KeyError("badMessage");
    }
    let data;
    try {
      ({ data } = await openpgp.decrypt({ message, decryptionKeys: unlocked, format: "binary" }));
    } catch {
      throw new KeyError("keyWrong");
    }
    inner = await PostalMime.parse(data, { attachmentEncoding: "arraybuffer" });
  }
  const audio = audioOf(inner);
  if (!audio) throw new KeyError("badMessage");
  return {
    blob: new Blob([audio.content], { type: audio.mimeType || "audio/mpeg" }),
    envelope: envelopeOf(inner),
  };
}

// Caller, name and length from the decrypted message's protected headers: a private mailbox keeps
// them only inside (the server never sees them), so the page learns them when it decrypts.
function envelopeOf(parsed) {
  // RFC 2047 encoded words (a UTF-8 name) decoded by postal-mime.
  const header = (name) => {
    const value = parsed.headers.find((h) => h.key === name.toLowerCase())?.value?.trim();
    return value ? decodeWords(value) : null;
  };
  const duration = Number.parseInt(header("X-Vm2mail-Duration") ?? "", 10);
  return {
    caller: header("X-Vm2mail-Caller"),
    caller_name: header("X-Vm2mail-Caller-Name"),
    duration: Number.isFinite(duration) ? duration : null,
  };
}
