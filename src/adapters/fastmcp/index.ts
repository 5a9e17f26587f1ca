export { type FastMCPUserResolver, type GuardFastMCPOptions, guardFastMCP } from "./guard-fastmcp.ts";
