// The official AsyncAPI parser (with its Avro schema parser) on a document nerve wrote:
//   node validate.mjs DOCUMENT.json
// prints one JSON object: whether the parser accepted the document, every diagnostic it gave
// (severity 0 error, 1 warning, 2 information, 3 hint), and each message as the parser
// models it (content type, schema format, payload and headers schema types).
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";
import { AvroSchemaParser } from "@asyncapi/avro-schema-parser";

const parser = new Parser();
parser.registerSchemaParser(AvroSchemaParser());
const text = await readFile(process.argv[2], "utf8");
const { document, diagnostics } = await parser.parse(text);
const messages = {};
if (document !== undefined) {
  for (const message of document.allMessages()) {
    messages[message.id()] = {
      contentType: message.contentType() ?? null,
      schemaFormat: message.schemaFormat(),
      payloadType: message.payload()?.type() ?? null,
      headers: message.headers()?.properties() ? Object.keys(message.headers().properties()) : [],
      channels: message.channels().all().map((channel) => channel.address()),
    };
  }
}
console.log(JSON.stringify({
  parsed: document !== undefined,
  diagnostics: diagnostics.map((d) => ({
    severity: d.severity,
    code: d.code,
    message: d.message,
    path: d.path.join("/"),
  })),
  messages,
}));
