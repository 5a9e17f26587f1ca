import type { Value } from "@cerbos/core";
import type {
  AccessEvaluationAnswer,
  AccessEvaluationBatchRequest,
  AccessEvaluationBatchResponse,
  AuthZenAction,
  AuthZenEvaluation,
  AuthZenResource,
  AuthZenSubject,
} from "./authzen-messages.ts";
import { ProtobufReader, ProtobufWriter, readValueMapEntry, WireType, writeValueMap } from "./protobuf-wire.ts";

// Field numbers from Cerbos's api/public/authzen/authorization/v1/evaluation.proto.

/** The gRPC method a batch is sent to. */
export const accessEvaluationBatchPath = "/authzen.authorization.v1.AuthorizationService/AccessEvaluationBatch";

/** Encodes a batch request as the protobuf `AccessEvaluationBatchRequest`. */
export function encodeBatchRequest(request: AccessEvaluationBatchRequest): Uint8Array {
  const writer = new ProtobufWriter();
  writeParts(writer, request);
  for (const evaluation of request.evaluations) {
    writer.tag(5, WireType.bytes);
    const start = writer.fork();
    writeParts(writer, evaluation);
    writer.join(start);
  }
  return writer.finish();
}

/** Decodes a protobuf `AccessEvaluationBatchResponse`; throws on anything that is not one. */
export function decodeBatchResponse(bytes: Uint8Array): AccessEvaluationBatchResponse {
  const reader = new ProtobufReader(bytes);
  const evaluations: AccessEvaluationAnswer[] = [];
  while (!reader.done) {
    const tag = reader.tag();
    if (tag >>> 3 === 1) {
      reader.expect(tag, WireType.bytes, "evaluations");
      evaluations.push(readAnswer(reader.message()));
    } else {
      reader.skip(tag);
    }
  }
  return { evaluations };
}

/** subject 1, resource 2, action 3, context 4: the same numbers in a batch and in each of its evaluations. */
function writeParts(writer: ProtobufWriter, parts: AuthZenEvaluation): void {
  if (parts.subject !== undefined) writeMessage(writer, 1, parts.subject, writeEntity);
  if (parts.resource !== undefined) writeMessage(writer, 2, parts.resource, writeEntity);
  if (parts.action !== undefined) writeMessage(writer, 3, parts.action, writeAction);
  if (parts.context !== undefined) writeValueMap(writer, 4, parts.context);
}

function writeMessage<T>(writer: ProtobufWriter, field: number, message: T, write: (w: ProtobufWriter, m: T) => void) {
  writer.tag(field, WireType.bytes);
  const start = writer.fork();
  write(writer, message);
  writer.join(start);
}

/** Subject and Resource share their shape: type 1, id 2, properties 3. */
function writeEntity(writer: ProtobufWriter, entity: AuthZenSubject | AuthZenResource): void {
  writer.tag(1, WireType.bytes);
  writer.string(entity.type);
  writer.tag(2, WireType.bytes);
  writer.string(entity.id);
  if (entity.properties !== undefined) writeValueMap(writer, 3, entity.properties);
}

function writeAction(writer: ProtobufWriter, action: AuthZenAction): void {
  writer.tag(1, WireType.bytes);
  writer.string(action.name);
}

/** `AccessEvaluationResponse`: optional bool decision 1, map<string, Value> context 2. */
function readAnswer(reader: ProtobufReader): AccessEvaluationAnswer {
  let decision: boolean | undefined;
  let context: Record<string, Value> | undefined;
  while (!reader.done) {
    const tag = reader.tag();
    const field = tag >>> 3;
    if (field === 1) {
      reader.expect(tag, WireType.varint, "decision");
      decision = reader.bool();
    } else if (field === 2) {
      reader.expect(tag, WireType.bytes, "context");
      context ??= {};
      readValueMapEntry(reader.message(), context);
    } else {
      reader.skip(tag);
    }
  }
  return { decision, context };
}
