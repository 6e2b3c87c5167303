import { createContextKey } from "@connectrpc/connect";
import type { Principal } from "./api-keys.js";

/**
 * With no keys configured (loopback only), every caller is this one: the
 * default environment for data, and every environment for AdminService, as
 * an operator would — whoever can reach a keyless server owns it all.
 */
export const LOCAL_PRINCIPAL: Principal = { keyId: "local", environment: "default", role: "admin", manages: "every" };

/** Who is calling: set by the auth interceptor, read by handlers to pick the environment. */
export const principalKey = createContextKey<Principal>(LOCAL_PRINCIPAL, { description: "the authenticated caller" });
