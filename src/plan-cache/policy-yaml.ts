import { parseAllDocuments } from "yaml";

/**
 * Thrown for policy YAML that cannot be read exactly: a syntax error, a duplicate key, tabs in indentation, or
 * anything the parser warns about. The policy profile then answers every hop live.
 */
export class PolicyYamlError extends Error {
  override readonly name = "PolicyYamlError";
}

/** A YAML value as hopguard reads policies: every scalar a string (YAML's failsafe schema), `""` when empty. */
export type YamlValue = string | YamlValue[] | { [key: string]: YamlValue };

/**
 * Reads every document of a policy file with the `yaml` package, under the failsafe schema: the profile only needs
 * the policies' structure and expressions as text, never YAML's own type resolution. Anchors and aliases resolve as
 * Cerbos resolves them; errors and warnings fail closed with {@link PolicyYamlError}.
 */
export function parsePolicyYaml(source: string): YamlValue[] {
  const documents = parseAllDocuments(source, { schema: "failsafe", uniqueKeys: true, prettyErrors: true });
  if (!Array.isArray(documents)) return [];
  return documents.map((document) => {
    const [problem] = [...document.errors, ...document.warnings];
    if (problem !== undefined) throw new PolicyYamlError(problem.message);
    return document.toJS({ maxAliasCount: 100 }) as YamlValue;
  });
}
