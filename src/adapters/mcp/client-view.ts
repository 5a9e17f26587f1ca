/**
 * An object that is an `instanceof` `target`'s class and has exactly the members described by `members`, nothing
 * else: every other property reads as `undefined`, cannot be written, defined or deleted, and is not `in` it.
 *
 * @remarks
 * An allow-list rather than a pass-through: the target's internals (for an MCP `Client`, `_transport`,
 * `_requestHandlers`, private helpers) never leak, nor do members a future SDK version adds, until someone decides
 * they are safe. The proxy's target is an empty object with the target's prototype, so the default behaviour of
 * every trap not written here reveals nothing either. A prototype method reached around the view
 * (`Object.getPrototypeOf(view).request.call(view, ...)`) runs on the view, where it finds no connection.
 */
export function allowListedView<T extends object>(target: T, members: object): T {
  const allowed = new Map(Object.entries(Object.getOwnPropertyDescriptors(members)));
  const shell = Object.create(Object.getPrototypeOf(target)) as T;
  return new Proxy(shell, {
    get(_shell, property) {
      const member = typeof property === "string" ? allowed.get(property) : undefined;
      if (member === undefined) return undefined;
      return member.get === undefined ? member.value : member.get.call(members);
    },
    set(_shell, property, value) {
      const setter = typeof property === "string" ? allowed.get(property)?.set : undefined;
      if (setter === undefined) return false;
      setter.call(members, value);
      return true;
    },
    has: (_shell, property) => typeof property === "string" && allowed.has(property),
    defineProperty: () => false,
    deleteProperty: () => false,
    setPrototypeOf: () => false,
    preventExtensions: () => false,
  });
}
