// MCP Conductor sandbox harness. This file is Deno's entry module; user code
// never is. It imports nothing (a module the harness loaded would be cached and
// importable from user code without a permission check).
//
// Protocol (newline-delimited JSON):
//   conductor -> harness, on stdin:
//     {"t":"run","secret":S,"code":JS,"fn":B,"ns":[SPEC],"resultKey":K,"resultMax":N}
//                                                       exactly once, first
//     {"t":"res","id":N,"ok":true,"value":V} | {"t":"res","id":N,"ok":false,"error":MSG}
//   harness -> conductor, on stderr, just before "done": "\x1e" + S + ":end\n"
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
const preload = [...D.args]; // allowed packages to load while waiting
const JSONparse = JSON.parse;
const JSONstringify = JSON.stringify;
const encoder = new TextEncoder();
const encode = encoder.encode.bind(encoder);
const decoder = new TextDecoder();
const decode = decoder.decode.bind(decoder);
const stdout = D.stdout;
const writeSync = stdout.writeSync.bind(stdout);
const stderr = D.stderr;
const writeErrSync = stderr.writeSync.bind(stderr);
const stdin = D.stdin;
const readStdin = stdin.read.bind(stdin);
const readStdinSync = stdin.readSync.bind(stdin);
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
const ObjectCreate = Object.create;
const AsyncFunctionCtor = (async function () {}).constructor;
const ObjectPrototype = Object.prototype;
const ArrayBufferCtor = ArrayBuffer;
const ArrayBufferIsView = ArrayBuffer.isView;
const WeakMapCtor = WeakMap;
const WeakSetCtor = WeakSet;
const RegExpCtor = RegExp;
const AtomicsWait = Atomics.wait;
const Int32ArrayCtor = Int32Array;
const SharedArrayBufferCtor = SharedArrayBuffer;
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

// send writes one frame. Frames are JSON text the harness builds itself
// (never JSON.stringify of an object: user code may have defined toJSON or
// setters on Object.prototype).
function send(text) {
  const bytes = encode("\n\x1e" + secret + ":" + text + "\n");
  let off = 0;
  while (off < bytes.length) off += writeSync(call(u8Subarray, bytes, off));
}

// Line reader over stdin.
let buf = new Uint8ArrayCtor(0);
function takeLine() {
  const nl = call(u8IndexOf, buf, 10);
  if (nl < 0) return undefined;
  const line = decode(call(u8Subarray, buf, 0, nl));
  buf = call(u8Subarray, buf, nl + 1);
  return line;
}
function append(chunk, n) {
  const next = new Uint8ArrayCtor(buf.length + n);
  call(u8Set, next, buf, 0);
  call(u8Set, next, call(u8Subarray, chunk, 0, n), buf.length);
  buf = next;
}
async function readLine() {
  for (;;) {
    const line = takeLine();
    if (line !== undefined) return line;
    const chunk = new Uint8ArrayCtor(65536);
    const n = await readStdin(chunk);
    if (n === null) return null;
    append(chunk, n);
  }
}
// readLineSync blocks the whole process until a line comes: only for the
// program, when nothing else can be running. The main thread reads the pipe
// itself, which saves the hand-off from Deno's blocking-read thread.
function readLineSync() {
  for (;;) {
    const line = takeLine();
    if (line !== undefined) return line;
    const chunk = new Uint8ArrayCtor(65536);
    const n = readStdinSync(chunk);
    if (n === null) return null;
    append(chunk, n);
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
    return PromiseCtor.reject(new ErrorCtor(`${server}.${tool}: arguments are not JSON: ${str(get(e, "message"), "")}`));
  }
  if (typeof encoded !== "string") {
    return PromiseCtor.reject(new ErrorCtor(`${server}.${tool}: arguments are not JSON`));
  }
  const id = nextID++;
  const answer = new PromiseCtor((resolve, reject) => {
    call(mapSet, pending, id, { resolve, reject, name: `${server}.${tool}` });
    // args travel as a JSON string inside the frame: user getters ran above.
    send('{"t":"call","id":' + id + ',"server":' + JSONstringify(server) + ',"tool":' +
      JSONstringify(tool) + ',"args":' + JSONstringify(encoded) + "}");
  });
  if (!pumping) {
    pumping = true;
    pump().catch(fail);
  }
  return answer;
}

