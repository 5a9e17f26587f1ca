/** Prints how to reach a guarded example server: its URL, the demo bearer keys and alice → planner's token. */
export function printConnectInstructions(what: string, port: number, plannerToken: string): void {
  console.log(`${what} "filesystem" listening at http://127.0.0.1:${port}/mcp`);
  console.log("  act as alice:  Authorization: Bearer alice-demo-key");
  console.log("  act as bob:    Authorization: Bearer bob-demo-key");
  console.log(
    '  act as alice → planner: also put this delegation token in each request\'s params._meta["hopguard.dev/delegation"]',
  );
  console.log(
    `  (valid 5 minutes; agent hosts mint their own with delegation.toToken(signer, { audience: "filesystem" })):`,
  );
  console.log(`  ${plannerToken}`);
  console.log("Ctrl-C to stop.");
}
