import { describe, expect, test } from "vitest";
import { type BearerAuthInfo, claimsResolver, createGuard, IdentityError } from "../../src/index.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import { scribe } from "../support/users.ts";

const guard = createGuard({ client: sharedPdpClient() });

/** What `extra.authInfo` holds after the MCP SDK's bearer middleware verified an IdP's access token. */
const authInfo = (claims: Record<string, unknown>, scopes: string[] = ["files:write"]): BearerAuthInfo => ({
  token: "eyJ.redacted.sig",
  clientId: "agent-host",
  scopes,
  expiresAt: Math.floor(Date.now() / 1000) + 60,
  extra: claims,
});
const writeNotes = (user: string) => ({
  server: "filesystem",
  tool: "write_file",
  arguments: { path: `/workspace/${user}/notes.md`, content: "x" },
});

function identityCode(attempt: () => unknown): string | undefined {
  try {
    attempt();
  } catch (error) {
    return IdentityError.isInstance(error) ? error.code : `not an IdentityError: ${String(error)}`;
  }
  return undefined;
}

describe("claimsResolver", () => {
  test("sub, a roles claim and the selected claims make the user; no other claim becomes an attribute", () => {
    const userOf = claimsResolver({ attributes: ["department", "workspace"], scopesAttribute: "scopes" });
    const user = userOf(
      authInfo({
        sub: "alice",
        roles: ["reviewer"],
        department: "engineering",
        workspace: "/workspace/alice",
        aud: "filesystem",
        exp: 1,
      }),
    );

    expect(user).toEqual({
      id: "alice",
      roles: ["user", "reviewer"],
      attr: { department: "engineering", workspace: "/workspace/alice", scopes: ["files:write"] },
    });
    expect(Object.isFrozen(user.attr)).toBe(true);
  });

  test("nested and namespaced claims, space-separated roles, renamed attributes, claims found elsewhere", () => {
    const keycloak = claimsResolver({
      idClaim: "preferred_username",
      rolesClaim: "realm_access.roles",
      attributes: { department: "org.dept", tenant: "https://acme.example/tenant" },
    });
    expect(
      keycloak(
        authInfo({
          preferred_username: "alice",
          realm_access: { roles: ["user", "auditor"] },
          org: { dept: "engineering" },
          "https://acme.example/tenant": "acme",
        }),
      ),
    ).toEqual({ id: "alice", roles: ["user", "auditor"], attr: { department: "engineering", tenant: "acme" } });

    const scoped = claimsResolver({
      rolesClaim: "scope",
      baseRoles: [],
      claims: (info) => info.extra?.payload as Record<string, unknown>,
    });
    expect(scoped(authInfo({ payload: { sub: "bob", scope: "user  reader" } }))).toMatchObject({
      id: "bob",
      roles: ["user", "reader"],
      attr: {},
    });
  });

  test.each<[string, () => unknown, string]>([
    ["no authInfo at all", () => claimsResolver()(undefined), "identity_unknown"],
    ["authInfo without claims", () => claimsResolver()({ token: "t", clientId: "c", scopes: [] }), "identity_unknown"],
    ["no sub claim", () => claimsResolver()(authInfo({ email: "alice@acme.example" })), "identity_invalid"],
    ["an empty sub", () => claimsResolver()(authInfo({ sub: "" })), "identity_invalid"],
    ["a sub with a zero-width space", () => claimsResolver()(authInfo({ sub: "ali\u200bce" })), "identity_invalid"],
    [
      "roles that are an object",
      () => claimsResolver()(authInfo({ sub: "a", roles: { admin: true } })),
      "identity_invalid",
    ],
    ["no role at all", () => claimsResolver({ baseRoles: [] })(authInfo({ sub: "a" })), "identity_invalid"],
    ["a role that is a number", () => claimsResolver()(authInfo({ sub: "a", roles: [7] })), "identity_invalid"],
  ])("refuses %s", (_case, attempt, code) => {
    expect(identityCode(attempt)).toBe(code);
  });

  test("an attribute named like hopguard's chain attributes is refused when the resolver is made", () => {
    expect(() => claimsResolver({ attributes: { onBehalfOf: "act" } })).toThrow(
      expect.objectContaining({ code: "invalid_input", path: "options.attributes.onBehalfOf" }),
    );
  });

  test("the user a token names decides on the real PDP: an engineer's agent may write, a salesman's may not", async () => {
    const userOf = claimsResolver({ attributes: ["department", "workspace"] });
    const verdicts: Record<string, boolean> = {};
    for (const [sub, department] of [
      ["alice", "engineering"],
      ["bob", "sales"],
    ] as const) {
      const user = userOf(authInfo({ sub, department, workspace: `/workspace/${sub}` }));
      const agent = await guard.forUser(user).delegate(scribe);
      verdicts[sub] = (await agent.authorize(writeNotes(sub))).allowed;
    }
    expect(verdicts).toEqual({ alice: true, bob: false });
  });
});
