import type { Value } from "@cerbos/core";

// The protobuf wire format, as far as the AuthZEN batch needs it: varints, length-delimited fields, doubles, and
// google.protobuf.Value / Struct / ListValue, the PDP's JSON-in-protobuf. Hand-written because `@cerbos/api` has no
// AuthZEN messages, and small enough to read whole: every malformed byte throws, so a bad answer is never read as one.

/** Wire types: 0 varint, 1 64-bit, 2 length-delimited, 5 32-bit. Groups (3, 4) are not used by any message here. */
export const WireType = { varint: 0, fixed64: 1, bytes: 2, fixed32: 5 } as const;

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const maxLength = 0x7fff_ffff;
// The PDP's answers nest a few levels (context → response → results → meta → actions); this only stops a hostile
// peer from exhausting the stack.
const maxNesting = 100;

/** Appends protobuf fields to one growing buffer; nested messages get their length prefix when they end. */
export class ProtobufWriter {
  #bytes = new Uint8Array(2048);
  #view = new DataView(this.#bytes.buffer);
  #position = 0;

  /** The bytes written so far (a copy-free view). */
  finish(): Uint8Array {
    return this.#bytes.subarray(0, this.#position);
  }

  tag(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  varint(value: number): void {
    this.#reserve(10);
    let rest = value;
    while (rest > 0x7f) {
      this.#bytes[this.#position++] = (rest & 0x7f) | 0x80;
      rest = Math.floor(rest / 128);
    }
    this.#bytes[this.#position++] = rest;
  }

  double(value: number): void {
    this.#reserve(8);
    this.#view.setFloat64(this.#position, value, true);
    this.#position += 8;
  }

  /** A string field's value: its UTF-8 bytes with their length in front (lone surrogates become U+FFFD, as JSON). */
  string(value: string): void {
    const { length } = value;
    // Most strings here are short ASCII (keys, ids, roles): written byte by byte, behind a one-byte length.
    if (length < 0x80) {
      this.#reserve(length + 1);
      const bytes = this.#bytes;
      let at = this.#position + 1;
      for (let index = 0; index < length; index++) {
        const code = value.charCodeAt(index);
        if (code >= 0x80) {
          at = -1;
          break;
        }
        bytes[at++] = code;
      }
      if (at !== -1) {
        bytes[this.#position] = length;
        this.#position = at;
        return;
      }
    }
    const start = this.fork();
    this.#reserve(length * 3);
    const { written } = utf8.encodeInto(value, this.#bytes.subarray(this.#position));
    this.#position += written;
    this.join(start);
  }

  /** Starts a length-delimited field's value; close it with {@link ProtobufWriter.join}. */
  fork(): number {
    this.#reserve(1);
    return this.#position++;
  }

  /** Ends the value {@link ProtobufWriter.fork} started, moving it along when its length needs more than one byte. */
  join(start: number): void {
    const length = this.#position - start - 1;
    let prefix = 1;
    for (let rest = length; rest > 0x7f; rest = Math.floor(rest / 128)) prefix++;
    if (prefix > 1) {
      this.#reserve(prefix - 1);
      this.#bytes.copyWithin(start + prefix, start + 1, this.#position);
      this.#position += prefix - 1;
    }
    let at = start;
    let rest = length;
    while (rest > 0x7f) {
      this.#bytes[at++] = (rest & 0x7f) | 0x80;
      rest = Math.floor(rest / 128);
    }
    this.#bytes[at] = rest;
  }

  #reserve(count: number): void {
    if (this.#position + count <= this.#bytes.length) return;
    let size = this.#bytes.length * 2;
    while (size < this.#position + count) size *= 2;
    const bytes = new Uint8Array(size);
    bytes.set(this.#bytes.subarray(0, this.#position));
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer);
  }
}

/** Reads protobuf fields from one buffer; every read is bounds-checked and throws on anything malformed. */
export class ProtobufReader {
  readonly #bytes: Uint8Array;
  #view: DataView | undefined;
  #position: number;
  readonly #end: number;
  // Where the length-delimited value #delimited() last stepped over ends; saves an array per string and message.
  #valueEnd = 0;

  constructor(bytes: Uint8Array, start = 0, end = bytes.length, view?: DataView) {
    this.#bytes = bytes;
    this.#view = view;
    this.#position = start;
    this.#end = end;
  }

  get done(): boolean {
    return this.#position >= this.#end;
  }

  /** The next field's tag: its number is `tag >>> 3`, its wire type `tag & 7`. */
  tag(): number {
    const tag = this.varint();
    if (tag > 0xffff_ffff || tag >>> 3 === 0) throw new Error(`field tag ${tag} at byte ${this.#position}`);
    return tag;
  }

  /** An unsigned varint up to 2^53 (lengths, tags, enums, bools); larger ones are refused rather than rounded. */
  varint(): number {
    const bytes = this.#bytes;
    if (this.#position < this.#end) {
      const first = bytes[this.#position] as number;
      if (first < 0x80) {
        this.#position++;
        return first;
      }
    }
    let value = 0;
    let scale = 1;
    for (let index = 0; index < 10; index++) {
      if (this.#position >= this.#end) throw new Error("truncated varint");
      const byte = bytes[this.#position++] as number;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (!Number.isSafeInteger(value)) throw new Error("varint out of range");
        return value;
      }
      scale *= 128;
    }
    throw new Error("varint longer than 10 bytes");
  }

  double(): number {
    if (this.#position + 8 > this.#end) throw new Error("truncated double");
    this.#view ??= new DataView(this.#bytes.buffer, this.#bytes.byteOffset, this.#bytes.byteLength);
    const value = this.#view.getFloat64(this.#position, true);
    this.#position += 8;
    return value;
  }

  bool(): boolean {
    const value = this.varint();
    if (value > 1) throw new Error(`bool of ${value}`);
    return value === 1;
  }

  /** A string, strictly UTF-8: bytes that are not throw. */
  string(): string {
    const start = this.#delimited();
    const end = this.#valueEnd;
    const bytes = this.#bytes;
    // Short ASCII (keys, ids, effects) is read byte by byte; anything else goes through the strict decoder.
    if (end - start <= 32) {
      let text = "";
      for (let index = start; index < end; index++) {
        const byte = bytes[index] as number;
        if (byte >= 0x80) return strictUtf8.decode(bytes.subarray(start, end));
        text += String.fromCharCode(byte);
      }
      return text;
    }
    return strictUtf8.decode(bytes.subarray(start, end));
  }

  /** A reader over the next length-delimited value (an embedded message). */
  message(): ProtobufReader {
    const start = this.#delimited();
    return new ProtobufReader(this.#bytes, start, this.#valueEnd, this.#view);
  }

  /** Skips a field this reader does not know, as protobuf requires for forward compatibility. */
  skip(tag: number): void {
    const wireType = tag & 7;
    if (wireType === WireType.varint) this.varint();
    else if (wireType === WireType.fixed64) this.#advance(8);
    else if (wireType === WireType.bytes) this.#delimited();
    else if (wireType === WireType.fixed32) this.#advance(4);
    else throw new Error(`wire type ${wireType}`);
  }

  /** Throws unless the field's wire type is what it must be. */
  expect(tag: number, expected: number, what: string): void {
    if ((tag & 7) !== expected) throw new Error(`${what} has wire type ${tag & 7}, not ${expected}`);
  }

  #advance(count: number): void {
    if (this.#position + count > this.#end) throw new Error("truncated field");
    this.#position += count;
  }

  /** Steps over a length-delimited value; returns where it starts (it ends at #valueEnd). */
  #delimited(): number {
    const length = this.varint();
    if (length > maxLength) throw new Error("length out of range");
    const start = this.#position;
    this.#advance(length);
    this.#valueEnd = this.#position;
    return start;
  }
}

/** Writes a map<string, google.protobuf.Value> field: one entry (key 1, value 2) per own property. */
export function writeValueMap(
  writer: ProtobufWriter,
  field: number,
  values: Readonly<Record<string, Value>>,
  depth = 0,
): void {
  for (const key of Object.keys(values)) {
    const value = values[key];
    // JSON drops undefined properties; so does the request hopguard would have sent with checkResources.
    if (value === undefined) continue;
    writer.tag(field, WireType.bytes);
    const entry = writer.fork();
    writer.tag(1, WireType.bytes);
    writer.string(key);
    writer.tag(2, WireType.bytes);
    const inner = writer.fork();
    writeValue(writer, value, depth);
    writer.join(inner);
    writer.join(entry);
  }
}

/** Reads one entry of a map<string, google.protobuf.Value> into `into`. */
export function readValueMapEntry(reader: ProtobufReader, into: Record<string, Value>, depth = 0): void {
  let key = "";
  let value: Value = null;
  while (!reader.done) {
    const tag = reader.tag();
    const field = tag >>> 3;
    if (field === 1) {
      reader.expect(tag, WireType.bytes, "map key");
      key = reader.string();
    } else if (field === 2) {
      reader.expect(tag, WireType.bytes, "map value");
      value = readValue(reader.message(), depth + 1);
    } else {
      reader.skip(tag);
    }
  }
  // Assigning "__proto__" would set the prototype: that one key is defined as a plain own property instead.
  if (key === "__proto__") {
    Object.defineProperty(into, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    into[key] = value;
  }
}

/** The fields of a google.protobuf.Value: null 1, number 2, string 3, bool 4, struct 5, list 6. */
function writeValue(writer: ProtobufWriter, value: Value, depth: number): void {
  if (depth > maxNesting) throw new TypeError("attribute nested too deep to send");
  if (value === null) {
    writer.tag(1, WireType.varint);
    writer.varint(0);
  } else if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`attribute value ${value} is not a JSON number`);
    writer.tag(2, WireType.fixed64);
    writer.double(value);
  } else if (typeof value === "string") {
    writer.tag(3, WireType.bytes);
    writer.string(value);
  } else if (typeof value === "boolean") {
    writer.tag(4, WireType.varint);
    writer.varint(value ? 1 : 0);
  } else if (Array.isArray(value)) {
    writer.tag(6, WireType.bytes);
    const list = writer.fork();
    for (const item of value as readonly Value[]) {
      writer.tag(1, WireType.bytes);
      const inner = writer.fork();
      // A hole or undefined in an array is null in JSON.
      writeValue(writer, item ?? null, depth + 1);
      writer.join(inner);
    }
    writer.join(list);
  } else if (typeof value === "object") {
    writer.tag(5, WireType.bytes);
    const struct = writer.fork();
    writeValueMap(writer, 1, value as Record<string, Value>, depth + 1);
    writer.join(struct);
  } else {
    throw new TypeError(`attribute value of type ${typeof value} is not JSON`);
  }
}

/** Reads a google.protobuf.Value as JSON. A Value with no kind set reads as `null`. */
export function readValue(reader: ProtobufReader, depth = 0): Value {
  if (depth > maxNesting) throw new Error("value nested too deep");
  let value: Value = null;
  while (!reader.done) {
    const tag = reader.tag();
    switch (tag >>> 3) {
      case 1:
        reader.expect(tag, WireType.varint, "null_value");
        reader.varint();
        value = null;
        break;
      case 2:
        reader.expect(tag, WireType.fixed64, "number_value");
        value = reader.double();
        break;
      case 3:
        reader.expect(tag, WireType.bytes, "string_value");
        value = reader.string();
        break;
      case 4:
        reader.expect(tag, WireType.varint, "bool_value");
        value = reader.bool();
        break;
      case 5: {
        reader.expect(tag, WireType.bytes, "struct_value");
        const struct = reader.message();
        const fields: Record<string, Value> = {};
        while (!struct.done) {
          const entry = struct.tag();
          if (entry >>> 3 === 1) {
            struct.expect(entry, WireType.bytes, "struct field");
            readValueMapEntry(struct.message(), fields, depth + 1);
          } else {
            struct.skip(entry);
          }
        }
        value = fields;
        break;
      }
      case 6: {
        reader.expect(tag, WireType.bytes, "list_value");
        const list = reader.message();
        const values: Value[] = [];
        while (!list.done) {
          const item = list.tag();
          if (item >>> 3 === 1) {
            list.expect(item, WireType.bytes, "list item");
            values.push(readValue(list.message(), depth + 1));
          } else {
            list.skip(item);
          }
        }
        value = values;
        break;
      }
      default:
        reader.skip(tag);
    }
  }
  return value;
}
