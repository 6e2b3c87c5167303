import { DomainError } from "../../core/errors.js";
import type { Principal } from "./api-keys.js";

/**
 * The environment half of the access policy: a key bound to an environment
 * acts only there, whatever its role and whatever the request names; only an
 * operator (or the keyless local caller) reaches every environment.
 */
export function mayManage(principal: Principal, environment: string): boolean {
  return principal.manages === "every" || principal.environment === environment;
}

/** Refuses, before anything is read or written, a request naming an environment the key is not bound to. */
export function checkManages(principal: Principal, environment: string): void {
  if (mayManage(principal, environment)) return;
  throw new DomainError(
    "PERMISSION_DENIED",
    "ENVIRONMENT_NOT_ALLOWED",
    `The API key '${principal.keyId}' is bound to the environment '${principal.environment}' and may not act on another; ` +
      "managing other environments takes an operator key",
  );
}

/** The environment a DataService call acts on: the key's own. */
export function dataEnvironment(principal: Principal): string {
  if (principal.environment !== undefined) return principal.environment;
  // The role table already keeps operators off DataService; this guards the invariant, not a path.
  throw new DomainError("PERMISSION_DENIED", "ROLE_NOT_ALLOWED", `The API key '${principal.keyId}' is bound to no environment`);
}
