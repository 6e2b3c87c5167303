import type { Engine } from "./engine.js";
import type { Store } from "./store.js";

/**
 * Every operation of the store port, each timed. A record, not a list, so
 * that an operation added to the port fails to compile here until it is
 * named (and so timed) too.
 */
const TIMED: Record<Exclude<keyof Store, "describe" | "feed" | "close">, true> = {
  get: true,
  getAsOf: true,
  history: true,
  getMany: true,
  queryKeys: true,
  queryLabel: true,
  scan: true,
  countRange: true,
  count: true,
  namespaces: true,
  set: true,
  setMany: true,
  remove: true,
  clear: true,
  purgeExpired: true,
  replaceAll: true,
};

export const TIMED_OPERATIONS = Object.keys(TIMED) as (keyof typeof TIMED)[];

export type TimedOperation = keyof typeof TIMED;

/**
 * The engine with every store it hands out timed at the port, so each
 * engine is measured the same way and none carries timing code. A proxy,
 * not a class: whatever else an engine or store offers (methods added
 * later, engine-specific ones) passes through unchanged.
 */
export function timedEngine(engine: Engine, observe: (operation: TimedOperation, seconds: number) => void): Engine {
  // One wrapper per store: callers key their own caches by the store object.
  const wrapped = new WeakMap<Store, Store>();
  const timed = (store: Store): Store => {
    let wrapper = wrapped.get(store);
    if (!wrapper) {
      wrapper = timedStore(store, observe);
      wrapped.set(store, wrapper);
    }
    return wrapper;
  };
  const environment = async (name: string) => timed(await engine.environment(name));
  return new Proxy(engine, {
    get(target, property) {
      if (property === "environment") return environment;
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function timedStore(store: Store, observe: (operation: TimedOperation, seconds: number) => void): Store {
  const timers = new Map<PropertyKey, unknown>();
  for (const operation of TIMED_OPERATIONS) {
    const run = store[operation] as (...args: unknown[]) => Promise<unknown>;
    timers.set(operation, (...args: unknown[]) => {
      const started = performance.now();
      const done = () => observe(operation, (performance.now() - started) / 1000);
      return run.apply(store, args).then(
        (result) => {
          done();
          return result;
        },
        (error: unknown) => {
          done();
          throw error;
        },
      );
    });
  }
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, property) {
      const timer = timers.get(property);
      if (timer) return timer;
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== "function") return value;
      // Bound to the store itself, so its methods see their own fields (private ones included).
      let method = bound.get(property);
      if (!method) {
        method = value.bind(target);
        bound.set(property, method);
      }
      return method;
    },
  });
}
