import type { ActorInput } from "../../src/index.ts";

/** Users and agents the repo's policies/ know how to judge. */
export const alice: ActorInput = {
  id: "alice",
  roles: ["user"],
  attr: { department: "engineering", workspace: "/workspace/alice", tenant: "acme" },
};
export const bob: ActorInput = {
  id: "bob",
  roles: ["user"],
  attr: { department: "sales", workspace: "/workspace/bob", tenant: "acme" },
};
export const ivanTheIntern: ActorInput = {
  id: "ivan",
  roles: ["user", "intern"],
  attr: { department: "engineering", workspace: "/workspace/ivan" },
};
export const planner: ActorInput = { id: "planner", roles: ["agent", "planner"] };
export const researcher: ActorInput = { id: "researcher", roles: ["agent", "researcher"] };
export const scribe: ActorInput = { id: "scribe", roles: ["agent", "writer"] };
