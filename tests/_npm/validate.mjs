// Validate an AsyncAPI document with the official parser: node validate.mjs FILE
// Prints the parser's diagnostics as JSON; exits 1 when any is an error.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
const text = readFileSync(process.argv[2], "utf8");
const { document, diagnostics } = await parser.parse(text);
const errors = diagnostics.filter((d) => d.severity === 0);
console.log(JSON.stringify({
  parsed: document !== undefined,
  messages: document ? document.messages().all().map((m) => m.name()) : [],
  diagnostics: diagnostics.map((d) => ({ code: d.code, severity: d.severity, message: d.message, path: d.path })),
}));
process.exit(errors.length || document === undefined ? 1 : 0);
