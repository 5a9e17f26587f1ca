/**
 * A view of `target` in which the own members of `overrides` (read through their getters, if any) replace the
 * target's. Everything else is the target's: its methods run with `this` bound to the target, writes land on the
 * target, and `instanceof` still holds.
 *
 * @remarks
 * Binding matters: the target's methods then call each other directly, never through the view, so the view cannot
 * change what the target does internally, and two views of one target never see each other's overrides.
 */
export function overlay<T extends object>(target: T, overrides: object): T {
  const bound = new WeakMap<object, unknown>();
  return new Proxy(target, {
    get(object, property) {
      if (Object.hasOwn(overrides, property)) return Reflect.get(overrides, property);
      const value: unknown = Reflect.get(object, property, object);
      // Own properties are data the caller set (e.g. `onclose`) and come back as they are; inherited functions are
      // the class's methods. Bound once, so that `view.close === view.close`.
      if (typeof value !== "function" || Object.hasOwn(object, property)) return value;
      if (!bound.has(value)) bound.set(value, value.bind(object));
      return bound.get(value);
    },
    set(object, property, value) {
      return Reflect.set(object, property, value, object);
    },
  });
}