// pump reads the answers to tool calls. It starts just after the first call
// is sent: Deno's first asynchronous read of stdin starts a thread (about
// 0.2 ms), which then overlaps the call's round trip, and a program that
// calls no tool never pays it.
let pumping = false;
async function pump() {
  for (;;) {
    const line = await readLine();
    if (line === null) exit(70);
    if (line === "") continue;
    const msg = JSONparse(line);
    // Only answers to calls count: a second "run" is never executed (a
    // process runs exactly one program, pooled or not).
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

// str converts without trusting user code: a throwing toString gives dflt.
function str(x, dflt) {
  if (x === undefined || x === null) return dflt;
  try {
    return StringCtor(x);
  } catch {
    return dflt;
  }
}

function get(o, k) {
  try {
    return o[k];
  } catch {
    return undefined;
  }
}

function safeInspect(v, opts) {
  try {
    return inspect(v, opts);
  } catch {
    return "[uninspectable]";
  }
}

const quote = (s) => JSONstringify(s); // a string primitive: no toJSON involved

// jsonText renders v as JSON text; values JSON cannot hold get a faithful
// string form. It walks with captured built-ins and index loops only, so
// user code that replaced iterators, Object.keys or setters on prototypes
// changes nothing here.
function jsonText(v, seen) {
  switch (typeof v) {
    case "string":
      return quote(v);
    case "boolean":
      return v ? "true" : "false";
    case "number":
      return NumberIsFinite(v) ? "" + v : quote("" + v);
    case "bigint":
      return quote("" + v + "n");
    case "undefined":
      return quote("undefined");
    case "symbol":
    case "function":
      return quote(safeInspect(v));
  }
  if (v === null) return "null";
  if (call(setHas, seen, v)) return quote("[Circular]");
  if (typeof v.toJSON === "function") {
    let j;
    try {
      j = v.toJSON();
    } catch {
      return quote(safeInspect(v));
    }
    call(setAdd, seen, v);
    try {
      return jsonText(j, seen);
    } finally {
      call(setDelete, seen, v);
    }
  }
  call(setAdd, seen, v);
  try {
    if (ArrayIsArray(v)) {
      let out = "[";
      const n = v.length;
      for (let i = 0; i < n; i++) {
        if (i > 0) out += ",";
        out += jsonText(v[i], seen);
      }
      return out + "]";
    }
    const proto = ObjectGetPrototypeOf(v);
    if (proto !== ObjectPrototype && proto !== null) {
      if (v instanceof MapCtor || v instanceof SetCtor || v instanceof ErrorCtor ||
        v instanceof PromiseCtor || ArrayBufferIsView(v) || v instanceof ArrayBufferCtor ||
        v instanceof WeakMapCtor || v instanceof WeakSetCtor || v instanceof RegExpCtor) {
        return quote(safeInspect(v, { depth: 4 }));
      }
    }
    let out = "{";
    const keys = ObjectKeys(v);
    let first = true;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      const x = v[k];
      if (x === undefined) continue;
      if (!first) out += ",";
      first = false;
      out += quote(k) + ":" + jsonText(x, seen);
    }
    return out + "}";
  } finally {
    call(setDelete, seen, v);
  }
}

function describeError(e) {
  let isErr = false;
  try {
    isErr = e instanceof ErrorCtor || (e !== null && typeof e === "object" && "message" in e);
  } catch {}
  if (isErr) {
    return '{"name":' + quote(str(get(e, "name"), "Error")) + ',"message":' + quote(str(get(e, "message"), "")) +
      ',"stack":' + quote(str(get(e, "stack"), "")) + "}";
  }
  const text = typeof e === "string" ? e : safeInspect(e);
  return '{"name":"Uncaught","message":' + quote(text) + ',"stack":""}';
}

let finished = false;
// finish sends the last frame and waits, without running any more user
// code, for the conductor to kill the whole process tree (exiting here would
// orphan the program's subprocesses before the conductor could find them).
function finish(text) {
  if (finished) return;
  finished = true;
  // Tell the conductor stderr is complete, so it need not wait for the
  // process to die to know it read everything.
  try {
    const end = encode("\x1e" + secret + ":end\n");
    let off = 0;
    while (off < end.length) off += writeErrSync(call(u8Subarray, end, off));
  } catch {}
  send(text);
  try {
    AtomicsWait(new Int32ArrayCtor(new SharedArrayBufferCtor(4)), 0, 0, 10000);
  } catch {}
  exit(0);
}

const doneEmpty = '{"t":"done","ok":true,"has":false}';

function fail(e) {
  let text;
  try {
    text = describeError(e);
  } catch {
    text = '{"name":"Error","message":"the program failed","stack":""}';
  }
  finish('{"t":"done","ok":false,"error":' + text + "}");
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
  // stdin carries the conductor's replies to tool calls: user code must not
  // read (steal) them. The harness keeps its own reader, captured above.
  const noStdin = unavailable("stdin");
  ObjectDefineProperty(D, "stdin", {
    value: Object.freeze({
      rid: -1,
      read: () => PromiseCtor.reject(new ErrorCtor("stdin is not available in the conductor sandbox")),
      readSync: noStdin,
      get readable() {
        return noStdin();
      },
      setRaw: noStdin,
      isTerminal: () => false,
      close: () => {},
      [Symbol.dispose]: () => {},
    }),
    writable: false,
    configurable: false,
  });
  ObjectDefineProperty(D, "exit", {
    value: (code) => {
      const c = code ?? 0;
      if (c === 0) finish(doneEmpty);
      else fail({ name: "Exit", message: `program called Deno.exit(${c})` });
    },
    writable: false,
    configurable: false,
  });
} catch {}
hide("__conductor_call", conductorCall);

// Namespaces of the modules loaded so far, by the specifier the conductor
// resolved (an allowed package, a generated module's file: URL). The
// program's imports are shims that read them (see prepare.go): a program
// gets only what the harness loaded for it, which it may import anyway.
const namespaces = new MapCtor();
// wrap presents a namespace the way esbuild's shims expect an ES module
// seen from CommonJS: live getters and __esModule (unless the module
// exports that name itself, as CommonJS packages compiled from ES modules
// do).
function wrap(ns) {
  const o = ObjectCreate(null);
  const keys = ObjectKeys(ns);
  let esModule = false;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    if (k === "__esModule") esModule = true;
    ObjectDefineProperty(o, k, { enumerable: true, get: () => ns[k] });
  }
  if (!esModule) ObjectDefineProperty(o, "__esModule", { value: true });
  return o;
}
async function load(spec) {
  if (call(mapGet, namespaces, spec) === undefined) {
    call(mapSet, namespaces, spec, wrap(await import(spec)));
  }
}
hide("__conductor_ns", (spec) => {
  const o = call(mapGet, namespaces, spec);
  if (o === undefined) throw new ErrorCtor(`module ${str(spec, "?")} is not loaded`);
  return o;
});

