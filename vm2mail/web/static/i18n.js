// The inbox's words in English and German; error codes from the API map to messages here.
const WORDS = {
  en: {
    skip: "Skip to the voicemails", title: "Voicemail", language: "Language", logout: "Log out",
    logoutAll: "Log out everywhere", loginTitle: "Log in", loginName: "E-mail login", password: "Password",
    loginButton: "Log in", keyTitle: "Your decryption key",
    keyHelp: "Your voicemails are encrypted. Import your OpenPGP secret key once: it stays in this browser, protected by its passphrase, and is never sent to the server.",
    keyFile: "Secret key file (.asc)", keyText: "or paste it here", passphrase: "Passphrase",
    keyImport: "Import key", keyUnlock: "Unlock", keyForget: "Remove key from this browser",
    keyNone: "No key in this browser yet.", keyStored: "Key {fpr} is stored in this browser (locked).",
    keyUnlocked: "Key {fpr} is unlocked for this page.", keyImported: "Key imported and stored in this browser.",
    keyNewPassphrase: "This key has no passphrase: enter one to protect it in this browser.",
    keyBad: "That is not an OpenPGP secret key.", keyWrongPassphrase: "Wrong passphrase.",
    keyNeeded: "Import and unlock your key to play encrypted voicemails.",
    keyWrong: "This voicemail cannot be decrypted with your key (it was encrypted to another key).",
    badMessage: "This voicemail could not be read.",
    viewNew: "New", viewAll: "All", viewSaved: "Saved", viewTrash: "Trash", nothingPlaying: "Nothing playing",
    nowPlaying: "Playing: {who}, {when}", listTitle: "Voicemails", empty: "No voicemails here.",
    prev: "Newer", next: "Older", pageInfo: "Page {page} of {pages} ({total} voicemails)",
    stateNew: "New", stateHeard: "Heard", stateSaved: "Saved", encrypted: "encrypted",
    unknownCaller: "Unknown caller", play: "Play", save: "Save", unsave: "Unsave", delete: "Delete",
    restore: "Restore", download: "Download MP3", callTel: "Call {number}", callMe: "Call me and connect",
    sms: "Reply by SMS", seconds: "{n} s", loggedIn: "Logged in to mailbox {mailbox} ({name}).",
    deleted: "Moved to Trash.", restored: "Restored from Trash.", saved: "Saved.", unsaved: "No longer saved.",
    newVoicemail: "A new voicemail arrived.", decrypting: "Decrypting…", loading: "Loading…",
    loggedOut: "Logged out.", greetingTitle: "Greeting", greetingHelp: "Callers hear this before they leave a message.",
    greetingHear: "Hear current greeting", greetingRecord: "Record a new greeting", greetingStop: "Stop and save",
    greetingRemove: "Use the standard greeting", greetingFile: "Or upload an audio file", greetingUpload: "Upload greeting",
    greetingRecording: "Recording… speak now, then press “Stop and save”.", greetingSaved: "New greeting saved: the next caller hears it.",
    greetingRemoved: "Callers now hear the standard greeting.", greetingNoMic: "No microphone available (or access was refused).",
    "err_no-greeting": "No recorded greeting: callers hear the standard one.",
    "err_bad-audio": "This file is not audio the gateway can read.", "err_too-large": "The file is too large.",
    smsLabel: "Text message to {number} (at most {max} characters)", smsSend: "Send SMS",
    smsSent: "SMS sent to {number}.", calling: "Your phone rings now; answer it to be connected to the caller.",
    "err_no-caller": "The caller's number was withheld.", "err_no-callback": "This mailbox has no phone number to ring.",
    "err_no-sms": "SMS replies are not set up on this gateway.", "err_sms-refused": "The caller's number cannot receive SMS.",
    "err_empty-sms": "Write a message first.", "err_sms-too-long": "The message is too long.",
    err_twilio: "The phone service did not answer; try again later.",
    err_wrong: "Wrong login or password.", err_locked: "Too many failed logins: this mailbox is locked for a while.",
    err_session: "Your session ended; please log in again.", err_csrf: "Security token missing; reload the page.",
    "err_not-found": "This voicemail does not exist in your mailbox (any more).",
    err_unavailable: "The mail server is not reachable; try again soon.", err_network: "The gateway cannot be reached.",
  },
  de: {
    skip: "Zu den Nachrichten springen", title: "Mailbox", language: "Sprache", logout: "Abmelden",
    logoutAll: "Überall abmelden", loginTitle: "Anmelden", loginName: "E-Mail-Login", password: "Passwort",
    loginButton: "Anmelden", keyTitle: "Ihr Entschlüsselungsschlüssel",
    keyHelp: "Ihre Nachrichten sind verschlüsselt. Importieren Sie einmalig Ihren geheimen OpenPGP-Schlüssel: Er bleibt in diesem Browser, durch seine Passphrase geschützt, und wird nie an den Server gesendet.",
    keyFile: "Datei mit geheimem Schlüssel (.asc)", keyText: "oder hier einfügen", passphrase: "Passphrase",
    keyImport: "Schlüssel importieren", keyUnlock: "Entsperren", keyForget: "Schlüssel aus diesem Browser entfernen",
    keyNone: "Noch kein Schlüssel in diesem Browser.", keyStored: "Schlüssel {fpr} ist in diesem Browser gespeichert (gesperrt).",
    keyUnlocked: "Schlüssel {fpr} ist für diese Seite entsperrt.", keyImported: "Schlüssel importiert und in diesem Browser gespeichert.",
    keyNewPassphrase: "Dieser Schlüssel hat keine Passphrase: Geben Sie eine ein, um ihn in diesem Browser zu schützen.",
    keyBad: "Das ist kein geheimer OpenPGP-Schlüssel.", keyWrongPassphrase: "Falsche Passphrase.",
    keyNeeded: "Importieren und entsperren Sie Ihren Schlüssel, um verschlüsselte Nachrichten abzuspielen.",
    keyWrong: "Diese Nachricht lässt sich mit Ihrem Schlüssel nicht entschlüsseln (sie ist für einen anderen Schlüssel verschlüsselt).",
    badMessage: "Diese Nachricht ist nicht lesbar.",
    viewNew: "Neu", viewAll: "Alle", viewSaved: "Gespeichert", viewTrash: "Papierkorb", nothingPlaying: "Keine Wiedergabe",
    nowPlaying: "Wiedergabe: {who}, {when}", listTitle: "Nachrichten", empty: "Keine Nachrichten.",
    prev: "Neuere", next: "Ältere", pageInfo: "Seite {page} von {pages} ({total} Nachrichten)",
    stateNew: "Neu", stateHeard: "Gehört", stateSaved: "Gespeichert", encrypted: "verschlüsselt",
    unknownCaller: "Unbekannter Anrufer", play: "Abspielen", save: "Speichern", unsave: "Nicht mehr speichern",
    delete: "Löschen", restore: "Wiederherstellen", download: "MP3 herunterladen", callTel: "{number} anrufen",
    callMe: "Mich anrufen und verbinden", sms: "Per SMS antworten", seconds: "{n} s",
    loggedIn: "Angemeldet bei Mailbox {mailbox} ({name}).", deleted: "In den Papierkorb verschoben.",
    restored: "Aus dem Papierkorb wiederhergestellt.", saved: "Gespeichert.", unsaved: "Nicht mehr gespeichert.",
    newVoicemail: "Eine neue Nachricht ist eingegangen.", decrypting: "Entschlüsseln…", loading: "Laden…",
    loggedOut: "Abgemeldet.", greetingTitle: "Ansage", greetingHelp: "Anrufer hören diese Ansage, bevor sie eine Nachricht hinterlassen.",
    greetingHear: "Aktuelle Ansage anhören", greetingRecord: "Neue Ansage aufnehmen", greetingStop: "Beenden und speichern",
    greetingRemove: "Standardansage verwenden", greetingFile: "Oder eine Audiodatei hochladen", greetingUpload: "Ansage hochladen",
    greetingRecording: "Aufnahme läuft… sprechen Sie jetzt und drücken Sie dann „Beenden und speichern“.",
    greetingSaved: "Neue Ansage gespeichert: Der nächste Anrufer hört sie.",
    greetingRemoved: "Anrufer hören jetzt die Standardansage.", greetingNoMic: "Kein Mikrofon verfügbar (oder Zugriff verweigert).",
    "err_no-greeting": "Keine eigene Ansage: Anrufer hören die Standardansage.",
    "err_bad-audio": "Diese Datei ist kein lesbares Audio.", "err_too-large": "Die Datei ist zu groß.",
    smsLabel: "SMS an {number} (höchstens {max} Zeichen)", smsSend: "SMS senden",
    smsSent: "SMS an {number} gesendet.", calling: "Ihr Telefon klingelt jetzt; nehmen Sie ab, um mit dem Anrufer verbunden zu werden.",
    "err_no-caller": "Die Nummer des Anrufers ist unterdrückt.", "err_no-callback": "Für diese Mailbox ist keine Rufnummer hinterlegt.",
    "err_no-sms": "SMS-Antworten sind auf diesem Gateway nicht eingerichtet.", "err_sms-refused": "Die Nummer des Anrufers kann keine SMS empfangen.",
    "err_empty-sms": "Bitte zuerst eine Nachricht schreiben.", "err_sms-too-long": "Die Nachricht ist zu lang.",
    err_twilio: "Der Telefondienst antwortet nicht; bitte später erneut versuchen.",
    err_wrong: "Login oder Passwort falsch.", err_locked: "Zu viele Fehlversuche: Diese Mailbox ist vorübergehend gesperrt.",
    err_session: "Ihre Sitzung ist abgelaufen; bitte melden Sie sich erneut an.",
    err_csrf: "Sicherheitstoken fehlt; bitte laden Sie die Seite neu.",
    "err_not-found": "Diese Nachricht gibt es (nicht mehr) in Ihrer Mailbox.",
    err_unavailable: "Der Mailserver ist nicht erreichbar; bitte später erneut versuchen.",
    err_network: "Das Gateway ist nicht erreichbar.",
  },
};

let current = "en";

export function setLanguage(lang) {
  current = WORDS[lang] ? lang : "en";
  document.documentElement.lang = current;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}

export function language() {
  return current;
}

export function t(key, values = {}) {
  const text = WORDS[current][key] ?? WORDS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

// An API error body {error, message}: our words for its code, else the server's (English) message.
export function errorText(code, fallback) {
  const key = `err_${code}`;
  return WORDS[current][key] ?? fallback ?? code;
}
