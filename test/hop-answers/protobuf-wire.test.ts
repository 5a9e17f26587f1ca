import { fromBinary, fromJson, type JsonObject, toBinary, toJson } from "@bufbuild/protobuf";
import { StructSchema } from "@bufbuild/protobuf/wkt";
import type { Value } from "@cerbos/core";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { decodeBatchResponse, encodeBatchRequest } from "../../src/hop-answers/authzen-wire.ts";
import {
  ProtobufReader,
  ProtobufWriter,
  readValueMapEntry,
  WireType,
  writeValueMap,
} from "../../src/hop-answers/protobuf-wire.ts";

// @bufbuild/protobuf (what @cerbos/core encodes checkResources with) is the reference for google.protobuf.Struct.

/** A Struct's bytes, written by hopguard's writer. */
function structBytes(fields: Record<string, Value>): Uint8Array {
  const writer = new ProtobufWriter();
  writeValueMap(writer, 1, fields);
  return writer.finish().slice();
}

/** A Struct read back by hopguard's reader. */
function readStruct(bytes: Uint8Array): Record<string, Value> {
  const reader = new ProtobufReader(bytes);
  const fields: Record<string, Value> = {};
  while (!reader.done) {
    const tag = reader.tag();
    expect(tag >>> 3).toBe(1);
    reader.expect(tag, WireType.bytes, "fields");
    readValueMapEntry(reader.message(), fields);
  }
  return fields;
}

const json = fc.dictionary(fc.string({ unit: "grapheme" }), fc.jsonValue({ maxDepth: 6, stringUnit: "grapheme" }), {
  maxKeys: 8,
}) as fc.Arbitrary<Record<string, Value>>;

/** Varint bytes of `value`, for hand-made answers. */
function varint(value: number): number[] {
  const out: number[] = [];
  let rest = value;
  while (rest > 0x7f) {
    out.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}
const delimited = (field: number, body: number[]): number[] => [(field << 3) | 2, ...varint(body.length), ...body];

describe("google.protobuf.Value on the wire", () => {
  test("what hopguard writes, @bufbuild/protobuf reads as the same JSON; and the other way round", () => {
    fc.assert(
      fc.property(json, (fields) => {
        // -0 included: both sides send doubles as they are.
        const asJson = fields as JsonObject;
        expect(toJson(StructSchema, fromBinary(StructSchema, structBytes(fields)))).toEqual(asJson);
        expect(readStruct(toBinary(StructSchema, fromJson(StructSchema, asJson)))).toEqual(asJson);
      }),
      { numRuns: 300 },
    );
  });

  test("long values get multi-byte length prefixes at every level", () => {
    const long = "é".repeat(70_000);
    const fields = { outer: { inner: [long, { deeper: long }] }, n: 1.5, none: null, yes: true };
    expect(toJson(StructSchema, fromBinary(StructSchema, structBytes(fields)))).toEqual(fields);
    expect(readStruct(structBytes(fields))).toEqual(fields);
  });

  test("lone surrogates are sent as U+FFFD, as @bufbuild/protobuf sends them in checkResources", () => {
    const fields = { path: "/workspace/alice/\uD800x" };
    expect(structBytes(fields)).toEqual(toBinary(StructSchema, fromJson(StructSchema, fields)));
    expect(readStruct(structBytes(fields))).toEqual({ path: "/workspace/alice/\uFFFDx" });
  });

  test("a key named __proto__ stays an own key and pollutes nothing", () => {
    const fields = JSON.parse('{"__proto__": {"admin": true}}') as Record<string, Value>;
    const read = readStruct(structBytes(fields));
    expect(Object.hasOwn(read, "__proto__")).toBe(true);
    expect((read as { admin?: unknown }).admin).toBeUndefined();
    expect(({} as { admin?: unknown }).admin).toBeUndefined();
  });

  test("what is not JSON is refused before anything is sent", () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 1n, () => 1, Symbol("x")]) {
      expect(() => structBytes({ bad: bad as unknown as Value })).toThrow(TypeError);
    }
  });
});

describe("reading an AuthZEN batch answer", () => {
  // AccessEvaluationBatchResponse { repeated AccessEvaluationResponse evaluations = 1 }, each { decision = 1 (bool),
  // context = 2 (map<string, Value>) }.
  const allow = delimited(1, [0x08, 1]);
  const deny = delimited(1, [0x08, 0]);

  test("decisions come back in order, with an unset decision left unset", () => {
    const answer = decodeBatchResponse(Uint8Array.from([...allow, ...deny, ...delimited(1, [])]));
    expect(answer.evaluations.map((evaluation) => evaluation.decision)).toEqual([true, false, undefined]);
  });

  test("fields it does not know are skipped, as protobuf requires", () => {
    const unknown = [0x78, 5, 0x81, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0x85, 0x01, 0, 0, 0, 0, ...delimited(9, [1, 2])];
    const answer = decodeBatchResponse(Uint8Array.from([...unknown, ...delimited(1, [...unknown, 0x08, 1])]));
    expect(answer.evaluations).toEqual([{ decision: true, context: undefined }]);
  });

  test("every malformed answer throws instead of reading as something", () => {
    const malformed: Record<string, number[]> = {
      "truncated message": allow.slice(0, -1),
      "length past the end": [0x0a, 10, 0x08, 1],
      "decision that is not a varint": delimited(1, [0x0d, 1, 0, 0, 0]),
      "bool of 2": delimited(1, [0x08, 2]),
      "truncated varint": [0x0a, 0x80],
      "group wire type": [0x0b],
      "field number 0": [0x00, 1],
      "invalid UTF-8 in a context key": delimited(1, delimited(2, delimited(1, [0xc3, 0x28]))),
      "string value that is a varint": delimited(
        1,
        delimited(2, [...delimited(1, [0x61]), ...delimited(2, [0x18, 1])]),
      ),
      "varint of eleven bytes": [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    };
    for (const [what, bytes] of Object.entries(malformed)) {
      expect(() => decodeBatchResponse(Uint8Array.from(bytes)), what).toThrow();
    }
  });

  test("a value nested deeper than any answer of the PDP's is refused, not a stack overflow", () => {
    let value: number[] = [0x08, 0];
    for (let level = 0; level < 150; level++) value = delimited(6, delimited(1, value));
    const bytes = delimited(1, delimited(2, [...delimited(1, [0x61]), ...delimited(2, value)]));
    expect(() => decodeBatchResponse(Uint8Array.from(bytes))).toThrow(/too deep/);
  });
});

describe("writing an AuthZEN batch request", () => {
  test("a request's defaults and evaluations land in their fields", () => {
    const bytes = encodeBatchRequest({
      context: { "cerbos.includeMeta": true },
      resource: { type: "mcp::filesystem", id: "read_file", properties: { tool: "read_file" } },
      action: { name: "read_file" },
      evaluations: [{ subject: { type: "user", id: "alice", properties: { "cerbos.roles": ["user"] } } }],
    });
    const fields: [number, number][] = [];
    const reader = new ProtobufReader(bytes);
    while (!reader.done) {
      const tag = reader.tag();
      fields.push([tag >>> 3, tag & 7]);
      reader.skip(tag);
    }
    // resource 2, action 3, context 4 (one entry), evaluations 5.
    expect(fields).toEqual([
      [2, WireType.bytes],
      [3, WireType.bytes],
      [4, WireType.bytes],
      [5, WireType.bytes],
    ]);
  });
});
