// MCP Conductor sandbox harness. This file is Deno's entry module; user code
// never is. It imports nothing (a module the harness loaded would be cached and
// importable from user code without a permission check).
//
// Protocol (newline-delimited JSON):
//   conductor -> harness, on stdin:
//     {"t":"run","secret":S,"code":JS,"resultMax":N}   exactly once, first
//     {"t":"res","id":N,"ok":true,"value":V} | {"t":"res","id":N,"ok":false,"error":MSG}
//   harness -> conductor, on stdout: "\n" + "\x1e" + S + ":" + JSON + "\n"
//     {"t":"ready"}                                       when waiting for "run"
//     {"t":"call","id":N,"server":S,"tool":T,"args":A}    a tool call
//     {"t":"done","ok":true,"has":B,"result":V}          the program finished
//     {"t":"done","ok":false,"error":{"name","message","stack"}}
// Anything else on stdout is the program's own output. The secret S arrives on
// stdin before user code exists and lives only in this closure, so user code
// cannot forge a frame. Every built-in used after user code starts is captured
// here first, so monkey-patching globals cannot intercept the protocol.
"use strict";

const D = globalThis.Deno;
const JSONparse = JSON.parse;
const JSONstringify = JSON.stringify;
const encoder = new TextEncoder();
const encode = encoder.encode.bind(encoder);
const decoder = new TextDecoder();
const decode = decoder.decode.bind(decoder);
const stdout = D.stdout;
const writeSync = stdout.writeSync.bind(stdout);
const stdin = D.stdin;
const readStdin = stdin.read.bind(stdin);
const exit = D.exit.bind(D);
const inspect = D.inspect;
const createObjectURL = URL.createObjectURL;
const BlobCtor = Blob;
const MapCtor = Map;
const SetCtor = Set;
const PromiseCtor = Promise;
const ErrorCtor = Error;
const ArrayIsArray = Array.isArray;
const ObjectKeys = Object.keys;
const ObjectDefineProperty = Object.defineProperty;
const ObjectGetPrototypeOf = Object.getPrototypeOf;
const ObjectPrototype = Object.prototype;
const StringCtor = String;
const NumberIsFinite = Number.isFinite;
const mapGet = MapCtor.prototype.get;
const mapSet = MapCtor.prototype.set;
const mapDelete = MapCtor.prototype.delete;
const setHas = SetCtor.prototype.has;
const setAdd = SetCtor.prototype.add;
const setDelete = SetCtor.prototype.delete;
const call = Function.prototype.call.bind(Function.prototype.call);
const u8Subarray = Uint8Array.prototype.subarray;
const u8IndexOf = Uint8Array.prototype.indexOf;
const u8Set = Uint8Array.prototype.set;
const Uint8ArrayCtor = Uint8Array;
const addEventListener = globalThis.addEventListener.bind(globalThis);

let secret = "";
let resultMax = 1 << 20;

function send(msg) {
  const bytes = encode("\n\x1e" + secret + ":" + JSONstringify(msg) + "\n");
  let off = 0;
  while (off < bytes.length) off += writeSync(call(u8Subarray, bytes, off));
}

// Line reader over stdin.
let buf = new Uint8ArrayCtor(0);
async function readLine() {
  for (;;) {
    const nl = call(u8IndexOf, buf, 10);
    if (nl >= 0) {
      const line = decode(call(u8Subarray, buf, 0, nl));
      buf = call(u8Subarray, buf, nl + 1);
      return line;
    }
    const chunk = new Uint8ArrayCtor(65536);
    const n = await readStdin(chunk);
    if (n === null) return null;
    const next = new Uint8ArrayCtor(buf.length + n);
    call(u8Set, next, buf, 0);
    call(u8Set, next, call(u8Subarray, chunk, 0, n), buf.length);
    buf = next;
  }
}

// Tool calls from generated modules: globalThis.__conductor_call.
const pending = new MapCtor();
let nextID = 1;
function conductorCall(server, tool, args) {
  if (typeof server !== "string" || typeof tool !== "string") {
    return PromiseCtor.reject(new ErrorCtor("__conductor_call(server, tool, args): server and tool must be strings"));
  }
  let encoded;
  try {
    encoded = JSONstringify(args === undefined ? {} : args);
  } catch (e) {
    return PromiseCtor.reject(new ErrorCtor(`${server}.${tool}: arguments are not JSON: ${e?.message ?? e}`));
  }
  const id = nextID++;
  return new PromiseCtor((resolve, reject) => {
    call(mapSet, pending, id, { resolve, reject, name: `${server}.${tool}` });
    // args travel as a JSON string inside the frame: user getters ran above.
    send({ t: "call", id, server, tool, args: encoded });
  });
}

