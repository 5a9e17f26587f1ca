import { type FSWatcher, watch } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { PdpClient } from "../pdp-client.ts";
import { createPlanCache, type PlanCache, type PlanCacheOptions } from "./plan-cache.ts";
import { allLive, type PolicyProfile, readPolicyProfile } from "./policy-profile.ts";

/**
 * The plan cache of a guard (`createGuard({ planCache })`): which policies the PDP serves, and how long to trust a
 * plan.
 *
 * @remarks
 * Give the folder the PDP loads its policies from (`policyDir`: read at start and, by default, watched), or a profile
 * you read yourself (`policies`). Without either, nothing is answered from memory.
 */
export interface PlanCacheSettings extends Omit<PlanCacheOptions, "client" | "policies"> {
  /**
   * The folder of exactly the policies the PDP serves (for `startLocalPdp`, its `policyDir`). Read when the guard is
   * made; until it has been read, every hop goes to the PDP.
   */
  policyDir?: string | URL | undefined;
  /** A profile read with `readPolicyProfile`, instead of `policyDir`. */
  policies?: PolicyProfile | undefined;
  /**
   * Watch `policyDir`: on any change the cache is dropped, the profile read again, and nothing is answered from memory
   * for `reloadPauseMs`, the time the PDP takes to load the change.
   *
   * @defaultValue `true` with `policyDir`
   */
  watch?: boolean | undefined;
  /**
   * How long after a policy change to ask the PDP about every hop, in milliseconds: at least the PDP's own reload
   * delay (Cerbos's disk store, with `storage.disk.watchForChanges`, took 2.6–4 s here to load a change, more on a busy machine).
   *
   * @defaultValue `10000`
   */
  reloadPauseMs?: number | undefined;
}

/** A guard's plan cache and the watcher that keeps it in step with the policy folder. */
export interface WatchedPlanCache {
  readonly cache: PlanCache;
  /** Resolves once the policy folder has been read (at once without `policyDir`). */
  readonly ready: Promise<void>;
}

// A watcher must not keep a dropped guard's cache alive, nor outlive it.
const watchers = new FinalizationRegistry<FSWatcher>((watcher) => watcher.close());

/** Creates the plan cache for a guard from its {@link PlanCacheSettings}. */
export function watchedPlanCache(client: PdpClient, settings: PlanCacheSettings): WatchedPlanCache {
  const { policyDir, policies, watch: watching = policyDir !== undefined, reloadPauseMs = 10_000, ...rest } = settings;
  if (!(reloadPauseMs >= 0)) throw new RangeError("reloadPauseMs must be ≥ 0");
  const cache = createPlanCache({ ...rest, client, policies });
  if (policyDir === undefined) return { cache, ready: Promise.resolve() };
  const dir = policyDir instanceof URL ? fileURLToPath(policyDir) : resolve(policyDir);
  const reference = new WeakRef(cache);
  const load = async (pauseMs: number): Promise<void> => {
    const profile = await readPolicyProfile(dir).catch((error: unknown) =>
      allLive(`policy folder ${dir} could not be read (${error instanceof Error ? error.message : String(error)})`),
    );
    reference.deref()?.clear({ policies: profile, pauseMs });
  };
  if (watching) {
    let pausedAt = 0;
    let reading: ReturnType<typeof setTimeout> | undefined;
    const watcher = watch(dir, { recursive: true, persistent: false }, () => {
      const target = reference.deref();
      if (target === undefined) {
        watcher.close();
        return;
      }
      // Stop answering from memory at once; read the folder again once a burst of writes has settled.
      pausedAt = Date.now();
      target.clear({ pauseMs: reloadPauseMs });
      clearTimeout(reading);
      reading = setTimeout(() => {
        void load(Math.max(0, pausedAt + reloadPauseMs - Date.now()));
      }, 50);
      reading.unref();
    });
    // A folder that cannot be watched must not leave plans of old policies in use: answer nothing from memory.
    watcher.on("error", () => reference.deref()?.clear({ policies: allLive(`policy folder ${dir} is not watched`) }));
    watchers.register(cache, watcher);
  }
  return { cache, ready: load(0) };
}