// Warm the module loader (about a millisecond off the program's own import).
// The module is a constant of the harness: nothing a user can influence.
try {
  const warm = createObjectURL(new BlobCtor(["export {};"], { type: "text/javascript" }));
  await import(warm);
  URL.revokeObjectURL(warm);
} catch {}
// Warm V8's compiler of functions made at run time: the program is one, and
// the first costs about 0.1 ms more than the next.
try {
  await new AsyncFunctionCtor("h", '"use strict";\nh.v = (0);\n//# sourceURL=warm')(ObjectCreate(null));
} catch {}
// The administrator's allowed packages, from the read-only cache.
for (const spec of preload) {
  try {
    await load(spec);
  } catch {}
}
try {
  ObjectDefineProperty(D, "args", { value: Object.freeze([]), writable: false, configurable: false });
} catch {}

send('{"t":"ready"}');
const first = readLineSync();
if (first === null) exit(0);
const run = JSONparse(first);
secret = run.secret;
resultMax = run.resultMax ?? resultMax;

function result(has, value) {
  if (!has || value === undefined) return finish(doneEmpty);
  const text = jsonText(value, new SetCtor());
  if (text.length > resultMax) {
    fail({ name: "OutputLimit", message: `result is ${text.length} bytes, more than the limit of ${resultMax}` });
  } else finish('{"t":"done","ok":true,"has":true,"result":' + text + "}");
}

try {
  const specs = run.ns ?? [];
  for (let i = 0; i < specs.length; i++) await load(specs[i]);
  const key = run.resultKey;
  if (run.fn) {
    // The program is the body of an async function: no module to load.
    // Its parameter (a random name) holds the last expression's value.
    const holder = ObjectCreate(null);
    const f = key ? new AsyncFunctionCtor(key, run.code) : new AsyncFunctionCtor(run.code);
    await f(holder);
    result(key && "v" in holder, holder.v);
  } else {
    const url = createObjectURL(new BlobCtor([run.code], { type: "text/javascript" }));
    const mod = await import(url);
    result(key && key in mod, key ? mod[key] : undefined);
  }
} catch (e) {
  fail(e);
}