async function pump() {
  for (;;) {
    const line = await readLine();
    if (line === null) exit(70);
    if (line === "") continue;
    const msg = JSONparse(line);
    if (msg.t !== "res") continue;
    const p = call(mapGet, pending, msg.id);
    if (!p) continue;
    call(mapDelete, pending, msg.id);
    if (msg.ok) p.resolve(msg.value);
    else {
      const err = new ErrorCtor(msg.error);
      err.name = "ToolError";
      p.reject(err);
    }
  }
}

// Values JSON cannot hold get a faithful string form.
function toJSONValue(v, seen) {
  switch (typeof v) {
    case "string":
    case "boolean":
      return v;
    case "number":
      return NumberIsFinite(v) ? v : StringCtor(v);
    case "bigint":
      return StringCtor(v) + "n";
    case "undefined":
      return "undefined";
    case "symbol":
    case "function":
      return inspect(v);
  }
  if (v === null) return null;
  if (call(setHas, seen, v)) return "[Circular]";
  if (typeof v.toJSON === "function") {
    try {
      return toJSONValue(v.toJSON(), seen);
    } catch {
      return inspect(v);
    }
  }
  call(setAdd, seen, v);
  try {
    if (ArrayIsArray(v)) {
      const out = [];
      for (let i = 0; i < v.length; i++) out[i] = toJSONValue(v[i], seen);
      return out;
    }
    const proto = ObjectGetPrototypeOf(v);
    if (proto !== ObjectPrototype && proto !== null) {
      if (v instanceof MapCtor || v instanceof SetCtor || v instanceof ErrorCtor ||
        v instanceof PromiseCtor || ArrayBuffer.isView(v) || v instanceof ArrayBuffer ||
        v instanceof WeakMap || v instanceof WeakSet || v instanceof RegExp) {
        return inspect(v, { depth: 4 });
      }
    }
    const out = {};
    for (const k of ObjectKeys(v)) {
      const x = v[k];
      if (x === undefined) continue;
      out[k] = toJSONValue(x, seen);
    }
    return out;
  } finally {
    call(setDelete, seen, v);
  }
}

function describeError(e) {
  if (e instanceof ErrorCtor || (e && typeof e === "object" && "message" in e)) {
    let stack = "";
    try {
      stack = StringCtor(e.stack ?? "");
    } catch {}
    return { name: StringCtor(e.name ?? "Error"), message: StringCtor(e.message ?? ""), stack };
  }
  let text;
  try {
    text = typeof e === "string" ? e : inspect(e);
  } catch {
    text = "uncaught value";
  }
  return { name: "Uncaught", message: text, stack: "" };
}

let finished = false;
function finish(msg) {
  if (finished) return;
  finished = true;
  send(msg);
  exit(0);
}

function fail(e) {
  finish({ t: "done", ok: false, error: describeError(e) });
}

addEventListener("unhandledrejection", (ev) => {
  ev.preventDefault();
  fail(ev.reason);
});
addEventListener("error", (ev) => {
  ev.preventDefault();
  fail(ev.error ?? ev.message);
});

// Lock down what user code could use to leak host facts or keep state.
function hide(name, value) {
  try {
    ObjectDefineProperty(globalThis, name, { value, writable: false, configurable: false, enumerable: false });
  } catch {}
}
function unavailable(what) {
  return function () {
    throw new ErrorCtor(`${what} is not available in the conductor sandbox`);
  };
}
hide("Worker", unavailable("Worker"));
hide("localStorage", undefined);
hide("sessionStorage", undefined);
hide("caches", undefined);
try {
  ObjectDefineProperty(D, "execPath", { value: () => "deno", writable: false, configurable: false });
  ObjectDefineProperty(D, "mainModule", { value: "file:///main.ts", writable: false, configurable: false });
  ObjectDefineProperty(D, "exit", {
    value: (code) => {
      const c = code ?? 0;
      if (c === 0) finish({ t: "done", ok: true, has: false });
      else fail({ name: "Exit", message: `program called Deno.exit(${c})` });
    },
    writable: false,
    configurable: false,
  });
} catch {}
hide("__conductor_call", conductorCall);

send({ t: "ready" });
const first = await readLine();
if (first === null) exit(0);
const run = JSONparse(first);
secret = run.secret;
resultMax = run.resultMax ?? resultMax;
pump().catch(fail);

try {
  const url = createObjectURL(new BlobCtor([run.code], { type: "text/javascript" }));
  const mod = await import(url);
  const key = run.resultKey;
  if (key && key in mod) {
    const value = mod[key];
    if (value === undefined) finish({ t: "done", ok: true, has: false });
    else {
      let result = toJSONValue(value, new SetCtor());
      let text = JSONstringify(result);
      if (text.length > resultMax) {
        fail({ name: "OutputLimit", message: `result is ${text.length} bytes, more than the limit of ${resultMax}` });
      } else finish({ t: "done", ok: true, has: true, result });
    }
  } else finish({ t: "done", ok: true, has: false });
} catch (e) {
  fail(e);
}
