import type { DestructivePolicy, ToolAccess } from "./tool-access.ts";

/** One allow rule of the tools policy, and the tools it names. */
export interface ToolRule {
  readonly name: string;
  readonly tools: readonly string[];
  readonly derivedRoles: readonly string[];
  readonly openWorld: boolean;
  /** The rule asks a person to approve each call (an output hopguard maps to the framework's approval). */
  readonly approval: boolean;
  readonly why: string;
}

const approvalReasonTail = " may change or delete data: a person approves each call an agent makes";

/** What an approval output says, for the tool `tool`; the policy builds the same text from `R.id`. */
export function approvalReason(tool: string): string {
  return `${tool}${approvalReasonTail}`;
}

/** The CEL output of an approval rule: hopguard maps `approval: "required"` to the framework's approval step. */
export const approvalOutput = `{"approval": "required", "reason": R.id + ${JSON.stringify(approvalReasonTail)}}`;

/** The allow rules of the tools policy, in a fixed order; rules that would name no tool are left out. */
export function toolRules(tools: readonly ToolAccess[], destructive: DestructivePolicy): ToolRule[] {
  const rules: ToolRule[] = [];
  for (const openWorld of [false, true]) {
    const prefix = openWorld ? "open-world-" : "";
    const role = openWorld ? ", holding the open-world role" : "";
    const named = (effect: ToolAccess["effect"]): string[] =>
      tools
        .filter((tool) => !tool.patternName && tool.effect === effect && tool.openWorld === openWorld)
        .map((tool) => tool.tool);
    const add = (rule: ToolRule): void => {
      if (rule.tools.length > 0) rules.push(rule);
    };
    add({
      name: `${prefix}read-only-tools`,
      tools: named("read-only"),
      derivedRoles: ["acting_user", "delegated_agent"],
      openWorld,
      approval: false,
      why: `Read-only tools: the user, and the agents acting for a user who may${role}.`,
    });
    add({
      name: `${prefix}additive-tools`,
      tools: named("additive"),
      derivedRoles: ["acting_user", "delegated_agent"],
      openWorld,
      approval: false,
      why: `Tools that add but never change or delete (destructiveHint: false): as read-only tools${role}.`,
    });
    add({
      name: `${prefix}destructive-tools-for-users`,
      tools: named("destructive"),
      derivedRoles: ["acting_user"],
      openWorld,
      approval: false,
      why: `Tools that may change or delete data (or that do not say they don't): the user acting for themselves${role}.`,
    });
    if (destructive === "approval") {
      add({
        name: `${prefix}destructive-tools-for-agents`,
        tools: named("destructive"),
        derivedRoles: ["delegated_agent"],
        openWorld,
        approval: true,
        why: `... and agents acting for them, once a person approves each call${role}.`,
      });
    }
  }
  return rules;
}
