// A stand-in for the sandbox's harness: it reads the user's (already
// JavaScript) code from stdin and imports it from a blob: URL, as the
// sandbox does, then prints the module's default export as JSON.
const code = await new Response(Deno.stdin.readable).text();
const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
const mod = await import(url);
console.log("RESULT " + JSON.stringify(await mod.default));
